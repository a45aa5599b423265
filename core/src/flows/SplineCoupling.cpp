#include "cgflow/flows/SplineCoupling.h"

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"

#include <cmath>

namespace cgflow::flows {

SplineCoupling::SplineCoupling(std::vector<bool> inputCircular, const CouplingOptions& coupling,
                               const SplineOptions& spline)
    : CouplingLayer("SplineCoupling", std::move(inputCircular), coupling,
                    RQSpline::numParameters(RQSplineType::Monotonic, spline.numBins),
                    RQSpline::numParameters(RQSplineType::Circular, spline.numBins)),
      options(spline),
      monotonic(RQSpline::monotonic(spline.numBins, spline.bound, spline.minBinWidth, spline.minBinHeight,
                                    spline.minDerivative)),
      circular(RQSpline::circular(spline.numBins, spline.minBinWidth, spline.minBinHeight, spline.minDerivative)) {}

std::unique_ptr<SplineCoupling> SplineCoupling::elementwise(std::vector<bool> inputCircular, const SplineOptions& spline,
                                                            int contextFeatureSize, int hiddenSize, int numBlocks,
                                                            nn::Activation activation) {
    CouplingOptions coupling;
    coupling.transformed.assign(inputCircular.size(), true);
    coupling.contextFeatureSize = contextFeatureSize;
    coupling.hiddenSize = hiddenSize;
    coupling.numBlocks = numBlocks;
    coupling.activation = activation;
    return std::make_unique<SplineCoupling>(std::move(inputCircular), coupling, spline);
}

void SplineCoupling::identityRawParameters(double* raw) const {
    // Equal bins map every knot to itself; derivatives of exactly 1 at every knot then make each
    // bin's rational-quadratic segment the identity. minDerivative + softplus(r) = 1 needs
    // r = log(exp(1 - minDerivative) - 1).
    const double derivativeRaw = std::log(std::expm1(1.0 - options.minDerivative));
    const int K = options.numBins;
    double* r = raw;
    for (const RQSpline* spline : {&monotonic, &circular}) {
        const int count = spline == &monotonic ? numRealTransformed() : numCircularTransformed();
        const int P = spline->getNumParameters();
        for (int i = 0; i < count; i++, r += P) {
            std::fill(r, r + 2 * K, 0.0);
            std::fill(r + 2 * K, r + P, derivativeRaw);
        }
    }
}

void SplineCoupling::transform(Direction direction, CouplingWorkspace& ws, double* logDet) const {
    const Eigen::Index n = ws.in.cols();
    const int numT = static_cast<int>(ws.in.rows());
    const int nReal = numRealTransformed(), nCirc = numCircularTransformed();
    const int rawSize = getRawSize();
    const int circularOffset = nReal * monotonic.getNumParameters();
    // One strided call per spline kind over the whole batch: the spline engine vectorizes across
    // scalars, so it wants as many of them per call as possible. Per-scalar log-dets land in
    // gradIn (free until the backward pass), laid out like ws.in.
    ws.gradIn.resize(numT, n);
    const int groups = static_cast<int>(n);
    if (direction == Direction::Forward) {
        monotonic.forwardBatchStrided(groups, nReal, ws.raw.data(), rawSize, ws.in.data(), numT, ws.out.data(),
                                      ws.gradIn.data());
        circular.forwardBatchStrided(groups, nCirc, ws.raw.data() + circularOffset, rawSize, ws.in.data() + nReal,
                                     numT, ws.out.data() + nReal, ws.gradIn.data() + nReal);
    } else {
        monotonic.inverseBatchStrided(groups, nReal, ws.raw.data(), rawSize, ws.in.data(), numT, ws.out.data(),
                                      ws.gradIn.data());
        circular.inverseBatchStrided(groups, nCirc, ws.raw.data() + circularOffset, rawSize, ws.in.data() + nReal,
                                     numT, ws.out.data() + nReal, ws.gradIn.data() + nReal);
    }
    for (Eigen::Index j = 0; j < n; j++)
        logDet[j] += ws.gradIn.col(j).sum();
}

void SplineCoupling::transformBackward(CouplingWorkspace& ws, const double* gradLogDet) const {
    const Eigen::Index n = ws.in.cols();
    const int numT = static_cast<int>(ws.in.rows());
    const int nReal = numRealTransformed(), nCirc = numCircularTransformed();
    const int rawSize = getRawSize();
    const int circularOffset = nReal * monotonic.getNumParameters();
    ws.gradIn.resize(numT, n);
    ws.gradRaw.setZero(rawSize, n);
    // Every scalar of sample j receives the sample's log-det gradient; laid out like ws.in so
    // that one strided call per spline kind covers the batch.
    ws.scratch.resize(numT * n);
    Eigen::Map<Eigen::MatrixXd> gl(ws.scratch.data(), numT, n);
    gl = Eigen::Map<const Eigen::RowVectorXd>(gradLogDet, n).replicate(numT, 1);
    const int groups = static_cast<int>(n);
    if (ws.direction == Direction::Forward) {
        monotonic.forwardGradientBatchStrided(groups, nReal, ws.raw.data(), rawSize, ws.in.data(), numT,
                                              ws.gradOut.data(), gl.data(), ws.gradIn.data(), ws.gradRaw.data());
        circular.forwardGradientBatchStrided(groups, nCirc, ws.raw.data() + circularOffset, rawSize,
                                             ws.in.data() + nReal, numT, ws.gradOut.data() + nReal, gl.data() + nReal,
                                             ws.gradIn.data() + nReal, ws.gradRaw.data() + circularOffset);
    } else {
        monotonic.inverseGradientBatchStrided(groups, nReal, ws.raw.data(), rawSize, ws.in.data(), numT,
                                              ws.gradOut.data(), gl.data(), ws.gradIn.data(), ws.gradRaw.data());
        circular.inverseGradientBatchStrided(groups, nCirc, ws.raw.data() + circularOffset, rawSize,
                                             ws.in.data() + nReal, numT, ws.gradOut.data() + nReal, gl.data() + nReal,
                                             ws.gradIn.data() + nReal, ws.gradRaw.data() + circularOffset);
    }
}

nlohmann::json SplineCoupling::getConfig() const {
    nlohmann::json config = couplingConfig();
    config["num_bins"] = options.numBins;
    config["bound"] = options.bound;
    config["min_bin_width"] = options.minBinWidth;
    config["min_bin_height"] = options.minBinHeight;
    config["min_derivative"] = options.minDerivative;
    return config;
}

std::unique_ptr<SplineCoupling> SplineCoupling::fromConfig(const nlohmann::json& config,
                                                           std::vector<bool> inputCircular) {
    const int dimension = static_cast<int>(inputCircular.size());
    CouplingOptions coupling = parseCouplingOptions(config, dimension, "spline_coupling");
    SplineOptions spline;
    const std::string where = "spline_coupling config";
    auto number = [&](const char* key, double& value) { value = io::readNumber(config, key, value, where); };
    spline.numBins = io::readInt(config, "num_bins", spline.numBins, where);
    number("bound", spline.bound);
    number("min_bin_width", spline.minBinWidth);
    number("min_bin_height", spline.minBinHeight);
    number("min_derivative", spline.minDerivative);
    return std::make_unique<SplineCoupling>(std::move(inputCircular), coupling, spline);
}

} // namespace cgflow::flows
