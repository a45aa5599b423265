#ifndef CGFLOW_TRAIN_PMFTRAINER_H_
#define CGFLOW_TRAIN_PMFTRAINER_H_

#include "cgflow/coords/Features.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "cgflow/optim/Adam.h"

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

namespace cgflow::train {

/** How a PMFTrainer trains each member. The defaults follow the CG-BG paper where it gives one. */
struct PMFTrainerOptions {
    int batchSize = 64;
    /** Passes over each member's training set. */
    int epochs = 100;
    /** > 0: train for exactly this many updates per member instead of `epochs` (the last epoch may be partial). */
    int64_t steps = 0;
    /** Adam (Kingma & Ba; weightDecay as an L2 term); its learningRate is the initial rate. */
    optim::AdamOptions adam;
    /** The rate is multiplied by this after every epoch (ExponentialDecaySchedule); in (0, 1], 1 = constant. */
    double learningRateDecay = 1.0;
    /** Global gradient-norm clipping per update (CG-BG: 1.0); +inf = none. */
    double maxGradientNorm = std::numeric_limits<double>::infinity();
    /**
     * Each member draws its own random split of the samples: this fraction (rounded to the nearest
     * count) is its validation set, the rest its training set, and the parameters of the epoch with
     * the lowest validation loss are the ones kept. With several members the different splits are
     * the bagging of the active-learning paper (80/20: 0.2); one member gets the plain split of the
     * CG-BG paper (90/10: 0.1). In [0, 1); 0 = no validation, the last epoch's parameters are kept.
     */
    double validationFraction = 0.1;
    /**
     * Ensembles of two or more members only: each member trains on a bootstrap sample (as many draws
     * with replacement) of its training set instead of the set itself. A single network always
     * trains on its whole training set.
     */
    bool bootstrap = false;
    /** Splits, bootstrap draws and shuffles all derive from it (counter-based, per member and epoch). */
    uint64_t seed = 0;
    /** Members are trained in parallel on up to this many threads; the results do not depend on it. */
    int numThreads = 1;

    /**
     * From JSON (the Python dict): {"batch_size", "epochs" | "steps", "learning_rate", "beta1",
     * "beta2", "epsilon", "weight_decay", "learning_rate_decay", "max_gradient_norm",
     * "validation_fraction", "bootstrap", "seed", "threads"}; absent keys keep the defaults. Unknown
     * keys, both "epochs" and "steps", or invalid values -> Error naming the field.
     */
    static PMFTrainerOptions fromJson(const nlohmann::json& config);
    nlohmann::json toJson() const;
    /** Error naming the field (by its JSON name) for any invalid value. */
    void validate() const;
};

/** What a fit did: one row per epoch, one column per member. */
struct PMFTrainingHistory {
    /** [epoch][member]: the mean of the epoch's minibatch losses, weighted by batch size. */
    std::vector<std::vector<double>> trainLoss;
    /** [epoch][member]: the loss on the member's validation set after the epoch (NaN without validation). */
    std::vector<std::vector<double>> validationLoss;
    /** [epoch]: the learning rate of the epoch's updates. */
    std::vector<double> learningRate;
    /** [member]: the epoch whose parameters the member now has (the last one without validation). */
    std::vector<int> bestEpoch;
    /** [member]: its validation loss (NaN without validation). */
    std::vector<double> bestValidationLoss;
    /**
     * [member]: the samples (column indices of the data given) it trained on, with repeats for a
     * bootstrap, and the ones it was validated on, in the order the losses were evaluated.
     */
    std::vector<std::vector<int>> trainIndices, validationIndices;
    int numSamples = 0;  ///< columns given
    int numSkipped = 0;  ///< columns left out for a non-finite target, input or position
    int64_t stepsPerMember = 0; ///< optimizer updates each member took
};

/** One member's training state after an epoch. */
struct PMFMemberState {
    std::vector<double> parameters;     ///< the current parameters (flat MLP order)
    std::vector<double> bestParameters; ///< those of the best validation loss so far (empty: none yet)
    double bestValidationLoss = std::numeric_limits<double>::infinity();
    int bestEpoch = -1;
    optim::AdamState optimizer;         ///< its step count is the member's number of updates
};

/**
 * Everything a fit needs to continue after an epoch, as plain data (a checkpoint): the splits and
 * shuffles are counter-based draws of (seed, member, epoch), so with the same data and options a
 * fit resumed from this state gives bit-identical parameters and history to an uninterrupted one.
 */
struct PMFTrainingState {
    int epochsDone = 0;
    int numEpochs = 0;
    std::vector<PMFMemberState> members;
    PMFTrainingHistory history; ///< losses filled up to epochsDone; the split indices
};

/** Called after every epoch with the state of the whole fit (for progress reports and checkpoints). */
using PMFEpochCallback = std::function<void(const PMFTrainingState&)>;

/**
 * Fits the model a PMFForce evaluates, an MLPEnsemble (scalar output, energy = ensemble mean) over
 * geometric features, either
 *  - to labels: inputs X (inputSize x n, feature values) and target energies (n), loss = mean over
 *    samples of (U(x) - E)^2 (the active-learning paper's PMF labels, free energies from a flow); or
 *  - to forces (force matching, the CG-BG paper): CG positions R (3N x n, nm) and target forces
 *    F (3N x n, kJ/mol/nm, e.g. mapped atomistic forces), the member's force being
 *    F_pred = -J(R)^T dU/df with J the Jacobian of the features, loss = mean over samples and all
 *    3N components of (F_pred - F)^2. Its parameter gradient is that of sum_s v_s . g_s with
 *    g = dU/df and v = dL/dg = -J (dL/dF_pred): the MLP's mixed second derivative
 *    (MLP::mixedParameterGradient()), with J v from coords::jvpFeatures().
 *
 * Each member is trained on its own training set (see PMFTrainerOptions) with its own Adam
 * optimizer, from the parameters it has (initialize the ensemble first), and keeps its
 * best-validation parameters. A column with a non-finite input, energy, position or force is left
 * out and counted (PMFTrainingHistory::numSkipped), never used. The ensemble is modified in place
 * and must outlive the trainer; afterwards io::encodeMLPEnsemble() gives the bytes PMFForce loads.
 */
class PMFTrainer {
public:
    /**
     * features: what PMFForce computes from the positions (required for force matching, may be
     * empty for labels); their total width must equal the ensemble's input size. Errors name
     * "ensemble", "features" or the options field.
     */
    PMFTrainer(nn::MLPEnsemble& ensemble, std::vector<coords::Feature> features,
               const PMFTrainerOptions& options = PMFTrainerOptions());

    const PMFTrainerOptions& getOptions() const { return options; }
    const std::vector<coords::Feature>& getFeatures() const { return features; }
    nn::MLPEnsemble& getEnsemble() { return ensemble; }

    /*
     * Both fits: onEpoch (optional) is called after every epoch with the state of the fit;
     * resumeFrom (optional) continues a fit from such a state (same data and options, else Error
     * "resume state: ..."), with bit-identical results to an uninterrupted fit.
     */
    /** Labels: inputs (inputSize x n), energies (n). */
    PMFTrainingHistory fitLabels(const Eigen::Ref<const Eigen::MatrixXd>& inputs,
                                 const Eigen::Ref<const Eigen::VectorXd>& energies,
                                 const PMFEpochCallback& onEpoch = {}, const PMFTrainingState* resumeFrom = nullptr);
    /**
     * Force matching: positions and forces (3N x n each, one sample per column); box as for
     * PMFForce (periodic: OpenMM's reduced triclinic form). Every feature's particles must be < N.
     */
    PMFTrainingHistory fitForces(const Eigen::Ref<const Eigen::MatrixXd>& positions,
                                 const Eigen::Ref<const Eigen::MatrixXd>& forces,
                                 const coords::PeriodicBox& box = coords::PeriodicBox(),
                                 const PMFEpochCallback& onEpoch = {}, const PMFTrainingState* resumeFrom = nullptr);

    /**
     * The losses the training minimizes, of one member on all the columns given (evaluated in
     * chunks of batchSize, as the validation losses are). If gradient is non-null it is resized
     * to the member's parameter count and set to the loss's parameter gradient.
     */
    double labelLoss(int member, const Eigen::Ref<const Eigen::MatrixXd>& inputs,
                     const Eigen::Ref<const Eigen::VectorXd>& energies, std::vector<double>* gradient = nullptr) const;
    double forceMatchingLoss(int member, const Eigen::Ref<const Eigen::MatrixXd>& positions,
                             const Eigen::Ref<const Eigen::MatrixXd>& forces,
                             const coords::PeriodicBox& box = coords::PeriodicBox(),
                             std::vector<double>* gradient = nullptr) const;

    /**
     * What PMFForce would give for each column: energies (n) = the ensemble mean, forces (3N x n) =
     * -d mean / d positions.
     */
    void predict(const Eigen::Ref<const Eigen::MatrixXd>& positions, const coords::PeriodicBox& box,
                 Eigen::VectorXd& energies, Eigen::MatrixXd& forces) const;

private:
    nn::MLPEnsemble& ensemble;
    std::vector<coords::Feature> features;
    PMFTrainerOptions options;
};

} // namespace cgflow::train

#endif
