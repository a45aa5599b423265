#ifndef CGFLOW_FLOWS_FLOWTRAINER_H_
#define CGFLOW_FLOWS_FLOWTRAINER_H_

#include "cgflow/flows/Flow.h"
#include "cgflow/optim/Adam.h"
#include "cgflow/optim/GradientGuard.h"

#include <nlohmann/json.hpp>

#include <limits>
#include <memory>
#include <optional>

namespace cgflow::train {

using flows::Flow;

/** How a ModelTrainer updates the parameters. */
struct ModelTrainerOptions {
    bool decoupledWeightDecay = false; ///< AdamW instead of Adam
    optim::AdamOptions adam;           ///< learning rate, betas, epsilon, weight decay
    /** Linear warm-up over this many steps, then (if cosineSteps > 0) cosine decay to finalLearningRate. */
    int64_t warmupSteps = 0;
    int64_t cosineSteps = 0; ///< total steps of warm-up + decay; 0 = constant after warm-up
    double finalLearningRate = 0.0;
    /** Global gradient-norm clipping; +inf = none. */
    double maxGradientNorm = std::numeric_limits<double>::infinity();
    /** The running-median skip/clip rule of the data-free CG papers; off unless set. */
    std::optional<optim::GradientGuardOptions> guard;
    /**
     * Reverse KL only: leave the k samples with the largest per-sample loss beta U + log q out of each
     * step (the data-free CG papers' outlier rule: one clash far up the repulsive wall can carry a
     * gradient orders of magnitude above the rest of the batch). 0 = keep all.
     */
    int dropLargestLosses = 0;

    /**
     * From JSON (the Python dict): {"optimizer": "adam" | "adamw", "learning_rate", "beta1", "beta2",
     * "epsilon", "weight_decay", "warmup_steps", "cosine_steps", "final_learning_rate",
     * "max_gradient_norm", "guard": true | {"window": 50, "skip_factor": 10, "clip_factor": 5,
     * "min_history": 5, "max_consecutive_skips": 0}, "drop_largest_losses": k}. Unknown keys -> Error
     * naming them.
     */
    static ModelTrainerOptions fromJson(const nlohmann::json& config);
    nlohmann::json toJson() const;
};

/** What one training step did. */
struct TrainStepReport {
    double loss = 0;          ///< mean per-sample loss over the samples used
    double gradientNorm = 0;  ///< global norm before clipping
    optim::GradientAction action = optim::GradientAction::Accept;
    double learningRate = 0;  ///< the rate the step used (0 if skipped)
    int numSamples = 0;       ///< samples that entered the loss
    int numDropped = 0;       ///< samples left out for non-finite energy, force or log q
    int numTrimmed = 0;       ///< finite samples left out as the largest losses (dropLargestLosses)
    int64_t step = 0;         ///< optimizer updates applied so far, after this step
};

/**
 * Stochastic-gradient training of a Flow by reverse KL (the target known through energies and
 * forces the caller computes, e.g. with an EnergyTarget) or forward KL (samples of the target).
 *
 * Reverse KL to p(x) ~ exp(-beta U(x)), up to the constant log Z:
 *   L = mean_i [beta U(x_i) + log q(x_i)],  x_i = f(z_i),
 * differentiated pathwise: dL/dx_i = -beta F_i / m (F = -dU/dx, the forces) and dL/dlog q_i = 1 / m,
 * so each step needs one energy and force evaluation per sample.
 * Forward KL (maximum likelihood): L = -mean_i log q(x_i).
 *
 * Samples with a non-finite energy, force or log q are dropped from the step (and counted), as
 * clashes are data rather than errors; then, with dropLargestLosses = k, the k finite samples with the
 * largest beta U + log q (ties: the later sample) are left out too, m being the number kept; a step
 * with no usable sample is skipped. The optimizer state (Adam moments, step count) and the guard's
 * history are exposed for checkpoints.
 */
class ModelTrainer {
public:
    /** The flow must outlive the trainer. */
    ModelTrainer(Flow& flow, const ModelTrainerOptions& options = ModelTrainerOptions());
    /** Any other trainable density (e.g. SlowFastModel): reverse KL only; it must outlive the trainer. */
    ModelTrainer(TrainableModel& model, const ModelTrainerOptions& options = ModelTrainerOptions());

    /** The flow this trainer trains; Error for a trainer of another model. */
    Flow& getFlow();
    TrainableModel& getModel() { return model; }
    const ModelTrainerOptions& getOptions() const { return options; }
    optim::Adam& getOptimizer() { return *optimizer; }
    /** Null unless options.guard is set. */
    optim::GradientGuard* getGuard() { return guard.get(); }

    /** n samples for a reverse-KL step (the pass is saved for reverseKLStep()). */
    void sample(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x, Eigen::VectorXd& logQ);
    /**
     * One reverse-KL update from the last sample(): energies (n) in the units of 1/beta, forces
     * (dimension x n) = -dU/dx, beta > 0. Shapes must match the sample, else Error; an empty sample
     * (n = 0) is an Error naming energies (the sample is consumed all the same).
     */
    TrainStepReport reverseKLStep(const Eigen::VectorXd& energies, const Eigen::MatrixXd& forces, double beta);
    /**
     * One maximum-likelihood update on the columns of x (and context, as for Flow::logProb()): loss
     * -sum_i w_i log q(x_i) / sum_i w_i with w_i = 1, or the given weights (n, finite, >= 0, positive sum;
     * else Error naming "weights"), e.g. self-normalized importance weights exp(-beta U) / q of the
     * model's own samples (importance-weighted forward KL, data-free). Models with an exact log q only
     * (Flow, SlowFastModel). Samples with a non-finite log q are dropped and the weights renormalized.
     * An empty x (0 columns) is an Error naming x.
     */
    TrainStepReport forwardKLStep(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context = nullptr,
                                  const Eigen::VectorXd* weights = nullptr);
    /**
     * One conditional flow-matching update of a continuous normalizing flow (a Flow whose only layer is
     * a flows::ContinuousFlow, else Error) on data x1 (dimension x n): base points x0 drawn from the
     * flow's base density (the counter-based stream of seed, draw i for column i), times t_i ~ U(0, 1)
     * from the same seed, optionally re-paired by the minibatch optimal-transport plan (squared
     * distances, circular dimensions by their shortest arc; Tong et al. 2023), and the loss
     * mean over samples and dimensions of (v(x_t, t) - u)^2 with the targets of flowMatchingTargets.
     * Columns of x1 that are not finite are dropped and counted (a batch of only such columns is a
     * skipped step); an empty x1 (0 columns) is an Error naming x1. Runs on the flow's threads.
     */
    TrainStepReport flowMatchingStep(const Eigen::MatrixXd& x1, uint64_t seed, bool optimalTransport = false);
    /**
     * Apply a gradient computed elsewhere (getNumParameters() values; clipped/guarded in place) as
     * one update; loss and numSamples are only recorded in the report.
     */
    TrainStepReport applyGradient(std::vector<double>& gradient, double loss, int numSamples, int numDropped);

private:
    TrainableModel& model;
    Flow* flow = nullptr;
    ModelTrainerOptions options;
    std::unique_ptr<optim::Adam> optimizer;
    std::unique_ptr<optim::GradientGuard> guard;
    std::vector<double> parameters, gradient;
    Eigen::VectorXd lastLogQ;
    bool haveSample = false;
    std::vector<std::unique_ptr<flows::BijectionWorkspace>> flowMatchingWorkspaces; // one per chunk
    std::vector<Eigen::VectorXd> flowMatchingGradients;                             // one per chunk
};

} // namespace cgflow::train

#endif
