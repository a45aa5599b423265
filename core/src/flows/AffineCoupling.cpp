#include "cgflow/flows/AffineCoupling.h"

#include "cgflow/Error.h"

#include <cmath>

namespace cgflow::flows {

AffineCoupling::AffineCoupling(std::vector<bool> inputCircular, const CouplingOptions& coupling)
    : CouplingLayer("AffineCoupling", std::move(inputCircular), coupling, 2, 2) {
    if (numCircularTransformed() > 0)
        throw Error("AffineCoupling: circular dimensions cannot be transformed by an affine map; use a spline "
                    "coupling for them or leave them out of the transformed mask");
}

void AffineCoupling::identityRawParameters(double* raw) const {
    std::fill(raw, raw + getRawSize(), 0.0);
}

void AffineCoupling::transform(Direction direction, CouplingWorkspace& ws, double* logDet) const {
    const Eigen::Index n = ws.in.cols();
    const Eigen::Index numT = ws.in.rows();
    const auto s = ws.raw.topRows(numT).array();
    const auto t = ws.raw.bottomRows(numT).array();
    if (direction == Direction::Forward)
        ws.out.array() = ws.in.array() * s.exp() + t;
    else
        ws.out.array() = (ws.in.array() - t) * (-s).exp();
    const double sign = direction == Direction::Forward ? 1.0 : -1.0;
    for (Eigen::Index j = 0; j < n; j++)
        logDet[j] += sign * ws.raw.col(j).head(numT).sum();
}

void AffineCoupling::transformBackward(CouplingWorkspace& ws, const double* gradLogDet) const {
    const Eigen::Index n = ws.in.cols();
    const Eigen::Index numT = ws.in.rows();
    ws.gradIn.resize(numT, n);
    ws.gradRaw.resize(getRawSize(), n);
    const auto s = ws.raw.topRows(numT).array();
    const auto g = ws.gradOut.array();
    Eigen::Map<const Eigen::RowVectorXd> gl(gradLogDet, n);
    if (ws.direction == Direction::Forward) {
        // x = z e^s + t:  dx/dz = e^s, dx/ds = z e^s, dx/dt = 1, d logDet/ds = 1.
        const auto scale = s.exp();
        ws.gradIn.array() = g * scale;
        ws.gradRaw.topRows(numT).array() = g * ws.in.array() * scale;
        ws.gradRaw.topRows(numT).rowwise() += gl;
        ws.gradRaw.bottomRows(numT) = ws.gradOut;
    } else {
        // z = (x - t) e^-s:  dz/dx = e^-s, dz/ds = -z, dz/dt = -e^-s, d logDet/ds = -1.
        const auto scale = (-s).exp();
        ws.gradIn.array() = g * scale;
        ws.gradRaw.topRows(numT).array() = -g * ws.out.array();
        ws.gradRaw.topRows(numT).rowwise() -= gl;
        ws.gradRaw.bottomRows(numT).array() = -g * scale;
    }
}

std::unique_ptr<AffineCoupling> AffineCoupling::fromConfig(const nlohmann::json& config,
                                                           std::vector<bool> inputCircular) {
    const int dimension = static_cast<int>(inputCircular.size());
    return std::make_unique<AffineCoupling>(std::move(inputCircular),
                                            parseCouplingOptions(config, dimension, "affine_coupling"));
}

} // namespace cgflow::flows
