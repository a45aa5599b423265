#include "cgflow/flows/GaussianConditional.h"

#include "cgflow/Error.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/io/JsonFields.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

namespace cgflow::flows {

namespace {

const double halfLogTwoPi = 0.91893853320467274178; // log(2 pi) / 2

std::string shapeString(Eigen::Index rows, Eigen::Index cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

std::string numberString(double value) {
    std::ostringstream s;
    s.precision(17);
    s << value;
    return s.str();
}

const char* configName = "gaussian_conditional";

// A two-valued string field: true for `first`, false for `second`, `fallback` when absent; otherwise an Error
// that reads '"key" must be "first" <explanation>, got <value>'.
bool readChoice(const nlohmann::json& config, const char* key, const char* first, const char* second,
                const char* explanation, bool fallback) {
    if (!config.contains(key))
        return fallback;
    const nlohmann::json& v = config[key];
    if (!v.is_string() || (v.get<std::string>() != first && v.get<std::string>() != second))
        throw Error(std::string(configName) + " config: \"" + key + "\" must be \"" + first + "\" " + explanation +
                    ", got " + v.dump());
    return v.get<std::string>() == first;
}

} // namespace

GaussianConditional::GaussianConditional(const GaussianConditionalOptions& optionsIn) : options(optionsIn) {
    if (options.conditionSize < 1)
        throw Error("GaussianConditional: conditionSize (dim z) must be >= 1, got " +
                    std::to_string(options.conditionSize));
    if (options.outputSize < 1)
        throw Error("GaussianConditional: outputSize (dim X) must be >= 1, got " + std::to_string(options.outputSize));
    if (options.hiddenSize < 1)
        throw Error("GaussianConditional: hiddenSize must be >= 1, got " + std::to_string(options.hiddenSize));
    if (options.numBlocks < 0)
        throw Error("GaussianConditional: numBlocks must be >= 0, got " + std::to_string(options.numBlocks));
    if (!std::isfinite(options.initialLogStd))
        throw Error("GaussianConditional: initialLogStd must be finite, got " + numberString(options.initialLogStd));
    nn::activationName(options.activation); // Error for a value outside the enum
    {
        // Counted before anything is allocated (ParameterBudget: model-file decoders bound it by the file).
        const double hidden = options.hiddenSize, d = options.outputSize;
        ParameterBudget::charge(hidden * (options.conditionSize + 1) + 2.0 * options.numBlocks * hidden * (hidden + 1) +
                                    (options.conditionalStd ? 2 * d : d) * (hidden + 1) + (options.conditionalStd ? 0.0 : d) +
                                    (options.fullCovariance ? d * (d - 1) / 2 : 0.0),
                                "GaussianConditional (hidden " + std::to_string(options.hiddenSize) + ", num_blocks " +
                                    std::to_string(options.numBlocks) + ", output " +
                                    std::to_string(options.outputSize) + ")");
    }
    const int networkOutput = options.conditionalStd ? 2 * options.outputSize : options.outputSize;
    network = nn::ResidualMLP(options.conditionSize, options.hiddenSize, networkOutput, options.numBlocks,
                              options.activation, true);
    if (!options.conditionalStd)
        freeLogStd = Eigen::VectorXd::Zero(options.outputSize);
    if (options.fullCovariance)
        mixing = Eigen::MatrixXd::Identity(options.outputSize, options.outputSize);
    initializeParameters(0);
}

size_t GaussianConditional::mixingOffset() const {
    return network.getNumParameters() + static_cast<size_t>(freeLogStd.size());
}

size_t GaussianConditional::getNumParameters() const {
    const size_t d = static_cast<size_t>(options.outputSize);
    return mixingOffset() + (options.fullCovariance ? d * (d - 1) / 2 : 0);
}

void GaussianConditional::getParameters(double* out) const {
    network.getParameters(out);
    if (!options.conditionalStd)
        Eigen::Map<Eigen::VectorXd>(out + network.getNumParameters(), freeLogStd.size()) = freeLogStd;
    if (options.fullCovariance) {
        double* m = out + mixingOffset();
        for (int i = 1; i < options.outputSize; i++)
            for (int j = 0; j < i; j++)
                *m++ = mixing(i, j);
    }
}

void GaussianConditional::setParameters(const double* in) {
    network.setParameters(in);
    if (!options.conditionalStd)
        freeLogStd = Eigen::Map<const Eigen::VectorXd>(in + network.getNumParameters(), freeLogStd.size());
    if (options.fullCovariance) {
        const double* m = in + mixingOffset();
        for (int i = 1; i < options.outputSize; i++)
            for (int j = 0; j < i; j++)
                mixing(i, j) = *m++;
    }
}

void GaussianConditional::accumulateMixingGradient(const Eigen::MatrixXd& g, double* paramGrad) const {
    double* m = paramGrad + mixingOffset();
    for (int i = 1; i < options.outputSize; i++)
        for (int j = 0; j < i; j++)
            *m++ += g(i, j);
}

std::vector<double> GaussianConditional::getParameters() const {
    std::vector<double> out(getNumParameters());
    getParameters(out.data());
    return out;
}

void GaussianConditional::setParameters(const std::vector<double>& in) {
    if (in.size() != getNumParameters())
        throw Error("GaussianConditional::setParameters: got " + std::to_string(in.size()) + " values, expected " +
                    std::to_string(getNumParameters()));
    setParameters(in.data());
}

void GaussianConditional::initializeParameters(uint64_t seed) {
    network.initializeParameters(seed); // zero output layer: mu(z) = 0 and s(z) = its bias
    if (options.conditionalStd) {
        // The output bias is the last block of the flat parameters, its log-std half the last d entries
        // (set through the flat parameters so that Mixed precision's float copies follow).
        std::vector<double> params = network.getParameters();
        std::fill(params.end() - options.outputSize, params.end(), options.initialLogStd);
        network.setParameters(params);
    } else {
        freeLogStd.setConstant(options.initialLogStd);
    }
    if (options.fullCovariance)
        mixing.setIdentity(); // uncorrelated at the start, as the diagonal model
}

void GaussianConditional::evaluateNetwork(const Eigen::MatrixXd& z, Workspace& ws) const {
    if (z.rows() != options.conditionSize)
        throw Error("GaussianConditional: z is " + shapeString(z.rows(), z.cols()) + ", expected " +
                    std::to_string(options.conditionSize) + " rows (dim z x n, one sample per column)");
    ws.pass = Workspace::Pass::None;
    ws.batch = -1;
    network.forward(z, ws.out, ws.network);
}

void GaussianConditional::meanAndLogStd(const Eigen::MatrixXd& z, Eigen::MatrixXd& mu, Eigen::MatrixXd& logStd) const {
    Workspace ws;
    evaluateNetwork(z, ws);
    const int d = options.outputSize;
    mu = ws.out.topRows(d);
    if (options.conditionalStd)
        logStd = ws.out.bottomRows(d);
    else
        logStd = freeLogStd.replicate(1, z.cols());
}

void GaussianConditional::sample(const Eigen::MatrixXd& z, const Eigen::MatrixXd& eps, Eigen::MatrixXd& X,
                                 Eigen::VectorXd& logq, Workspace& ws, bool save) const {
    const int d = options.outputSize;
    if (eps.rows() != d || eps.cols() != z.cols())
        throw Error("GaussianConditional::sample: eps is " + shapeString(eps.rows(), eps.cols()) + ", expected " +
                    shapeString(d, z.cols()) + " (dim X x the batch of z)");
    evaluateNetwork(z, ws);
    const Eigen::Index n = z.cols();
    if (options.conditionalStd)
        ws.scale = ws.out.bottomRows(d).array().exp().matrix();
    else
        ws.scale = freeLogStd.array().exp().matrix().replicate(1, n);
    if (options.fullCovariance)
        X = ws.out.topRows(d) + (ws.scale.array() * (mixing.triangularView<Eigen::UnitLower>() * eps).array()).matrix();
    else
        X = ws.out.topRows(d) + (ws.scale.array() * eps.array()).matrix();
    // With eps fixed (det M = 1): log N(mu + sigma eps; mu, sigma^2) = -sum(s) - sum(eps^2)/2 - d log(2 pi)/2.
    logq.resize(n);
    for (Eigen::Index j = 0; j < n; j++) {
        const double sumLogStd = options.conditionalStd ? ws.out.col(j).tail(d).sum() : freeLogStd.sum();
        logq[j] = -sumLogStd - 0.5 * eps.col(j).squaredNorm() - d * halfLogTwoPi;
    }
    if (save) {
        ws.noise = eps;
        ws.pass = Workspace::Pass::Sample;
        ws.batch = n;
        ws.owner = this;
    }
}

void GaussianConditional::logProb(const Eigen::MatrixXd& z, const Eigen::MatrixXd& X, Eigen::VectorXd& logq,
                                  Workspace& ws, bool save) const {
    const int d = options.outputSize;
    if (X.rows() != d || X.cols() != z.cols())
        throw Error("GaussianConditional::logProb: X is " + shapeString(X.rows(), X.cols()) + ", expected " +
                    shapeString(d, z.cols()) + " (dim X x the batch of z)");
    evaluateNetwork(z, ws);
    const Eigen::Index n = z.cols();
    if (options.conditionalStd)
        ws.scale = (-ws.out.bottomRows(d).array()).exp().matrix();
    else
        ws.scale = (-freeLogStd.array()).exp().matrix().replicate(1, n);
    if (options.fullCovariance) {
        // r = M^-1 t with t = (X - mu) / sigma
        ws.noise = mixing.triangularView<Eigen::UnitLower>().solve(
            ((X - ws.out.topRows(d)).array() * ws.scale.array()).matrix());
    } else {
        ws.noise = ((X - ws.out.topRows(d)).array() * ws.scale.array()).matrix(); // r = (X - mu) / sigma
    }
    logq.resize(n);
    for (Eigen::Index j = 0; j < n; j++) {
        const double sumLogStd = options.conditionalStd ? ws.out.col(j).tail(d).sum() : freeLogStd.sum();
        logq[j] = -sumLogStd - 0.5 * ws.noise.col(j).squaredNorm() - d * halfLogTwoPi;
    }
    if (save) {
        ws.pass = Workspace::Pass::LogProb;
        ws.batch = n;
        ws.owner = this;
    }
}

void GaussianConditional::checkSaved(const Workspace& ws, Workspace::Pass pass, const char* what) const {
    const char* needed = pass == Workspace::Pass::Sample ? "sample" : "logProb";
    if (ws.batch < 0 || ws.owner != this || ws.pass != pass)
        throw Error(std::string("GaussianConditional::") + what + ": needs a preceding " + needed +
                    "(..., save = true) of this GaussianConditional with this workspace" +
                    (ws.batch >= 0 && ws.owner == this
                         ? std::string(" (the workspace holds a ") +
                               (ws.pass == Workspace::Pass::Sample ? "sample" : "logProb") + " pass)"
                         : std::string()));
}

void GaussianConditional::backpropagate(Workspace& ws, Eigen::MatrixXd* gradZ, double* paramGrad) const {
    // ws.gradOut holds dL/dmu (and dL/ds when conditional, written there); ws.gradLogStd holds dL/ds.
    if (paramGrad != nullptr && !options.conditionalStd) {
        Eigen::Map<Eigen::VectorXd> logStdGrad(paramGrad + network.getNumParameters(), options.outputSize);
        logStdGrad += ws.gradLogStd.rowwise().sum();
    }
    if (gradZ == nullptr && paramGrad == nullptr)
        return;
    network.backward(ws.gradOut, ws.network, gradZ, paramGrad);
}

void GaussianConditional::backwardSample(const Eigen::MatrixXd* gradX, const Eigen::VectorXd* gradLogq,
                                         Eigen::MatrixXd* gradZ, double* paramGrad, Workspace& ws,
                                         Eigen::MatrixXd* gradEps) const {
    checkSaved(ws, Workspace::Pass::Sample, "backwardSample");
    const int d = options.outputSize;
    const Eigen::Index n = ws.batch;
    if (gradX != nullptr && (gradX->rows() != d || gradX->cols() != n))
        throw Error("GaussianConditional::backwardSample: gradX is " + shapeString(gradX->rows(), gradX->cols()) +
                    ", expected " + shapeString(d, n) + " (dim X x the batch of the saved sample)");
    if (gradLogq != nullptr && gradLogq->size() != n)
        throw Error("GaussianConditional::backwardSample: gradLogq has " + std::to_string(gradLogq->size()) +
                    " entries, expected the batch " + std::to_string(n) + " of the saved sample");
    ws.gradOut.resize(network.getOutputSize(), n);
    // X = mu + exp(s) * (M eps): dL/dmu = dL/dX, dL/ds = dL/dX exp(s) (M eps), dL/dM = (exp(s) dL/dX) eps^T
    // (strictly lower part). logq = -sum(s) + const: dlogq/ds = -1.
    if (gradX != nullptr) {
        ws.gradOut.topRows(d) = *gradX;
        if (options.fullCovariance) {
            const Eigen::MatrixXd mixed = mixing.triangularView<Eigen::UnitLower>() * ws.noise;
            ws.gradLogStd = (gradX->array() * ws.scale.array() * mixed.array()).matrix();
            if (paramGrad != nullptr)
                accumulateMixingGradient((gradX->array() * ws.scale.array()).matrix() * ws.noise.transpose(),
                                         paramGrad);
        } else {
            ws.gradLogStd = (gradX->array() * ws.scale.array() * ws.noise.array()).matrix();
        }
    } else {
        ws.gradOut.topRows(d).setZero();
        ws.gradLogStd.setZero(d, n);
    }
    if (gradLogq != nullptr)
        ws.gradLogStd.rowwise() -= gradLogq->transpose();
    if (gradEps != nullptr) {
        // dX/deps = diag(exp(s)) M, d logq / d eps = -eps.
        if (gradX != nullptr) {
            const Eigen::MatrixXd scaled = (gradX->array() * ws.scale.array()).matrix();
            if (options.fullCovariance)
                *gradEps = mixing.transpose().triangularView<Eigen::UnitUpper>() * scaled;
            else
                *gradEps = scaled;
        } else {
            gradEps->setZero(d, n);
        }
        if (gradLogq != nullptr)
            *gradEps -= (ws.noise.array().rowwise() * gradLogq->transpose().array()).matrix();
    }
    if (options.conditionalStd)
        ws.gradOut.bottomRows(d) = ws.gradLogStd;
    backpropagate(ws, gradZ, paramGrad);
}

void GaussianConditional::backwardLogProb(const Eigen::VectorXd& gradLogq, Eigen::MatrixXd* gradZ,
                                          Eigen::MatrixXd* gradX, double* paramGrad, Workspace& ws,
                                          const Eigen::MatrixXd* gradNoise) const {
    checkSaved(ws, Workspace::Pass::LogProb, "backwardLogProb");
    const int d = options.outputSize;
    const Eigen::Index n = ws.batch;
    if (gradLogq.size() != n)
        throw Error("GaussianConditional::backwardLogProb: gradLogq has " + std::to_string(gradLogq.size()) +
                    " entries, expected the batch " + std::to_string(n) + " of the saved logProb");
    if (gradNoise != nullptr && (gradNoise->rows() != d || gradNoise->cols() != n))
        throw Error("GaussianConditional::backwardLogProb: gradNoise is " +
                    shapeString(gradNoise->rows(), gradNoise->cols()) + ", expected " + shapeString(d, n) +
                    " (dim X x the batch of the saved logProb)");
    // logq = -sum(s) - sum(r^2)/2 + const with r = M^-1 t, t = (X - mu) exp(-s). With a = dL/dr
    // = -r gradLogq (+ gradNoise): b = dL/dt = M^-T a, dL/dX = b exp(-s) = -dL/dmu, dL/ds = -b t - gradLogq,
    // dL/dM = -b r^T (strictly lower part). Without M: b = a and t = r.
    Eigen::MatrixXd a = (-(ws.noise.array().rowwise() * gradLogq.transpose().array())).matrix();
    if (gradNoise != nullptr)
        a += *gradNoise;
    ws.gradOut.resize(network.getOutputSize(), n);
    Eigen::MatrixXd b, t;
    if (options.fullCovariance) {
        b = mixing.transpose().triangularView<Eigen::UnitUpper>().solve(a);
        t = mixing.triangularView<Eigen::UnitLower>() * ws.noise;
        if (paramGrad != nullptr)
            accumulateMixingGradient(-b * ws.noise.transpose(), paramGrad);
    } else {
        b = std::move(a);
        t = ws.noise;
    }
    const Eigen::MatrixXd dX = (b.array() * ws.scale.array()).matrix();
    ws.gradOut.topRows(d) = -dX;
    if (gradX != nullptr)
        *gradX = dX;
    ws.gradLogStd = (-(b.array() * t.array())).matrix();
    ws.gradLogStd.rowwise() -= gradLogq.transpose();
    if (options.conditionalStd)
        ws.gradOut.bottomRows(d) = ws.gradLogStd;
    backpropagate(ws, gradZ, paramGrad);
}

nlohmann::json GaussianConditional::getConfig() const {
    return {{"type", getTypeName()},
            {"condition_dimension", options.conditionSize},
            {"output_dimension", options.outputSize},
            {"hidden", options.hiddenSize},
            {"num_blocks", options.numBlocks},
            {"activation", nn::activationName(options.activation)},
            {"std", options.conditionalStd ? "conditional" : "constant"},
            {"initial_log_std", options.initialLogStd},
            {"covariance", options.fullCovariance ? "full" : "diagonal"}};
}

std::unique_ptr<GaussianConditional> GaussianConditional::fromConfig(const nlohmann::json& config) {
    const std::string where = std::string(configName) + " config";
    const std::string prefix = where + ": ";
    io::checkObject(config, where);
    io::checkKeys(config, {"type", "condition_dimension", "output_dimension", "hidden", "num_blocks", "activation", "std",
                           "initial_log_std", "covariance"},
                  where);
    if (config.contains("type") && (!config["type"].is_string() || config["type"].get<std::string>() != configName))
        throw Error(prefix + "\"type\" must be \"" + configName + "\", got " + config["type"].dump());
    GaussianConditionalOptions options;
    options.conditionSize = io::requireInt(config, "condition_dimension", where, 1);
    options.outputSize = io::requireInt(config, "output_dimension", where, 1);
    options.hiddenSize = io::readInt(config, "hidden", options.hiddenSize, where, 1);
    options.numBlocks = io::readInt(config, "num_blocks", options.numBlocks, where, 0);
    if (config.contains("activation")) {
        if (!config["activation"].is_string())
            throw Error(prefix + "\"activation\" must be a string, got " + config["activation"].dump());
        options.activation = nn::parseActivation(config["activation"].get<std::string>());
    }
    options.conditionalStd = readChoice(config, "std", "conditional", "constant",
                                        "(log-std from the network) or \"constant\" (a learnable z-independent log-std)",
                                        options.conditionalStd);
    options.initialLogStd = io::readNumber(config, "initial_log_std", options.initialLogStd, where);
    options.fullCovariance = !readChoice(config, "covariance", "diagonal", "full",
                                         "or \"full\" (a learnable unit-lower-triangular mixing of the fine-scale noise)",
                                         !options.fullCovariance);
    return std::make_unique<GaussianConditional>(options);
}

} // namespace cgflow::flows
