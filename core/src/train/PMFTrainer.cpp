#include "cgflow/train/PMFTrainer.h"

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"
#include "cgflow/optim/GradientNorm.h"
#include "cgflow/optim/LearningRateSchedule.h"
#include "cgflow/util/Parallel.h"
#include "cgflow/util/Random.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>

namespace cgflow::train {

using coords::Feature;
using coords::PeriodicBox;
using nlohmann::json;

namespace {

const char* const optionsWhere = "PMF trainer options";

std::string formatNumber(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

std::string shapeString(Eigen::Index rows, Eigen::Index cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

// ---------------------------------------------------------------------------------------------
// Random draws. Counter-based, so a member's split, bootstrap and shuffles depend only on (seed,
// member, epoch), never on which thread trains it or on the other members.

enum class DrawPurpose : uint32_t { Split = 1, Bootstrap = 2, Shuffle = 3 };

// The purpose in the top byte, the member below it (members are far fewer than 2^24).
uint32_t streamTag(DrawPurpose purpose, int member) {
    return (static_cast<uint32_t>(purpose) << 24) | static_cast<uint32_t>(member);
}

// Uniform integer in [0, bound) from the index-th uniform of a stream (two uniforms per Philox call).
int drawIndex(uint64_t seed, uint32_t tag, uint32_t block, size_t index, int bound) {
    const util::PhiloxUniforms u = util::philoxOpenUniforms(seed, tag, index / 2, block);
    const int k = static_cast<int>(u.u[index % 2] * static_cast<double>(bound));
    return std::min(k, bound - 1);
}

// Fisher-Yates with our own draws: std::shuffle's algorithm differs between standard libraries.
void shuffleInPlace(std::vector<int>& items, uint64_t seed, uint32_t tag, uint32_t block) {
    for (size_t i = items.size(); i-- > 1;)
        std::swap(items[i], items[drawIndex(seed, tag, block, i, static_cast<int>(i + 1))]);
}

// ---------------------------------------------------------------------------------------------
// The samples of one fit, with everything the losses read. Positions and forces stay in the
// caller's arrays (CG datasets can be large); column s starts at data + s * stride.

struct Dataset {
    bool forceMatching = false;
    Eigen::MatrixXd inputs;  // feature values (inputSize x n): given (labels) or computed (forces)
    Eigen::VectorXd energies; // labels
    const double* positions = nullptr;
    const double* forces = nullptr;
    Eigen::Index positionStride = 0, forceStride = 0;
    Eigen::Index dimension = 0; // 3N
    const std::vector<Feature>* features = nullptr;
    PeriodicBox box;
    std::vector<int> usable;  // columns with finite data, in order
    int numSkipped = 0;
    // For errors: the arguments (positions and forces, or inputs and energies) and how many samples
    // each made unusable (a sample may count for both).
    const char* firstName = "inputs";
    const char* secondName = "energies";
    int numFirstNonFinite = 0, numSecondNonFinite = 0;

    /** Error naming the arguments when no sample is usable: an empty batch, or every sample non-finite. */
    void checkSomeUsable() const {
        if (!usable.empty())
            return;
        if (numSkipped == 0)
            throw Error(std::string(firstName) + ": an empty batch (0 samples); training needs at least one");
        std::string names;
        if (numFirstNonFinite > 0)
            names = firstName;
        if (numSecondNonFinite > 0)
            names += (names.empty() ? "" : " and ") + std::string(secondName);
        throw Error(names + ": no usable sample: all " + std::to_string(numSkipped) +
                    " samples have non-finite values (" + firstName + " in " + std::to_string(numFirstNonFinite) +
                    ", " + secondName + " in " + std::to_string(numSecondNonFinite) + ")");
    }

    // The squared errors one sample contributes: one energy, or 3N force components.
    double termsPerSample() const { return forceMatching ? static_cast<double>(dimension) : 1.0; }
};

struct BatchScratch {
    nn::MLP::Workspace workspace;
    Eigen::MatrixXd X, Y, dY, G, V;
    Eigen::VectorXd residual;
};

// The sum of the squared errors of `count` samples, and, if grad is non-null, += the gradient of
// that sum divided by `normalization` (the number of terms of the loss being differentiated).
double batchSquaredError(const nn::MLP& mlp, const Dataset& data, const int* columns, int count,
                         double normalization, BatchScratch& s, double* grad) {
    const Eigen::Index inputSize = data.inputs.rows();
    s.X.resize(inputSize, count);
    for (int k = 0; k < count; k++)
        s.X.col(k) = data.inputs.col(columns[k]);
    mlp.forward(s.X, s.Y, s.workspace);
    if (!data.forceMatching) {
        s.dY.resize(1, count);
        double sum = 0;
        for (int k = 0; k < count; k++) {
            const double r = s.Y(0, k) - data.energies[columns[k]];
            sum += r * r;
            s.dY(0, k) = 2.0 * r / normalization;
        }
        if (grad != nullptr)
            mlp.backward(s.dY, s.workspace, nullptr, grad);
        return sum;
    }
    // F_pred = -J^T g with g = dU/df; the loss's gradient in g is v = -J (dL/dF_pred).
    mlp.inputGradient(s.workspace, s.G);
    s.V.resize(inputSize, count);
    s.residual.resize(data.dimension);
    double sum = 0;
    for (int k = 0; k < count; k++) {
        const double* position = data.positions + columns[k] * data.positionStride;
        const double* target = data.forces + columns[k] * data.forceStride;
        s.residual.setZero();
        coords::backpropFeatures(*data.features, position, data.box, s.G.col(k).data(), s.residual.data());
        // residual = F_pred - F = -J^T g - F
        s.residual = -s.residual - Eigen::Map<const Eigen::VectorXd>(target, data.dimension);
        sum += s.residual.squaredNorm();
        if (grad != nullptr) {
            s.residual *= -2.0 / normalization; // -dL/dF_pred
            coords::jvpFeatures(*data.features, position, data.box, s.residual.data(), s.V.col(k).data());
        }
    }
    if (grad != nullptr)
        mlp.mixedParameterGradient(s.V, s.workspace, grad);
    return sum;
}

// The mean loss over `columns`, in chunks of batchSize; grad (if non-null) += its gradient.
double meanLoss(const nn::MLP& mlp, const Dataset& data, const std::vector<int>& columns, int batchSize,
                BatchScratch& scratch, double* grad) {
    const double normalization = static_cast<double>(columns.size()) * data.termsPerSample();
    double sum = 0;
    for (size_t start = 0; start < columns.size(); start += static_cast<size_t>(batchSize)) {
        const int count = static_cast<int>(std::min(columns.size() - start, static_cast<size_t>(batchSize)));
        sum += batchSquaredError(mlp, data, columns.data() + start, count, normalization, scratch, grad);
    }
    return sum / normalization;
}

void checkBox(const PeriodicBox& box) {
    if (!box.periodic)
        return;
    const bool finite = box.a.allFinite() && box.b.allFinite() && box.c.allFinite();
    if (!finite || box.a[1] != 0 || box.a[2] != 0 || box.b[2] != 0 || !(box.a[0] > 0 && box.b[1] > 0 && box.c[2] > 0))
        throw Error("box: a periodic box must be in OpenMM's reduced form, a = (ax, 0, 0), b = (bx, by, 0), "
                    "c = (cx, cy, cz), finite, with ax, by, cz > 0");
}

void checkFeatures(const std::vector<Feature>& features, int numParticles) {
    if (features.empty())
        throw Error("features: force matching needs the features the PMF is computed from; none were given");
    for (size_t i = 0; i < features.size(); i++)
        coords::validateFeature(features[i], numParticles, "features[" + std::to_string(i) + "]");
}

Dataset labelDataset(const Eigen::Ref<const Eigen::MatrixXd>& inputs, const Eigen::Ref<const Eigen::VectorXd>& energies,
                     int inputSize) {
    if (inputs.rows() != inputSize)
        throw Error("inputs: " + std::to_string(inputs.rows()) + " rows (feature values per sample), but the ensemble takes " +
                    std::to_string(inputSize) + " inputs");
    if (energies.size() != inputs.cols())
        throw Error("energies: " + std::to_string(energies.size()) + " values for " + std::to_string(inputs.cols()) +
                    " samples (columns of inputs)");
    Dataset data;
    data.inputs = inputs;
    data.energies = energies;
    for (Eigen::Index s = 0; s < inputs.cols(); s++) {
        const bool inputsFinite = inputs.col(s).allFinite(), energyFinite = std::isfinite(energies[s]);
        if (inputsFinite && energyFinite)
            data.usable.push_back(static_cast<int>(s));
        else {
            data.numSkipped++;
            data.numFirstNonFinite += !inputsFinite;
            data.numSecondNonFinite += !energyFinite;
        }
    }
    return data;
}

Dataset forceDataset(const Eigen::Ref<const Eigen::MatrixXd>& positions, const Eigen::Ref<const Eigen::MatrixXd>& forces,
                     const PeriodicBox& box, const std::vector<Feature>& features) {
    if (positions.rows() == 0 || positions.rows() % 3 != 0)
        throw Error("positions: " + std::to_string(positions.rows()) +
                    " rows; expected 3N (x, y, z of N particles) per sample (column)");
    if (forces.rows() != positions.rows() || forces.cols() != positions.cols())
        throw Error("forces: " + shapeString(forces.rows(), forces.cols()) + ", expected the shape of positions, " +
                    shapeString(positions.rows(), positions.cols()));
    checkFeatures(features, static_cast<int>(positions.rows() / 3));
    checkBox(box);
    Dataset data;
    data.forceMatching = true;
    data.firstName = "positions";
    data.secondName = "forces";
    data.positions = positions.data();
    data.forces = forces.data();
    data.positionStride = positions.outerStride();
    data.forceStride = forces.outerStride();
    data.dimension = positions.rows();
    data.features = &features;
    data.box = box;
    data.inputs.setZero(coords::totalWidth(features), positions.cols());
    for (Eigen::Index s = 0; s < positions.cols(); s++) {
        const bool positionsFinite = positions.col(s).allFinite(), forcesFinite = forces.col(s).allFinite();
        if (positionsFinite && forcesFinite) {
            data.usable.push_back(static_cast<int>(s));
            coords::computeFeatures(features, positions.col(s).data(), box, data.inputs.col(s).data());
        } else {
            data.numSkipped++;
            data.numFirstNonFinite += !positionsFinite;
            data.numSecondNonFinite += !forcesFinite;
        }
    }
    return data;
}

} // namespace

// -------------------------------------------------------------------------------------------------
// Options

void PMFTrainerOptions::validate() const {
    const std::string where = optionsWhere;
    auto fail = [&](const std::string& field, const std::string& requirement, double value) {
        throw Error(where + ": \"" + field + "\" must be " + requirement + ", got " + formatNumber(value));
    };
    if (batchSize < 1)
        fail("batch_size", "an integer >= 1", batchSize);
    if (epochs < 1)
        fail("epochs", "an integer >= 1", epochs);
    if (steps < 0)
        fail("steps", "an integer >= 0", static_cast<double>(steps));
    if (!std::isfinite(adam.learningRate) || adam.learningRate < 0)
        fail("learning_rate", "finite and >= 0", adam.learningRate);
    if (!(adam.beta1 >= 0 && adam.beta1 < 1))
        fail("beta1", "in [0, 1)", adam.beta1);
    if (!(adam.beta2 >= 0 && adam.beta2 < 1))
        fail("beta2", "in [0, 1)", adam.beta2);
    if (!std::isfinite(adam.epsilon) || adam.epsilon <= 0)
        fail("epsilon", "finite and > 0", adam.epsilon);
    if (!std::isfinite(adam.weightDecay) || adam.weightDecay < 0)
        fail("weight_decay", "finite and >= 0", adam.weightDecay);
    if (!(learningRateDecay > 0 && learningRateDecay <= 1))
        fail("learning_rate_decay", "in (0, 1]", learningRateDecay);
    if (!(maxGradientNorm > 0))
        fail("max_gradient_norm", "> 0", maxGradientNorm);
    if (!(validationFraction >= 0 && validationFraction < 1))
        fail("validation_fraction", "in [0, 1)", validationFraction);
    if (numThreads < 1)
        fail("threads", "an integer >= 1", numThreads);
}

PMFTrainerOptions PMFTrainerOptions::fromJson(const json& config) {
    const std::string where = optionsWhere;
    io::checkObject(config, where);
    io::checkKeys(config,
                  {"batch_size", "epochs", "steps", "learning_rate", "beta1", "beta2", "epsilon", "weight_decay",
                   "learning_rate_decay", "max_gradient_norm", "validation_fraction", "bootstrap", "seed", "threads"},
                  where);
    if (config.contains("epochs") && config.contains("steps"))
        throw Error(where + ": give \"epochs\" or \"steps\", not both");
    PMFTrainerOptions options;
    options.batchSize = io::readInt(config, "batch_size", options.batchSize, where, 1);
    options.epochs = io::readInt(config, "epochs", options.epochs, where, 1);
    const uint64_t steps = io::readUnsigned(config, "steps", 0, where);
    if (steps > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw Error(where + ": \"steps\" is too large");
    options.steps = static_cast<int64_t>(steps);
    options.adam.learningRate = io::readNumber(config, "learning_rate", options.adam.learningRate, where);
    options.adam.beta1 = io::readNumber(config, "beta1", options.adam.beta1, where);
    options.adam.beta2 = io::readNumber(config, "beta2", options.adam.beta2, where);
    options.adam.epsilon = io::readNumber(config, "epsilon", options.adam.epsilon, where);
    options.adam.weightDecay = io::readNumber(config, "weight_decay", options.adam.weightDecay, where);
    options.learningRateDecay = io::readNumber(config, "learning_rate_decay", options.learningRateDecay, where);
    options.maxGradientNorm = io::readNumber(config, "max_gradient_norm", options.maxGradientNorm, where);
    options.validationFraction = io::readNumber(config, "validation_fraction", options.validationFraction, where);
    options.bootstrap = io::readBool(config, "bootstrap", options.bootstrap, where);
    options.seed = io::readUnsigned(config, "seed", options.seed, where);
    options.numThreads = io::readInt(config, "threads", options.numThreads, where, 1);
    options.validate();
    return options;
}

json PMFTrainerOptions::toJson() const {
    json config = {{"batch_size", batchSize},
                   {"learning_rate", adam.learningRate},
                   {"beta1", adam.beta1},
                   {"beta2", adam.beta2},
                   {"epsilon", adam.epsilon},
                   {"weight_decay", adam.weightDecay},
                   {"learning_rate_decay", learningRateDecay},
                   {"validation_fraction", validationFraction},
                   {"bootstrap", bootstrap},
                   {"seed", seed},
                   {"threads", numThreads}};
    if (steps > 0)
        config["steps"] = steps;
    else
        config["epochs"] = epochs;
    // JSON has no infinity: no clipping is the absence of the key.
    if (std::isfinite(maxGradientNorm))
        config["max_gradient_norm"] = maxGradientNorm;
    return config;
}

// -------------------------------------------------------------------------------------------------
// The trainer

namespace {

// One member's training, one epoch at a time: its own optimizer, shuffles and best-validation copy.
// It reads and writes only its own member, its own state and its own column of the history, so
// members can run on any threads, and its result does not depend on which.
class MemberTraining {
public:
    MemberTraining(nn::MLP& mlp, int member, const PMFTrainerOptions& options, int64_t stepsPerEpoch)
        : mlp(mlp), member(member), options(options), adam(mlp.getNumParameters(), options.adam) {
        adam.setSchedule(std::make_shared<optim::ExponentialDecaySchedule>(options.adam.learningRate,
                                                                           options.learningRateDecay, stepsPerEpoch));
        parameters.resize(mlp.getNumParameters());
        gradient.resize(mlp.getNumParameters());
        mlp.getParameters(parameters.data());
    }

    /** Continues from a saved state (same architecture, checked by the caller). */
    void restore(const PMFMemberState& state) {
        parameters = state.parameters;
        mlp.setParameters(parameters.data());
        adam.setState(state.optimizer);
        best = state.bestParameters;
        bestLoss = state.bestValidationLoss;
        bestEpoch = state.bestEpoch;
        step = state.optimizer.stepCount;
    }

    PMFMemberState save() const {
        PMFMemberState state;
        state.parameters = parameters;
        state.bestParameters = best;
        state.bestValidationLoss = bestLoss;
        state.bestEpoch = bestEpoch;
        state.optimizer = adam.getState();
        return state;
    }

    void trainEpoch(int epoch, const Dataset& data, int64_t totalSteps, PMFTrainingHistory& history) {
        const std::vector<int>& train = history.trainIndices[member];
        const std::vector<int>& validation = history.validationIndices[member];
        const double termsPerSample = data.termsPerSample();
        const size_t numParameters = parameters.size();
        order = train;
        shuffleInPlace(order, options.seed, streamTag(DrawPurpose::Shuffle, member), static_cast<uint32_t>(epoch));
        double squaredError = 0;
        int64_t samples = 0;
        for (size_t start = 0; start < order.size() && step < totalSteps; start += static_cast<size_t>(options.batchSize)) {
            const int count = static_cast<int>(std::min(order.size() - start, static_cast<size_t>(options.batchSize)));
            std::fill(gradient.begin(), gradient.end(), 0.0);
            squaredError += batchSquaredError(mlp, data, order.data() + start, count, count * termsPerSample, scratch,
                                              gradient.data());
            samples += count;
            const double norm = optim::clipGradientNorm(gradient.data(), numParameters, options.maxGradientNorm);
            if (!std::isfinite(norm))
                throw Error("PMFTrainer: member " + std::to_string(member) + ", epoch " + std::to_string(epoch) +
                            ": the gradient is not finite (the fit diverged); lower \"learning_rate\" or set "
                            "\"max_gradient_norm\"");
            adam.step(parameters, gradient);
            mlp.setParameters(parameters.data());
            step++;
        }
        history.trainLoss[epoch][member] = squaredError / (static_cast<double>(samples) * termsPerSample);
        if (!validation.empty()) {
            const double loss = meanLoss(mlp, data, validation, options.batchSize, scratch, nullptr);
            history.validationLoss[epoch][member] = loss;
            // Strictly lower: on ties the earlier (less trained) parameters stay.
            if (loss < bestLoss) {
                bestLoss = loss;
                bestEpoch = epoch;
                best = parameters;
            }
        }
    }

    /** After the last epoch: the member takes its best-validation parameters. */
    void finish(int numEpochs, PMFTrainingHistory& history) {
        if (bestEpoch >= 0) {
            mlp.setParameters(best.data());
            history.bestEpoch[member] = bestEpoch;
            history.bestValidationLoss[member] = bestLoss;
        } else {
            history.bestEpoch[member] = numEpochs - 1;
        }
    }

private:
    nn::MLP& mlp;
    int member;
    const PMFTrainerOptions& options;
    optim::Adam adam;
    std::vector<double> parameters, gradient, best;
    std::vector<int> order;
    BatchScratch scratch;
    double bestLoss = std::numeric_limits<double>::infinity();
    int bestEpoch = -1;
    int64_t step = 0;
};

} // namespace

PMFTrainer::PMFTrainer(nn::MLPEnsemble& ensembleIn, std::vector<Feature> featuresIn, const PMFTrainerOptions& optionsIn)
    : ensemble(ensembleIn), features(std::move(featuresIn)), options(optionsIn) {
    if (ensemble.getNumMembers() < 1)
        throw Error("ensemble: has no members (an empty MLPEnsemble)");
    if (!features.empty() && coords::totalWidth(features) != ensemble.getInputSize())
        throw Error("features: give " + std::to_string(coords::totalWidth(features)) +
                    " inputs (dihedrals and periodic coordinates count twice), but the ensemble takes " +
                    std::to_string(ensemble.getInputSize()));
    options.validate();
}

namespace {

// A saved state continues this fit only if it came from the same data, split and architecture.
void checkResumable(const PMFTrainingState& state, const PMFTrainingHistory& history, const nn::MLPEnsemble& ensemble,
                    int numEpochs) {
    const int numMembers = ensemble.getNumMembers();
    if (static_cast<int>(state.members.size()) != numMembers)
        throw Error("resume state: it has " + std::to_string(state.members.size()) + " members, the ensemble " +
                    std::to_string(numMembers));
    if (state.numEpochs != numEpochs || state.epochsDone < 0 || state.epochsDone > numEpochs)
        throw Error("resume state: " + std::to_string(state.epochsDone) + " of " + std::to_string(state.numEpochs) +
                    " epochs done, but this fit runs " + std::to_string(numEpochs) + " (different options?)");
    if (state.history.numSamples != history.numSamples || state.history.numSkipped != history.numSkipped ||
        state.history.trainIndices != history.trainIndices || state.history.validationIndices != history.validationIndices)
        throw Error("resume state: it was made from other data or another split (sample count, skipped samples or "
                    "split indices differ)");
    if (static_cast<int>(state.history.trainLoss.size()) < state.epochsDone ||
        static_cast<int>(state.history.validationLoss.size()) < state.epochsDone)
        throw Error("resume state: its history has fewer epochs than it says are done");
    for (int m = 0; m < numMembers; m++) {
        const size_t n = ensemble.getMember(m).getNumParameters();
        const PMFMemberState& member = state.members[m];
        if (member.parameters.size() != n || member.optimizer.firstMoment.size() != n ||
            member.optimizer.secondMoment.size() != n || (!member.bestParameters.empty() && member.bestParameters.size() != n))
            throw Error("resume state: member " + std::to_string(m) + " does not have the ensemble's " +
                        std::to_string(n) + " parameters");
    }
}

PMFTrainingHistory fit(nn::MLPEnsemble& ensemble, const Dataset& data, const PMFTrainerOptions& options,
                       const PMFEpochCallback& onEpoch, const PMFTrainingState* resumeFrom) {
    const int numMembers = ensemble.getNumMembers();
    const int numUsable = static_cast<int>(data.usable.size());
    data.checkSomeUsable();
    int numValidation = 0;
    if (options.validationFraction > 0)
        numValidation = std::max(1, static_cast<int>(std::lround(options.validationFraction * numUsable)));
    const int numTrain = numUsable - numValidation;
    if (numTrain < 1)
        throw Error("validation_fraction " + formatNumber(options.validationFraction) + " of " +
                    std::to_string(numUsable) + " usable samples leaves none to train on");

    PMFTrainingHistory history;
    history.numSamples = static_cast<int>(data.usable.size()) + data.numSkipped;
    history.numSkipped = data.numSkipped;
    history.trainIndices.resize(numMembers);
    history.validationIndices.resize(numMembers);
    const bool bootstrap = options.bootstrap && numMembers > 1;
    for (int m = 0; m < numMembers; m++) {
        std::vector<int> order = data.usable;
        shuffleInPlace(order, options.seed, streamTag(DrawPurpose::Split, m), 0);
        history.validationIndices[m].assign(order.begin(), order.begin() + numValidation);
        std::vector<int> train(order.begin() + numValidation, order.end());
        if (bootstrap) {
            std::vector<int> resampled(train.size());
            for (size_t k = 0; k < train.size(); k++)
                resampled[k] = train[drawIndex(options.seed, streamTag(DrawPurpose::Bootstrap, m), 0, k, numTrain)];
            train = std::move(resampled);
        }
        history.trainIndices[m] = std::move(train);
    }

    const int64_t stepsPerEpoch = (numTrain + options.batchSize - 1) / options.batchSize;
    const int64_t totalSteps = options.steps > 0 ? options.steps : options.epochs * stepsPerEpoch;
    const int64_t epochs64 = (totalSteps + stepsPerEpoch - 1) / stepsPerEpoch;
    if (epochs64 > std::numeric_limits<int>::max())
        throw Error("steps: " + std::to_string(options.steps) + " updates make too many epochs");
    const int numEpochs = static_cast<int>(epochs64);
    history.stepsPerMember = totalSteps;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    history.trainLoss.assign(numEpochs, std::vector<double>(numMembers, nan));
    history.validationLoss.assign(numEpochs, std::vector<double>(numMembers, nan));
    history.bestEpoch.assign(numMembers, -1);
    history.bestValidationLoss.assign(numMembers, nan);
    const optim::ExponentialDecaySchedule schedule(options.adam.learningRate, options.learningRateDecay, stepsPerEpoch);
    for (int epoch = 0; epoch < numEpochs; epoch++)
        history.learningRate.push_back(schedule.getLearningRate(epoch * stepsPerEpoch));

    std::vector<MemberTraining> members;
    members.reserve(numMembers);
    for (int m = 0; m < numMembers; m++)
        members.emplace_back(ensemble.getMember(m), m, options, stepsPerEpoch);
    int firstEpoch = 0;
    if (resumeFrom != nullptr) {
        checkResumable(*resumeFrom, history, ensemble, numEpochs);
        for (int m = 0; m < numMembers; m++)
            members[m].restore(resumeFrom->members[m]);
        firstEpoch = resumeFrom->epochsDone;
        for (int epoch = 0; epoch < firstEpoch; epoch++) {
            history.trainLoss[epoch] = resumeFrom->history.trainLoss[epoch];
            history.validationLoss[epoch] = resumeFrom->history.validationLoss[epoch];
        }
    }
    // Epoch by epoch, the members of an epoch in parallel: after each epoch the whole run is a
    // consistent state that the callback can report or checkpoint.
    for (int epoch = firstEpoch; epoch < numEpochs; epoch++) {
        util::parallelFor(numMembers, options.numThreads, [&](int begin, int end) {
            for (int m = begin; m < end; m++)
                members[m].trainEpoch(epoch, data, totalSteps, history);
        });
        if (onEpoch) {
            PMFTrainingState state;
            state.epochsDone = epoch + 1;
            state.numEpochs = numEpochs;
            for (const MemberTraining& member : members)
                state.members.push_back(member.save());
            state.history = history;
            onEpoch(state);
        }
    }
    for (int m = 0; m < numMembers; m++)
        members[m].finish(numEpochs, history);
    return history;
}

// The loss of one member on every column given (Error for an unusable one: this is an evaluation
// the caller asked for, not a dataset to clean).
double memberLoss(const nn::MLP& mlp, const Dataset& data, int batchSize, std::vector<double>* gradient) {
    if (data.numSkipped > 0)
        throw Error("the samples contain non-finite values (" + std::to_string(data.numSkipped) +
                    " columns); a loss is only evaluated on finite data");
    if (data.usable.empty())
        throw Error(std::string(data.firstName) + ": an empty batch (0 samples); no samples to evaluate the loss on");
    BatchScratch scratch;
    double* grad = nullptr;
    if (gradient != nullptr) {
        gradient->assign(mlp.getNumParameters(), 0.0);
        grad = gradient->data();
    }
    return meanLoss(mlp, data, data.usable, batchSize, scratch, grad);
}

} // namespace

PMFTrainingHistory PMFTrainer::fitLabels(const Eigen::Ref<const Eigen::MatrixXd>& inputs,
                                         const Eigen::Ref<const Eigen::VectorXd>& energies,
                                         const PMFEpochCallback& onEpoch, const PMFTrainingState* resumeFrom) {
    return fit(ensemble, labelDataset(inputs, energies, ensemble.getInputSize()), options, onEpoch, resumeFrom);
}

PMFTrainingHistory PMFTrainer::fitForces(const Eigen::Ref<const Eigen::MatrixXd>& positions,
                                         const Eigen::Ref<const Eigen::MatrixXd>& forces, const PeriodicBox& box,
                                         const PMFEpochCallback& onEpoch, const PMFTrainingState* resumeFrom) {
    return fit(ensemble, forceDataset(positions, forces, box, features), options, onEpoch, resumeFrom);
}

double PMFTrainer::labelLoss(int member, const Eigen::Ref<const Eigen::MatrixXd>& inputs,
                             const Eigen::Ref<const Eigen::VectorXd>& energies, std::vector<double>* gradient) const {
    const nn::MLP& mlp = ensemble.getMember(member);
    return memberLoss(mlp, labelDataset(inputs, energies, ensemble.getInputSize()), options.batchSize, gradient);
}

double PMFTrainer::forceMatchingLoss(int member, const Eigen::Ref<const Eigen::MatrixXd>& positions,
                                     const Eigen::Ref<const Eigen::MatrixXd>& forces, const PeriodicBox& box,
                                     std::vector<double>* gradient) const {
    const nn::MLP& mlp = ensemble.getMember(member);
    return memberLoss(mlp, forceDataset(positions, forces, box, features), options.batchSize, gradient);
}

void PMFTrainer::predict(const Eigen::Ref<const Eigen::MatrixXd>& positions, const PeriodicBox& box,
                         Eigen::VectorXd& energies, Eigen::MatrixXd& forces) const {
    if (positions.rows() == 0 || positions.rows() % 3 != 0)
        throw Error("positions: " + std::to_string(positions.rows()) +
                    " rows; expected 3N (x, y, z of N particles) per sample (column)");
    checkFeatures(features, static_cast<int>(positions.rows() / 3));
    checkBox(box);
    const Eigen::Index n = positions.cols();
    energies.resize(n);
    forces.setZero(positions.rows(), n);
    Eigen::VectorXd x(coords::totalWidth(features));
    nn::MLPEnsemble::Result result;
    for (Eigen::Index s = 0; s < n; s++) {
        coords::computeFeatures(features, positions.col(s).data(), box, x.data());
        ensemble.evaluate(x, true, result);
        energies[s] = result.mean;
        coords::backpropFeatures(features, positions.col(s).data(), box, result.gradMean.data(), forces.col(s).data());
        forces.col(s) = -forces.col(s);
    }
}

} // namespace cgflow::train
