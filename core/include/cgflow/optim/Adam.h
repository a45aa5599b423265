#ifndef CGFLOW_OPTIM_ADAM_H_
#define CGFLOW_OPTIM_ADAM_H_

#include "cgflow/optim/LearningRateSchedule.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace cgflow::optim {

/** Hyperparameters of Adam and AdamW. Defaults are Kingma & Ba's. */
struct AdamOptions {
    double learningRate = 1e-3; ///< used as a constant schedule unless setSchedule() replaces it
    double beta1 = 0.9;         ///< decay of the first-moment (mean) estimate, in [0, 1)
    double beta2 = 0.999;       ///< decay of the second-moment estimate, in [0, 1)
    double epsilon = 1e-8;      ///< added to sqrt(v-hat); > 0 so a zero gradient gives a zero step
    double weightDecay = 0.0;   ///< >= 0; an L2 term for Adam, decoupled decay for AdamW
};

/**
 * Everything an optimizer accumulates during training, as plain data so that a model-file or
 * checkpoint layer can write it without knowing the optimizer: the number of updates applied and
 * the two moment estimates (one entry per parameter, in the flat parameter order).
 */
struct AdamState {
    int64_t stepCount = 0;
    std::vector<double> firstMoment;
    std::vector<double> secondMoment;
};

/**
 * Adam (Kingma & Ba 2015) over one flat parameter vector, with bias-corrected moments:
 *   g  <- grad (+ weightDecay * theta, the classic L2 form)
 *   m  <- beta1 m + (1 - beta1) g,    v <- beta2 v + (1 - beta2) g^2
 *   theta <- theta - lr_t * m / (1 - beta1^t) / (sqrt(v / (1 - beta2^t)) + epsilon)
 * where t = stepCount + 1 and lr_t = schedule(stepCount).
 *
 * With the L2 form the decay passes through the adaptive scaling, so heavily-updated weights are
 * barely decayed; AdamW (below) is the remedy. The L2 form is kept because it is what
 * torch.optim.Adam(weight_decay=...) does, which published hyperparameters assume.
 */
class Adam {
public:
    /** numParameters may be 0. Invalid options -> Error naming the field. Moments start at zero. */
    explicit Adam(size_t numParameters, const AdamOptions& options = AdamOptions());
    virtual ~Adam() = default;

    size_t getNumParameters() const { return numParameters; }
    const AdamOptions& getOptions() const { return options; }
    /** Whether weight decay is decoupled from the gradient (AdamW) or an L2 term (Adam). */
    bool isDecoupledWeightDecay() const { return decoupled; }

    /** Take each step's learning rate from `schedule` (non-null, else Error), indexed by getStepCount(). */
    void setSchedule(std::shared_ptr<const LearningRateSchedule> schedule);
    const std::shared_ptr<const LearningRateSchedule>& getSchedule() const { return schedule; }
    /** Shorthand for a constant schedule; also updates getOptions().learningRate. */
    void setLearningRate(double learningRate);
    /** The learning rate the next step() will use. */
    double getLearningRate() const;

    /**
     * One update of params[0 .. n) in place from grads[0 .. n) (n = getNumParameters()). Any
     * non-finite gradient -> Error before anything is changed, because one NaN would poison the
     * moment estimates for good; screen gradients with GradientGuard to skip such updates instead.
     */
    void step(double* params, const double* grads);
    /** The same on vectors, whose sizes must both equal getNumParameters() (else Error). */
    void step(std::vector<double>& params, const std::vector<double>& grads);

    /** Updates applied so far (the t of the bias correction is getStepCount() + 1 in the next step). */
    int64_t getStepCount() const { return stepCount; }
    /** Forget the moments and the step count, as for a fresh optimizer. */
    void reset();

    AdamState getState() const;
    /**
     * Restore a state from getState(). Both moments must have getNumParameters() entries, be finite,
     * the second moment >= 0 and stepCount >= 0; else Error and the optimizer is unchanged.
     * Hyperparameters and the schedule are configuration, not state, and are not part of it.
     */
    void setState(const AdamState& state);

protected:
    Adam(size_t numParameters, const AdamOptions& options, bool decoupledWeightDecay);

private:
    size_t numParameters;
    AdamOptions options;
    bool decoupled;
    std::shared_ptr<const LearningRateSchedule> schedule;
    int64_t stepCount = 0;
    std::vector<double> firstMoment;
    std::vector<double> secondMoment;
};

/**
 * AdamW (Loshchilov & Hutter 2019): weight decay applied to the parameters directly rather than
 * added to the gradient, theta <- theta (1 - lr_t weightDecay) before the Adam update, so every
 * weight decays at the same relative rate whatever its gradient history. The decay follows the
 * schedule (lr_t * weightDecay), as in torch.optim.AdamW, whose hyperparameters (e.g. the CG-BG
 * paper's weight decay 1e-5 with cosine 3e-4 -> 1e-5) then carry over unchanged.
 */
class AdamW : public Adam {
public:
    explicit AdamW(size_t numParameters, const AdamOptions& options = AdamOptions());
};

} // namespace cgflow::optim

#endif
