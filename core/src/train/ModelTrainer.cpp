#include "cgflow/train/ModelTrainer.h"

#include "cgflow/Error.h"
#include "cgflow/flows/ContinuousFlow.h"
#include "cgflow/io/JsonFields.h"
#include "cgflow/optim/GradientNorm.h"
#include "cgflow/optim/LearningRateSchedule.h"
#include "cgflow/train/FlowMatching.h"
#include "cgflow/util/Parallel.h"
#include "cgflow/util/Random.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace cgflow::train {

using nlohmann::json;

namespace {

constexpr uint32_t FlowMatchingTimeStream = 0x43464D54; // "CFMT": the times t of flow matching

double numberField(const json& config, const char* key, double fallback) {
    if (!config.contains(key))
        return fallback;
    if (!config[key].is_number())
        throw Error(std::string("trainer config: \"") + key + "\" must be a number");
    return config[key].get<double>();
}

int64_t stepsField(const json& config, const char* key) {
    return static_cast<int64_t>(io::readUnsigned(config, key, 0, "trainer config"));
}

} // namespace

ModelTrainerOptions ModelTrainerOptions::fromJson(const json& config) {
    if (!config.is_object())
        throw Error("trainer config must be a JSON object (a dict)");
    static const std::set<std::string> keys = {"optimizer",   "learning_rate", "beta1",        "beta2",
                                               "epsilon",     "weight_decay",  "warmup_steps", "cosine_steps",
                                               "final_learning_rate", "max_gradient_norm", "guard",
                                               "drop_largest_losses"};
    for (auto it = config.begin(); it != config.end(); ++it)
        if (!keys.count(it.key()))
            throw Error("trainer config: unknown key \"" + it.key() + "\"");
    ModelTrainerOptions options;
    const std::string optimizer = config.value("optimizer", std::string("adam"));
    if (optimizer != "adam" && optimizer != "adamw")
        throw Error("trainer config: \"optimizer\" must be \"adam\" or \"adamw\", got \"" + optimizer + "\"");
    options.decoupledWeightDecay = optimizer == "adamw";
    options.adam.learningRate = numberField(config, "learning_rate", options.adam.learningRate);
    options.adam.beta1 = numberField(config, "beta1", options.adam.beta1);
    options.adam.beta2 = numberField(config, "beta2", options.adam.beta2);
    options.adam.epsilon = numberField(config, "epsilon", options.adam.epsilon);
    options.adam.weightDecay = numberField(config, "weight_decay", options.adam.weightDecay);
    options.warmupSteps = stepsField(config, "warmup_steps");
    options.cosineSteps = stepsField(config, "cosine_steps");
    options.finalLearningRate = numberField(config, "final_learning_rate", 0.0);
    options.maxGradientNorm = numberField(config, "max_gradient_norm", options.maxGradientNorm);
    options.dropLargestLosses = static_cast<int>(stepsField(config, "drop_largest_losses"));
    if (config.contains("guard")) {
        const json& g = config["guard"];
        if (g.is_boolean()) {
            if (g.get<bool>())
                options.guard = optim::GradientGuardOptions();
        } else if (g.is_object()) {
            optim::GradientGuardOptions guard;
            for (auto it = g.begin(); it != g.end(); ++it) {
                const std::string& key = it.key();
                if (key == "window" || key == "min_history" || key == "max_consecutive_skips") {
                    const int v = io::readInt(g, key.c_str(), 0, "trainer config: guard");
                    (key == "window" ? guard.windowSize : key == "min_history" ? guard.minHistory
                                                                               : guard.maxConsecutiveSkips) = v;
                } else if (key == "skip_factor" || key == "clip_factor") {
                    if (!it.value().is_number())
                        throw Error("trainer config: guard \"" + key + "\" must be a number");
                    (key == "skip_factor" ? guard.skipFactor : guard.clipFactor) = it.value().get<double>();
                } else {
                    throw Error("trainer config: unknown guard key \"" + key + "\"");
                }
            }
            options.guard = guard;
        } else {
            throw Error("trainer config: \"guard\" must be true/false or an object of guard settings");
        }
    }
    return options;
}

json ModelTrainerOptions::toJson() const {
    json config = {{"optimizer", decoupledWeightDecay ? "adamw" : "adam"},
                   {"learning_rate", adam.learningRate},
                   {"beta1", adam.beta1},
                   {"beta2", adam.beta2},
                   {"epsilon", adam.epsilon},
                   {"weight_decay", adam.weightDecay},
                   {"warmup_steps", warmupSteps},
                   {"cosine_steps", cosineSteps},
                   {"final_learning_rate", finalLearningRate}};
    if (std::isfinite(maxGradientNorm))
        config["max_gradient_norm"] = maxGradientNorm;
    if (dropLargestLosses > 0)
        config["drop_largest_losses"] = dropLargestLosses;
    if (guard)
        config["guard"] = {{"window", guard->windowSize},
                           {"skip_factor", guard->skipFactor},
                           {"clip_factor", guard->clipFactor},
                           {"min_history", guard->minHistory},
                           {"max_consecutive_skips", guard->maxConsecutiveSkips}};
    return config;
}

ModelTrainer::ModelTrainer(Flow& flowIn, const ModelTrainerOptions& optionsIn)
    : ModelTrainer(static_cast<TrainableModel&>(flowIn), optionsIn) {
    flow = &flowIn;
}

Flow& ModelTrainer::getFlow() {
    if (flow == nullptr)
        throw Error("ModelTrainer::getFlow: this trainer trains a model that is not a Flow");
    return *flow;
}

ModelTrainer::ModelTrainer(TrainableModel& modelIn, const ModelTrainerOptions& optionsIn) : model(modelIn), options(optionsIn) {
    const size_t n = model.getNumParameters();
    optimizer = options.decoupledWeightDecay ? std::make_unique<optim::AdamW>(n, options.adam)
                                             : std::make_unique<optim::Adam>(n, options.adam);
    if (!(options.maxGradientNorm > 0))
        throw Error("ModelTrainer: maxGradientNorm must be > 0 (+inf for no clipping)");
    if (options.dropLargestLosses < 0)
        throw Error("ModelTrainer: dropLargestLosses must be >= 0, got " + std::to_string(options.dropLargestLosses));
    if (options.cosineSteps > 0) {
        if (options.cosineSteps <= options.warmupSteps)
            throw Error("ModelTrainer: cosineSteps (the total of warm-up and decay) must exceed warmupSteps");
        optimizer->setSchedule(optim::makeWarmupCosineSchedule(options.adam.learningRate, options.warmupSteps,
                                                               options.cosineSteps, options.finalLearningRate));
    } else if (options.warmupSteps > 0) {
        optimizer->setSchedule(
            std::make_shared<optim::LinearWarmupSchedule>(options.warmupSteps, options.adam.learningRate));
    }
    if (options.guard)
        guard = std::make_unique<optim::GradientGuard>(*options.guard);
}

void ModelTrainer::sample(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                         Eigen::VectorXd& logQ) {
    model.sampleForTraining(n, seed, context, x, logQ);
    lastLogQ = logQ;
    haveSample = true;
}

TrainStepReport ModelTrainer::reverseKLStep(const Eigen::VectorXd& energies, const Eigen::MatrixXd& forces, double beta) {
    if (!haveSample)
        throw Error("ModelTrainer::reverseKLStep: call sample() first (each sample serves one step)");
    const Eigen::Index n = lastLogQ.size();
    if (energies.size() != n)
        throw Error("ModelTrainer::reverseKLStep: energies has " + std::to_string(energies.size()) +
                    " entries, expected one per sample (" + std::to_string(n) + ")");
    if (forces.rows() != model.getDimension() || forces.cols() != n)
        throw Error("ModelTrainer::reverseKLStep: forces is " + std::to_string(forces.rows()) + "x" +
                    std::to_string(forces.cols()) + ", expected " + std::to_string(model.getDimension()) + "x" +
                    std::to_string(n) + " (dimension x samples)");
    if (!(beta > 0) || !std::isfinite(beta))
        throw Error("ModelTrainer::reverseKLStep: beta must be positive and finite");
    haveSample = false;
    if (n == 0)
        throw Error("ModelTrainer::reverseKLStep: energies is an empty batch (the last sample() drew n = 0 "
                    "samples; n must be >= 1 for a training step)");
    std::vector<bool> usable(n);
    int m = 0;
    for (Eigen::Index i = 0; i < n; i++) {
        usable[i] = std::isfinite(energies[i]) && std::isfinite(lastLogQ[i]) && forces.col(i).allFinite();
        m += usable[i];
    }
    int trimmed = 0;
    if (options.dropLargestLosses > 0 && m > 0) {
        std::vector<Eigen::Index> order;
        for (Eigen::Index i = 0; i < n; i++)
            if (usable[i])
                order.push_back(i);
        const auto lossOf = [&](Eigen::Index i) { return beta * energies[i] + lastLogQ[i]; };
        // Largest loss first; among equal losses the later sample first, so the choice never depends on
        // the sort's internals.
        std::sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) {
            return lossOf(a) != lossOf(b) ? lossOf(a) > lossOf(b) : a > b;
        });
        trimmed = std::min(options.dropLargestLosses, m);
        for (int j = 0; j < trimmed; j++)
            usable[order[j]] = false;
        m -= trimmed;
    }
    Eigen::MatrixXd gradX = Eigen::MatrixXd::Zero(model.getDimension(), n);
    Eigen::VectorXd gradLogQ = Eigen::VectorXd::Zero(n);
    double loss = 0;
    for (Eigen::Index i = 0; i < n; i++)
        if (usable[i]) {
            gradX.col(i) = -beta / m * forces.col(i);
            gradLogQ[i] = 1.0 / m;
            loss += (beta * energies[i] + lastLogQ[i]) / m;
        }
    gradient.assign(model.getNumParameters(), 0.0);
    // The backward pass consumes the saved sample even when no sample is usable.
    model.backwardSample(gradX, gradLogQ, gradient.data());
    TrainStepReport report = applyGradient(gradient, loss, m, static_cast<int>(n) - m - trimmed);
    report.numTrimmed = trimmed;
    return report;
}

TrainStepReport ModelTrainer::forwardKLStep(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context,
                                           const Eigen::VectorXd* weights) {
    if (x.cols() == 0)
        throw Error("ModelTrainer::forwardKLStep: x is an empty batch (0 samples); a training step needs at least one");
    if (weights != nullptr) {
        if (weights->size() != x.cols())
            throw Error("ModelTrainer::forwardKLStep: weights has " + std::to_string(weights->size()) +
                        " entries but x has " + std::to_string(x.cols()) + " samples");
        for (Eigen::Index i = 0; i < weights->size(); i++)
            if (!std::isfinite((*weights)[i]) || (*weights)[i] < 0)
                throw Error("ModelTrainer::forwardKLStep: weights[" + std::to_string(i) + "] = " +
                            std::to_string((*weights)[i]) + "; weights must be finite and >= 0");
    }
    Eigen::VectorXd logQ;
    model.logProbForTraining(x, context, logQ); // throws for models without an exact density
    const Eigen::Index n = logQ.size();
    int m = 0;
    double total = 0;
    for (Eigen::Index i = 0; i < n; i++)
        if (std::isfinite(logQ[i])) {
            m++;
            total += weights != nullptr ? (*weights)[i] : 1.0;
        }
    if (weights != nullptr && m > 0 && !(total > 0))
        throw Error("ModelTrainer::forwardKLStep: the weights of the samples with a finite log q sum to 0");
    Eigen::VectorXd gradLogQ = Eigen::VectorXd::Zero(n);
    double loss = 0;
    for (Eigen::Index i = 0; i < n; i++)
        if (std::isfinite(logQ[i])) {
            const double w = (weights != nullptr ? (*weights)[i] : 1.0) / total;
            gradLogQ[i] = -w;
            loss -= w * logQ[i];
        }
    gradient.assign(model.getNumParameters(), 0.0);
    model.backwardLogProbForTraining(gradLogQ, gradient.data());
    return applyGradient(gradient, loss, m, static_cast<int>(n) - m);
}

TrainStepReport ModelTrainer::flowMatchingStep(const Eigen::MatrixXd& x1In, uint64_t seed, bool optimalTransport) {
    Flow& flowModel = getFlow();
    const auto* field = flowModel.getNumLayers() == 1
                            ? dynamic_cast<const flows::ContinuousFlow*>(&flowModel.getLayer(0)) : nullptr;
    if (field == nullptr)
        throw Error("ModelTrainer::flowMatchingStep: the flow must consist of exactly one continuous_flow layer "
                    "(build it with \"coupling\": \"continuous\")");
    const int d = flowModel.getDimension();
    if (x1In.rows() != d)
        throw Error("ModelTrainer::flowMatchingStep: x1 has " + std::to_string(x1In.rows()) +
                    " rows, expected the dimension " + std::to_string(d) + " (one sample per column)");
    if (x1In.cols() == 0)
        throw Error("ModelTrainer::flowMatchingStep: x1 is an empty batch (0 samples); a training step needs at least "
                    "one");
    // Non-finite columns are dropped (and counted); a batch of only such columns is a skipped step.
    std::vector<Eigen::Index> finite;
    for (Eigen::Index i = 0; i < x1In.cols(); i++)
        if (x1In.col(i).allFinite())
            finite.push_back(i);
    const int m = static_cast<int>(finite.size());
    const int numDropped = static_cast<int>(x1In.cols()) - m;
    gradient.assign(model.getNumParameters(), 0.0);
    if (m == 0)
        return applyGradient(gradient, 0.0, 0, numDropped);
    Eigen::MatrixXd x1(d, m), x0(d, m);
    for (int i = 0; i < m; i++)
        x1.col(i) = x1In.col(finite[i]);
    flowModel.getBase().sample(seed, 0, x0);
    Eigen::VectorXd t(m);
    for (int i = 0; i < m; i++)
        t[i] = util::philoxOpenUniforms(seed, FlowMatchingTimeStream, static_cast<uint64_t>(i), 0).u[0];
    const std::vector<bool> circular = flowModel.getCircular();
    if (optimalTransport) {
        const std::vector<int> partner = minimumCostAssignment(pairwiseSquaredDistances(x1, x0, circular));
        Eigen::MatrixXd paired(d, m);
        for (int i = 0; i < m; i++)
            paired.col(i) = x0.col(partner[i]);
        x0.swap(paired);
    }
    Eigen::MatrixXd xt, u;
    flowMatchingTargets(x0, x1, t, circular, xt, u);

    const int numChunks = std::max(1, std::min(flowModel.getNumThreads(), m / 16));
    while (static_cast<int>(flowMatchingWorkspaces.size()) < numChunks)
        flowMatchingWorkspaces.push_back(field->createWorkspace());
    flowMatchingGradients.resize(numChunks);
    std::vector<double> chunkLoss(numChunks, 0.0);
    const double scale = 1.0 / (static_cast<double>(m) * d);
    util::parallelChunks(m, numChunks, [&](int c, int begin, int end) {
        flowMatchingGradients[c] = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(model.getNumParameters()));
        auto& ws = flows::workspaceAs<flows::ContinuousFlowWorkspace>(*flowMatchingWorkspaces[c], "ContinuousFlow");
        chunkLoss[c] = field->flowMatchingLoss(t.segment(begin, end - begin), xt.middleCols(begin, end - begin),
                                               u.middleCols(begin, end - begin), scale,
                                               flowMatchingGradients[c].data(), ws);
    });
    double loss = 0;
    for (int c = 0; c < numChunks; c++) {
        loss += chunkLoss[c];
        Eigen::Map<Eigen::VectorXd>(gradient.data(), static_cast<Eigen::Index>(gradient.size())) +=
            flowMatchingGradients[c];
    }
    return applyGradient(gradient, loss * scale, m, numDropped);
}

TrainStepReport ModelTrainer::applyGradient(std::vector<double>& grad, double loss, int numSamples, int numDropped) {
    if (grad.size() != model.getNumParameters())
        throw Error("ModelTrainer::applyGradient: got " + std::to_string(grad.size()) + " values, expected " +
                    std::to_string(model.getNumParameters()));
    TrainStepReport report;
    report.loss = loss;
    report.numSamples = numSamples;
    report.numDropped = numDropped;
    report.gradientNorm = optim::globalGradientNorm(grad.data(), grad.size());
    if (numSamples == 0 || !std::isfinite(report.gradientNorm)) {
        report.action = optim::GradientAction::Skip;
    } else if (guard) {
        report.action = guard->apply(grad.data(), grad.size()).action;
    }
    if (report.action != optim::GradientAction::Skip) {
        // After the guard (which may have scaled them), the gradients' norm against the hard limit.
        if (optim::clipGradientNorm(grad.data(), grad.size(), options.maxGradientNorm) > options.maxGradientNorm)
            report.action = optim::GradientAction::Clip;
        report.learningRate = optimizer->getLearningRate();
        parameters.resize(model.getNumParameters());
        model.getParameters(parameters.data());
        optimizer->step(parameters.data(), grad.data());
        model.setParameters(parameters.data());
    }
    report.step = optimizer->getStepCount();
    return report;
}

} // namespace cgflow::train
