#include "cgflow/flows/SlowFastModel.h"

#include "cgflow/Error.h"
#include "cgflow/flows/RightStochasticLinear.h"

#include <set>

namespace cgflow::flows {

using nlohmann::json;

namespace {

constexpr uint64_t fastStreamOffset = 0x9E3779B97F4A7C15ull;

std::unique_ptr<Bijection> makeMap(const json& config, int dimension) {
    if (!config.is_object() || !config.contains("type") || !config["type"].is_string())
        throw Error("slow_fast model config: \"map\" must be an object with a string \"type\"");
    const std::vector<bool> real(dimension, false);
    const std::string type = config["type"].get<std::string>();
    if (type == "right_stochastic_linear")
        return RightStochasticLinear::fromConfig(config, real);
    if (type == "atom_permutation")
        return AtomPermutation::fromConfig(config, real);
    throw Error("slow_fast model config: map type must be \"right_stochastic_linear\" or \"atom_permutation\", got \"" +
                type + "\"");
}

} // namespace

SlowFastModel::SlowFastModel(const json& config) {
    if (!config.is_object())
        throw Error("slow_fast model config: must be an object with \"slow\", \"fast\" and \"map\"");
    for (const auto& item : config.items())
        if (!std::set<std::string>{"slow", "fast", "map", "seed"}.count(item.key()))
            throw Error("slow_fast model config: unknown key \"" + item.key() + "\" (expected slow, fast, map, seed)");
    for (const char* key : {"slow", "fast", "map"})
        if (!config.contains(key))
            throw Error(std::string("slow_fast model config: \"") + key + "\" is required");
    flow = Flow::fromConfig(config["slow"]);
    if (flow->getContextDimension() > 0)
        throw Error("slow_fast model config: the slow flow must not be conditional");
    const json& mapConfig = config["map"];
    const int numAtoms = mapConfig.value("num_atoms", 0);
    const int components = mapConfig.value("components_per_atom", 3);
    dimension = numAtoms * components;
    if (dimension <= flow->getDimension())
        throw Error("slow_fast model config: the map covers " + std::to_string(dimension) +
                    " coordinates (num_atoms * components_per_atom), which must exceed the slow dimension " +
                    std::to_string(flow->getDimension()));
    map = makeMap(mapConfig, dimension);
    json fastConfig = config["fast"];
    if (!fastConfig.is_object())
        throw Error("slow_fast model config: \"fast\" must be a gaussian_conditional config object");
    if (!fastConfig.contains("condition_dimension"))
        fastConfig["condition_dimension"] = flow->getDimension();
    if (!fastConfig.contains("output_dimension"))
        fastConfig["output_dimension"] = dimension - flow->getDimension();
    fast = GaussianConditional::fromConfig(fastConfig);
    if (fast->getConditionSize() != flow->getDimension() || fast->getOutputSize() != dimension - flow->getDimension())
        throw Error("slow_fast model config: the fast conditional must map dim z = " + std::to_string(flow->getDimension()) +
                    " to dim X = " + std::to_string(dimension - flow->getDimension()));
    mapWorkspace = map->createWorkspace();
    if (config.contains("seed"))
        initializeParameters(config["seed"].get<uint64_t>());
}

json SlowFastModel::getConfig() const {
    return {{"slow", flow->getConfig()}, {"fast", fast->getConfig()}, {"map", map->getConfig()}};
}

size_t SlowFastModel::getNumParameters() const {
    return flow->getNumParameters() + fast->getNumParameters() + map->getNumParameters();
}

void SlowFastModel::getParameters(double* out) const {
    flow->getParameters(out);
    fast->getParameters(out + flow->getNumParameters());
    map->getParameters(out + flow->getNumParameters() + fast->getNumParameters());
}

void SlowFastModel::setParameters(const double* in) {
    flow->setParameters(in);
    fast->setParameters(in + flow->getNumParameters());
    map->setParameters(in + flow->getNumParameters() + fast->getNumParameters());
    savedBatch = -1;
}

void SlowFastModel::initializeParameters(uint64_t seed) {
    flow->initializeParameters(seed);
    fast->initializeParameters(seed + 1);
    map->initializeParameters(seed + 2);
    savedBatch = -1;
}

void SlowFastModel::run(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent,
                        bool save) {
    if (n < 0)
        throw Error("SlowFastModel: n must be >= 0, got " + std::to_string(n));
    Eigen::MatrixXd z;
    Eigen::VectorXd logQz;
    flow->sample(n, seed, nullptr, z, logQz, save);
    completeSample(z, logQz, seed, x, logQ, latent, nullptr, save);
    if (save) {
        savedZ = z;
        savedBatch = n;
    }
}

void SlowFastModel::completeSample(const Eigen::MatrixXd& z, const Eigen::VectorXd& logQz, uint64_t seed,
                                   Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent,
                                   Eigen::VectorXd* logQFast, bool save) {
    const int dz = getSlowDimension(), dX = getFastDimension();
    const Eigen::Index n = z.cols();
    Eigen::MatrixXd eps(dX, n), X;
    Eigen::VectorXd logQX;
    BaseDensity(std::vector<BaseKind>(dX, BaseKind::StandardNormal)).sample(seed + fastStreamOffset, 0, eps);
    fast->sample(z, eps, X, logQX, fastWorkspace, save);
    x.resize(dimension, n);
    x.topRows(dz) = z;
    x.bottomRows(dX) = X;
    if (latent != nullptr)
        *latent = x;
    Eigen::VectorXd logDet = Eigen::VectorXd::Zero(n);
    map->apply(Direction::Forward, x, nullptr, logDet.data(), *mapWorkspace, save);
    logQ = logQz + logQX - logDet;
    if (logQFast != nullptr)
        *logQFast = logQX;
}

void SlowFastModel::sample(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent) {
    run(n, seed, x, logQ, latent, false);
    savedBatch = -1;
}

void SlowFastModel::sampleGivenSlow(const Eigen::MatrixXd& z, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ,
                                    Eigen::VectorXd* logQFast) {
    const int dz = getSlowDimension();
    if (z.rows() != dz)
        throw Error("SlowFastModel::sampleGivenSlow: z has " + std::to_string(z.rows()) + " rows, expected the slow dimension " +
                    std::to_string(dz));
    if (!z.allFinite())
        throw Error("SlowFastModel::sampleGivenSlow: z has non-finite entries");
    Eigen::VectorXd logQz;
    flow->logProb(z, nullptr, logQz);
    completeSample(z, logQz, seed, x, logQ, nullptr, logQFast, false);
    savedBatch = -1;  // the workspaces no longer hold a training pass
    savedLogProbBatch = -1;
}

void SlowFastModel::logProb(const Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent) {
    evaluateLogProb(x, logQ, latent, false);
    savedBatch = -1;
    savedLogProbBatch = -1;
}

void SlowFastModel::logProbForTraining(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context, Eigen::VectorXd& logQ) {
    if (context != nullptr && context->size() > 0)
        throw Error("SlowFastModel: the model is not conditional, but a context was given");
    evaluateLogProb(x, logQ, nullptr, true);
    savedBatch = -1; // the workspaces now hold this pass, not a sample
    savedLogProbBatch = static_cast<int>(x.cols());
}

void SlowFastModel::evaluateLogProb(const Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent, bool save) {
    if (x.rows() != dimension)
        throw Error("SlowFastModel::logProb: x has " + std::to_string(x.rows()) + " rows, expected " +
                    std::to_string(dimension));
    const Eigen::Index n = x.cols();
    Eigen::MatrixXd y = x;
    Eigen::VectorXd logDetInverse = Eigen::VectorXd::Zero(n);
    map->apply(Direction::Inverse, y, nullptr, logDetInverse.data(), *mapWorkspace, save);
    const Eigen::MatrixXd z = y.topRows(getSlowDimension()), X = y.bottomRows(getFastDimension());
    Eigen::VectorXd logQz, logQX;
    flow->logProb(z, nullptr, logQz, save);
    fast->logProb(z, X, logQX, fastWorkspace, save);
    // log|det d y / d x| = -log|det d x / d y|.
    logQ = logQz + logQX + logDetInverse;
    if (latent != nullptr)
        *latent = y;
}

void SlowFastModel::backwardLogProbForTraining(const Eigen::VectorXd& gradLogQ, double* paramGrad) {
    if (savedLogProbBatch < 0)
        throw Error("SlowFastModel::backwardLogProbForTraining: needs a preceding logProbForTraining()");
    if (gradLogQ.size() != savedLogProbBatch)
        throw Error("SlowFastModel::backwardLogProbForTraining: gradLogQ has " + std::to_string(gradLogQ.size()) +
                    " entries, expected " + std::to_string(savedLogProbBatch) + " (the last batch)");
    savedLogProbBatch = -1;
    const int dz = getSlowDimension();
    const size_t flowParams = flow->getNumParameters(), fastParams = fast->getNumParameters();
    gradientBuffer.setZero(static_cast<Eigen::Index>(getNumParameters()));
    double* buffer = gradientBuffer.data();
    // log q(x) = log q(z) + log q(X | z) + log|det dy/dx|, y = [z; X] = f^-1(x): z enters both densities.
    Eigen::MatrixXd gradZFromFast, gradXFast, gradZFromFlow;
    fast->backwardLogProb(gradLogQ, &gradZFromFast, &gradXFast, buffer + flowParams, fastWorkspace);
    flow->backwardLogProb(gradLogQ, buffer, &gradZFromFlow);
    Eigen::MatrixXd gradY(dimension, gradLogQ.size());
    gradY.topRows(dz) = gradZFromFlow + gradZFromFast;
    gradY.bottomRows(getFastDimension()) = gradXFast;
    map->backward(gradY, gradLogQ.data(), nullptr, buffer + flowParams + fastParams, *mapWorkspace);
    if (paramGrad != nullptr)
        for (Eigen::Index i = 0; i < gradientBuffer.size(); i++)
            paramGrad[i] += gradientBuffer[i];
}

void SlowFastModel::sampleForTraining(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                                      Eigen::VectorXd& logQ) {
    if (context != nullptr && context->size() > 0)
        throw Error("SlowFastModel: the model is not conditional, but a context was given");
    run(n, seed, x, logQ, nullptr, true);
    savedLogProbBatch = -1; // the workspaces now hold the sample
}

void SlowFastModel::backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                                   Eigen::MatrixXd* gradContext, Eigen::MatrixXd* gradBase) {
    if (savedBatch < 0)
        throw Error("SlowFastModel::backwardSample: needs a preceding sampleForTraining()");
    if (gradContext != nullptr || gradBase != nullptr)
        throw Error("SlowFastModel::backwardSample: context and base gradients are not available");
    const int n = savedBatch;
    if (gradX.rows() != dimension || gradX.cols() != n || gradLogQ.size() != n)
        throw Error("SlowFastModel::backwardSample: gradX must be " + std::to_string(dimension) + "x" + std::to_string(n) +
                    " and gradLogQ " + std::to_string(n) + " long (the last sample)");
    savedBatch = -1;
    const int dz = getSlowDimension(), dX = getFastDimension();
    const size_t flowParams = flow->getNumParameters(), fastParams = fast->getNumParameters();
    // log q = log q(z) + log q(X|z) - logDet: dL/dlogDet = -dL/dlog q.
    gradientBuffer.setZero(static_cast<Eigen::Index>(getNumParameters()));
    double* buffer = gradientBuffer.data();
    Eigen::MatrixXd grad = gradX;
    Eigen::VectorXd gradLogDet = -gradLogQ;
    map->backward(grad, gradLogDet.data(), nullptr, buffer + flowParams + fastParams, *mapWorkspace);
    const Eigen::MatrixXd gradXFast = grad.bottomRows(dX);
    Eigen::MatrixXd gradZFromFast;
    fast->backwardSample(&gradXFast, &gradLogQ, &gradZFromFast, buffer + flowParams, fastWorkspace);
    Eigen::MatrixXd gradZ = grad.topRows(dz) + gradZFromFast;
    flow->backwardSample(gradZ, gradLogQ, buffer);
    if (paramGrad != nullptr)
        for (Eigen::Index i = 0; i < gradientBuffer.size(); i++)
            paramGrad[i] += gradientBuffer[i];
}

} // namespace cgflow::flows
