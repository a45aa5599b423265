#include "cgflow/optim/LearningRateSchedule.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace cgflow::optim {

namespace {

void checkRate(double rate, const char* what) {
    if (!std::isfinite(rate) || rate < 0.0)
        throw Error(std::string(what) + " must be finite and >= 0, got " + std::to_string(rate));
}

} // namespace

double LearningRateSchedule::getLearningRate(int64_t step) const {
    if (step < 0)
        throw Error("LearningRateSchedule: step must be >= 0, got " + std::to_string(step));
    double rate = computeLearningRate(step);
    // A custom subclass could return anything; a negative or NaN rate would silently turn the
    // optimizer into an ascent method or poison every parameter, so it is caught here, once.
    if (!std::isfinite(rate) || rate < 0.0)
        throw Error("LearningRateSchedule: the schedule returned learning rate " + std::to_string(rate) +
                    " at step " + std::to_string(step) + "; expected a finite value >= 0");
    return rate;
}

ConstantSchedule::ConstantSchedule(double learningRateIn) : learningRate(learningRateIn) {
    checkRate(learningRate, "ConstantSchedule: learningRate");
}

double ConstantSchedule::computeLearningRate(int64_t) const {
    return learningRate;
}

LinearWarmupSchedule::LinearWarmupSchedule(int64_t warmupStepsIn, std::shared_ptr<const LearningRateSchedule> afterIn,
                                           double initialLearningRateIn)
    : warmupSteps(warmupStepsIn), after(std::move(afterIn)), initialLearningRate(initialLearningRateIn) {
    if (warmupSteps < 0)
        throw Error("LinearWarmupSchedule: warmupSteps must be >= 0, got " + std::to_string(warmupSteps));
    if (!after)
        throw Error("LinearWarmupSchedule: the schedule to follow the warm-up ('after') must not be null");
    checkRate(initialLearningRate, "LinearWarmupSchedule: initialLearningRate");
}

LinearWarmupSchedule::LinearWarmupSchedule(int64_t warmupStepsIn, double targetLearningRate,
                                           double initialLearningRateIn)
    : LinearWarmupSchedule(warmupStepsIn, std::make_shared<ConstantSchedule>(targetLearningRate),
                           initialLearningRateIn) {}

double LinearWarmupSchedule::computeLearningRate(int64_t step) const {
    if (step >= warmupSteps)
        return after->getLearningRate(step - warmupSteps);
    double target = after->getLearningRate(0);
    double fraction = static_cast<double>(step) / static_cast<double>(warmupSteps);
    return initialLearningRate + (target - initialLearningRate) * fraction;
}

CosineDecaySchedule::CosineDecaySchedule(double initialLearningRateIn, int64_t decayStepsIn,
                                         double finalLearningRateIn)
    : initialLearningRate(initialLearningRateIn), decaySteps(decayStepsIn), finalLearningRate(finalLearningRateIn) {
    checkRate(initialLearningRate, "CosineDecaySchedule: initialLearningRate");
    checkRate(finalLearningRate, "CosineDecaySchedule: finalLearningRate");
    if (decaySteps < 1)
        throw Error("CosineDecaySchedule: decaySteps must be >= 1, got " + std::to_string(decaySteps));
}

double CosineDecaySchedule::computeLearningRate(int64_t step) const {
    // The end point is returned exactly rather than through cos(pi), which is -1 only to rounding.
    if (step >= decaySteps)
        return finalLearningRate;
    const double pi = 3.14159265358979323846;
    // pi t / T evaluated as (pi t) / T, the same rounding as the NumPy expression np.pi * t / T.
    const double angle = pi * static_cast<double>(step) / static_cast<double>(decaySteps);
    double rate = finalLearningRate + (initialLearningRate - finalLearningRate) * 0.5 * (1.0 + std::cos(angle));
    return std::max(rate, 0.0);
}

ExponentialDecaySchedule::ExponentialDecaySchedule(double initialLearningRateIn, double decayFactorIn,
                                                   int64_t stepsPerDecayIn)
    : initialLearningRate(initialLearningRateIn), decayFactor(decayFactorIn), stepsPerDecay(stepsPerDecayIn) {
    checkRate(initialLearningRate, "ExponentialDecaySchedule: initialLearningRate");
    // A factor above 1 would grow the rate without bound; 0 would stop training after one stair.
    if (!(decayFactor > 0.0 && decayFactor <= 1.0))
        throw Error("ExponentialDecaySchedule: decayFactor must be in (0, 1], got " + std::to_string(decayFactor));
    if (stepsPerDecay < 1)
        throw Error("ExponentialDecaySchedule: stepsPerDecay must be >= 1, got " + std::to_string(stepsPerDecay));
}

double ExponentialDecaySchedule::computeLearningRate(int64_t step) const {
    const int64_t stairs = step / stepsPerDecay;
    return initialLearningRate * std::pow(decayFactor, static_cast<double>(stairs));
}

std::shared_ptr<const LearningRateSchedule> makeWarmupCosineSchedule(double peakLearningRate, int64_t warmupSteps,
                                                                     int64_t totalSteps, double finalLearningRate,
                                                                     double initialLearningRate) {
    if (warmupSteps < 0 || totalSteps <= warmupSteps)
        throw Error("makeWarmupCosineSchedule: need 0 <= warmupSteps < totalSteps, got warmupSteps = " +
                    std::to_string(warmupSteps) + ", totalSteps = " + std::to_string(totalSteps));
    auto cosine = std::make_shared<CosineDecaySchedule>(peakLearningRate, totalSteps - warmupSteps, finalLearningRate);
    if (warmupSteps == 0)
        return cosine;
    return std::make_shared<LinearWarmupSchedule>(warmupSteps, cosine, initialLearningRate);
}

} // namespace cgflow::optim
