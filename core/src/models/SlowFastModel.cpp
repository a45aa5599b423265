#include "cgflow/models/SlowFastModel.h"

#include "cgflow/Error.h"
#include "cgflow/flows/AtomPermutation.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/io/JsonFields.h"
#include "cgflow/flows/RightStochasticLinear.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>

namespace cgflow::models {

using namespace cgflow::flows; // the building blocks of these models

using nlohmann::json;

namespace {

constexpr uint64_t fastStreamOffset = 0x9E3779B97F4A7C15ull;
const double halfLogTwoPi = 0.5 * std::log(2.0 * M_PI);

/**
 * log q(X | z) with the fast flow: the Gaussian's logq = -sum(s) - |u|^2/2 - d log(2 pi)/2 treats its noise u
 * as standard normal; u = g(eps; z) has the fast flow's density log q_g(u | z) instead.
 */
void replaceNoiseDensity(Eigen::VectorXd& logQX, const Eigen::MatrixXd& u, const Eigen::VectorXd& logQg) {
    for (Eigen::Index j = 0; j < u.cols(); j++)
        logQX[j] += 0.5 * u.col(j).squaredNorm() + static_cast<double>(u.rows()) * halfLogTwoPi + logQg[j];
}

/** The map's "type", checked: Error naming it unless it is one of the known maps. */
std::string mapType(const json& config) {
    if (!config.is_object() || !config.contains("type") || !config["type"].is_string())
        throw Error("slow_fast model config: \"map\" must be an object with a string \"type\"");
    const std::string type = config["type"].get<std::string>();
    if (type != "right_stochastic_linear" && type != "atom_permutation")
        throw Error("slow_fast model config: map type must be \"right_stochastic_linear\" or \"atom_permutation\", "
                    "got \"" + type + "\"");
    return type;
}

std::unique_ptr<Bijection> makeMap(const json& config, int dimension) {
    const std::vector<bool> real(dimension, false);
    if (mapType(config) == "right_stochastic_linear")
        return RightStochasticLinear::fromConfig(config, real);
    return AtomPermutation::fromConfig(config, real);
}

} // namespace

SlowFastModel::SlowFastModel(const json& config) {
    if (!config.is_object())
        throw Error("slow_fast model config: must be an object with \"slow\", \"fast\" and \"map\"");
    for (const auto& item : config.items())
        if (!std::set<std::string>{"slow", "fast", "fast_flow", "map", "seed"}.count(item.key()))
            throw Error("slow_fast model config: unknown key \"" + item.key() +
                        "\" (expected slow, fast, fast_flow, map, seed)");
    for (const char* key : {"slow", "fast", "map"})
        if (!config.contains(key))
            throw Error(std::string("slow_fast model config: \"") + key + "\" is required");
    flow = Flow::fromConfig(config["slow"]);
    if (flow->getContextDimension() > 0)
        throw Error("slow_fast model config: the slow flow must not be conditional");
    const json& mapConfig = config["map"];
    // The type first: an unknown one is reported by name, not as a map of 0 coordinates.
    mapType(mapConfig);
    // Read as checked ints (json::value() would throw nlohmann's type_error for a string and wrap
    // 2^32 + 1 to 1) and multiplied without int overflow.
    const int numAtoms = io::readInt(mapConfig, "num_atoms", 0, "slow_fast model config: \"map\"");
    const int components = io::readInt(mapConfig, "components_per_atom", 3, "slow_fast model config: \"map\"");
    const int64_t coordinates = static_cast<int64_t>(numAtoms) * components;
    if (coordinates > MaxFlowDimension)
        throw Error("slow_fast model config: the map covers " + std::to_string(coordinates) +
                    " coordinates (num_atoms * components_per_atom), more than " + std::to_string(MaxFlowDimension));
    dimension = static_cast<int>(std::max<int64_t>(coordinates, 0));
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
    if (config.contains("fast_flow")) {
        json fastFlowConfig = config["fast_flow"];
        if (!fastFlowConfig.is_object())
            throw Error("slow_fast model config: \"fast_flow\" must be a flow config object");
        const int dz = flow->getDimension(), dX = dimension - dz;
        if (!fastFlowConfig.contains("dimension"))
            fastFlowConfig["dimension"] = dX;
        if (!fastFlowConfig.contains("context_dimension"))
            fastFlowConfig["context_dimension"] = dz;
        if (!fastFlowConfig.contains("context_circular")) {
            json circularContext = json::array();
            const std::vector<bool> slowCircular = flow->getCircular();
            for (int i = 0; i < dz; i++)
                if (slowCircular[i])
                    circularContext.push_back(i);
            fastFlowConfig["context_circular"] = circularContext;
        }
        fastFlow = Flow::fromConfig(fastFlowConfig);
        if (fastFlow->getDimension() != dX || fastFlow->getContextDimension() != dz)
            throw Error("slow_fast model config: the fast flow must have dimension dim X = " + std::to_string(dX) +
                        " and context dimension dim z = " + std::to_string(dz) + ", got " +
                        std::to_string(fastFlow->getDimension()) + " and " +
                        std::to_string(fastFlow->getContextDimension()));
        for (BaseKind kind : fastFlow->getBase().getKinds())
            if (kind != BaseKind::StandardNormal)
                throw Error("slow_fast model config: the fast flow's base must be standard normal in every dimension "
                            "(it transforms the Gaussian's noise), got \"" + baseKindName(kind) + "\"");
    }
    mapWorkspace = map->createWorkspace();
    if (config.contains("seed"))
        initializeParameters(config["seed"].get<uint64_t>());
}

json SlowFastModel::getConfig() const {
    json config = {{"slow", flow->getConfig()}, {"fast", fast->getConfig()}, {"map", map->getConfig()}};
    if (fastFlow)
        config["fast_flow"] = fastFlow->getConfig();
    return config;
}

Flow& SlowFastModel::getFastFlow() {
    if (!fastFlow)
        throw Error("SlowFastModel::getFastFlow: the model has no fast flow (no \"fast_flow\" in its config)");
    return *fastFlow;
}

size_t SlowFastModel::fastFlowOffset() const {
    return flow->getNumParameters() + fast->getNumParameters();
}

size_t SlowFastModel::mapOffset() const {
    return fastFlowOffset() + (fastFlow ? fastFlow->getNumParameters() : 0);
}

size_t SlowFastModel::getNumParameters() const {
    return mapOffset() + map->getNumParameters();
}

void SlowFastModel::getParameters(double* out) const {
    flow->getParameters(out);
    fast->getParameters(out + flow->getNumParameters());
    if (fastFlow)
        fastFlow->getParameters(out + fastFlowOffset());
    map->getParameters(out + mapOffset());
}

void SlowFastModel::setParameters(const double* in) {
    flow->setParameters(in);
    fast->setParameters(in + flow->getNumParameters());
    if (fastFlow)
        fastFlow->setParameters(in + fastFlowOffset());
    map->setParameters(in + mapOffset());
    savedBatch = -1;
}

void SlowFastModel::initializeParameters(uint64_t seed) {
    flow->initializeParameters(seed);
    fast->initializeParameters(seed + 1);
    map->initializeParameters(seed + 2);
    if (fastFlow)
        fastFlow->initializeParameters(seed + 3);
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
    if (fastFlow) {
        Eigen::MatrixXd u;
        Eigen::VectorXd logQg;
        fastFlow->transformFromBase(eps, &z, u, logQg, save);
        fast->sample(z, u, X, logQX, fastWorkspace, save);
        replaceNoiseDensity(logQX, u, logQg);
    } else {
        fast->sample(z, eps, X, logQX, fastWorkspace, save);
    }
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
    if (fastFlow) {
        Eigen::VectorXd logQg;
        fastFlow->logProb(fastWorkspace.noise, &z, logQg, save);  // the Gaussian's standardized noise r
        replaceNoiseDensity(logQX, fastWorkspace.noise, logQg);
    }
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
    const size_t flowParams = flow->getNumParameters();
    gradientBuffer.setZero(static_cast<Eigen::Index>(getNumParameters()));
    double* buffer = gradientBuffer.data();
    // log q(x) = log q(z) + log q(X | z) + log|det dy/dx|, y = [z; X] = f^-1(x): z enters both densities.
    // With the fast flow, log q(X | z) = logq_Gaussian + |r|^2/2 + log q_g(r | z), r the Gaussian's noise.
    Eigen::MatrixXd gradZFromFast, gradXFast, gradZFromFlow, gradNoise;
    Eigen::MatrixXd gradZFromFastFlow = Eigen::MatrixXd::Zero(dz, gradLogQ.size());
    if (fastFlow) {
        fastFlow->backwardLogProb(gradLogQ, buffer + fastFlowOffset(), &gradNoise, &gradZFromFastFlow);
        gradNoise += (fastWorkspace.noise.array().rowwise() * gradLogQ.transpose().array()).matrix();
    }
    fast->backwardLogProb(gradLogQ, &gradZFromFast, &gradXFast, buffer + flowParams, fastWorkspace,
                          fastFlow ? &gradNoise : nullptr);
    flow->backwardLogProb(gradLogQ, buffer, &gradZFromFlow);
    Eigen::MatrixXd gradY(dimension, gradLogQ.size());
    gradY.topRows(dz) = gradZFromFlow + gradZFromFast + gradZFromFastFlow;
    gradY.bottomRows(getFastDimension()) = gradXFast;
    map->backward(gradY, gradLogQ.data(), nullptr, buffer + mapOffset(), *mapWorkspace);
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
    const size_t flowParams = flow->getNumParameters();
    // log q = log q(z) + log q(X|z) - logDet: dL/dlogDet = -dL/dlog q.
    gradientBuffer.setZero(static_cast<Eigen::Index>(getNumParameters()));
    double* buffer = gradientBuffer.data();
    Eigen::MatrixXd grad = gradX;
    Eigen::VectorXd gradLogDet = -gradLogQ;
    map->backward(grad, gradLogDet.data(), nullptr, buffer + mapOffset(), *mapWorkspace);
    const Eigen::MatrixXd gradXFast = grad.bottomRows(dX);
    Eigen::MatrixXd gradZFromFast, gradNoise;
    fast->backwardSample(&gradXFast, &gradLogQ, &gradZFromFast, buffer + flowParams, fastWorkspace,
                         fastFlow ? &gradNoise : nullptr);
    Eigen::MatrixXd gradZ = grad.topRows(dz) + gradZFromFast;
    if (fastFlow) {
        // The Gaussian's noise u = g(eps; z) (its workspace's noise): log q(X | z) also carries +|u|^2/2 and
        // log q_g(u | z), whose sample pass the fast flow kept.
        gradNoise += (fastWorkspace.noise.array().rowwise() * gradLogQ.transpose().array()).matrix();
        Eigen::MatrixXd gradZFromFastFlow = Eigen::MatrixXd::Zero(dz, n);
        fastFlow->backwardSample(gradNoise, gradLogQ, buffer + fastFlowOffset(), &gradZFromFastFlow);
        gradZ += gradZFromFastFlow;
    }
    flow->backwardSample(gradZ, gradLogQ, buffer);
    if (paramGrad != nullptr)
        for (Eigen::Index i = 0; i < gradientBuffer.size(); i++)
            paramGrad[i] += gradientBuffer[i];
}

} // namespace cgflow::models
