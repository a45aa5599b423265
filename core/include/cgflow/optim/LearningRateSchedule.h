#ifndef CGFLOW_OPTIM_LEARNINGRATESCHEDULE_H_
#define CGFLOW_OPTIM_LEARNINGRATESCHEDULE_H_

#include <cstdint>
#include <memory>

namespace cgflow::optim {

/**
 * The learning rate as a function of the optimizer step. Steps count from 0: step t is the
 * (t+1)-th update an optimizer applies, so a schedule is driven by Adam::getStepCount() and a
 * skipped update (GradientGuard) does not advance it.
 *
 * Schedules are immutable once built, so one instance may be shared (std::shared_ptr<const ...>)
 * by several optimizers, e.g. the members of an ensemble, and composed into other schedules.
 */
class LearningRateSchedule {
public:
    virtual ~LearningRateSchedule() = default;
    /** The learning rate for update `step` (>= 0, else Error). Always finite and >= 0. */
    double getLearningRate(int64_t step) const;

protected:
    /** Called with step >= 0 only. */
    virtual double computeLearningRate(int64_t step) const = 0;
};

/** The same learning rate at every step. learningRate must be finite and >= 0. */
class ConstantSchedule : public LearningRateSchedule {
public:
    explicit ConstantSchedule(double learningRate);
    double getValue() const { return learningRate; }

protected:
    double computeLearningRate(int64_t step) const override;

private:
    double learningRate;
};

/**
 * A linear ramp from initialLearningRate at step 0 to after->getLearningRate(0) at step
 * warmupSteps, then `after` shifted by warmupSteps: lr(t) = after(t - warmupSteps) for t >= warmupSteps.
 * Shifting (rather than letting `after` see the global step) is what makes "warm-up then cosine"
 * a composition: the cosine starts from its peak when the ramp ends and spans its own length.
 *
 * With initialLearningRate = 0 (the default, as in the conditional-flow paper's warm-up from 0)
 * update 0 moves no parameter; it still feeds the gradient into Adam's moment estimates, which is
 * the point of a warm-up. warmupSteps = 0 gives `after` unchanged.
 */
class LinearWarmupSchedule : public LearningRateSchedule {
public:
    /** warmupSteps >= 0; after non-null; initialLearningRate finite and >= 0; else Error. */
    LinearWarmupSchedule(int64_t warmupSteps, std::shared_ptr<const LearningRateSchedule> after,
                         double initialLearningRate = 0.0);
    /** Warm-up to a constant targetLearningRate. */
    LinearWarmupSchedule(int64_t warmupSteps, double targetLearningRate, double initialLearningRate = 0.0);
    int64_t getWarmupSteps() const { return warmupSteps; }
    double getInitialLearningRate() const { return initialLearningRate; }
    const std::shared_ptr<const LearningRateSchedule>& getAfter() const { return after; }

protected:
    double computeLearningRate(int64_t step) const override;

private:
    int64_t warmupSteps;
    std::shared_ptr<const LearningRateSchedule> after;
    double initialLearningRate;
};

/**
 * Half a cosine from initialLearningRate at step 0 down to finalLearningRate at step decaySteps,
 * constant at finalLearningRate afterwards (training may run past the planned length without the
 * rate rising again, as it would if the cosine were continued):
 *   lr(t) = final + (initial - final) (1 + cos(pi min(t, T) / T)) / 2.
 * decaySteps >= 1; both rates finite and >= 0 (final may exceed initial: a cosine ramp up); else Error.
 */
class CosineDecaySchedule : public LearningRateSchedule {
public:
    CosineDecaySchedule(double initialLearningRate, int64_t decaySteps, double finalLearningRate = 0.0);
    double getInitialLearningRate() const { return initialLearningRate; }
    double getFinalLearningRate() const { return finalLearningRate; }
    int64_t getDecaySteps() const { return decaySteps; }

protected:
    double computeLearningRate(int64_t step) const override;

private:
    double initialLearningRate;
    int64_t decaySteps;
    double finalLearningRate;
};

/**
 * Exponential decay in stairs: the rate is multiplied by decayFactor every stepsPerDecay steps,
 *   lr(t) = initialLearningRate * decayFactor^floor(t / stepsPerDecay).
 * With stepsPerDecay = the updates of one epoch this is PyTorch's ExponentialLR stepped once per
 * epoch (the CG-BG paper's "Adam with exponential decay"), in its closed form lr0 * gamma^epoch.
 * initialLearningRate finite and >= 0, decayFactor in (0, 1] (1 = constant), stepsPerDecay >= 1;
 * else Error.
 */
class ExponentialDecaySchedule : public LearningRateSchedule {
public:
    ExponentialDecaySchedule(double initialLearningRate, double decayFactor, int64_t stepsPerDecay = 1);
    double getInitialLearningRate() const { return initialLearningRate; }
    double getDecayFactor() const { return decayFactor; }
    int64_t getStepsPerDecay() const { return stepsPerDecay; }

protected:
    double computeLearningRate(int64_t step) const override;

private:
    double initialLearningRate;
    double decayFactor;
    int64_t stepsPerDecay;
};

/**
 * Linear warm-up from initialLearningRate to peakLearningRate over warmupSteps, then cosine decay
 * to finalLearningRate, reached at step totalSteps (so the cosine spans totalSteps - warmupSteps).
 * Requires 0 <= warmupSteps < totalSteps.
 */
std::shared_ptr<const LearningRateSchedule> makeWarmupCosineSchedule(double peakLearningRate, int64_t warmupSteps,
                                                                     int64_t totalSteps,
                                                                     double finalLearningRate = 0.0,
                                                                     double initialLearningRate = 0.0);

} // namespace cgflow::optim

#endif
