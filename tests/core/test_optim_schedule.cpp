#include "cgflow/Error.h"
#include "cgflow/optim/LearningRateSchedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

using cgflow::Error;
using namespace cgflow::optim;

TEST(LearningRateSchedule, ConstantIsConstant) {
    ConstantSchedule constant(3e-4);
    EXPECT_EQ(constant.getLearningRate(0), 3e-4);
    EXPECT_EQ(constant.getLearningRate(123456789), 3e-4);
    EXPECT_THROW(constant.getLearningRate(-1), Error);
    EXPECT_THROW(ConstantSchedule(-1e-3), Error);
}

TEST(LearningRateSchedule, LinearWarmupRampsThenHolds) {
    LinearWarmupSchedule warmup(10, 1e-3);
    EXPECT_EQ(warmup.getLearningRate(0), 0.0);
    EXPECT_DOUBLE_EQ(warmup.getLearningRate(5), 5e-4);
    EXPECT_DOUBLE_EQ(warmup.getLearningRate(9), 9e-4);
    EXPECT_EQ(warmup.getLearningRate(10), 1e-3);
    EXPECT_EQ(warmup.getLearningRate(1000), 1e-3);

    LinearWarmupSchedule fromNonzero(4, 1.0, 0.2);
    EXPECT_DOUBLE_EQ(fromNonzero.getLearningRate(0), 0.2);
    EXPECT_DOUBLE_EQ(fromNonzero.getLearningRate(2), 0.6);
    EXPECT_EQ(fromNonzero.getLearningRate(4), 1.0);

    LinearWarmupSchedule none(0, 2e-3);
    EXPECT_EQ(none.getLearningRate(0), 2e-3);
}

TEST(LearningRateSchedule, CosineDecayHitsItsKeyPoints) {
    CosineDecaySchedule cosine(1e-3, 100, 1e-5);
    EXPECT_DOUBLE_EQ(cosine.getLearningRate(0), 1e-3);
    EXPECT_DOUBLE_EQ(cosine.getLearningRate(50), 0.5 * (1e-3 + 1e-5));
    // A quarter of the way: final + (initial - final) (1 + cos(pi/4)) / 2.
    EXPECT_DOUBLE_EQ(cosine.getLearningRate(25), 1e-5 + (1e-3 - 1e-5) * 0.5 * (1.0 + std::sqrt(0.5)));
    EXPECT_EQ(cosine.getLearningRate(100), 1e-5);
    EXPECT_EQ(cosine.getLearningRate(5000), 1e-5); // stays at the floor past the end
    for (int t = 1; t <= 100; t++)
        EXPECT_LE(cosine.getLearningRate(t), cosine.getLearningRate(t - 1));
    EXPECT_EQ(CosineDecaySchedule(1.0, 10).getLearningRate(10), 0.0);
}

TEST(LearningRateSchedule, ExponentialDecayStepsDownOncePerStair) {
    // Three updates per epoch, the rate multiplied by 0.9 after each epoch.
    ExponentialDecaySchedule perEpoch(1e-3, 0.9, 3);
    EXPECT_EQ(perEpoch.getLearningRate(0), 1e-3);
    EXPECT_EQ(perEpoch.getLearningRate(2), 1e-3);
    EXPECT_DOUBLE_EQ(perEpoch.getLearningRate(3), 0.9e-3);
    EXPECT_DOUBLE_EQ(perEpoch.getLearningRate(5), 0.9e-3);
    EXPECT_DOUBLE_EQ(perEpoch.getLearningRate(6), 0.81e-3);
    EXPECT_DOUBLE_EQ(perEpoch.getLearningRate(3 * 40 + 1), 1e-3 * std::pow(0.9, 40));
    for (int t = 1; t < 100; t++)
        EXPECT_LE(perEpoch.getLearningRate(t), perEpoch.getLearningRate(t - 1));
    // Far past any training length it underflows towards 0, never to something invalid.
    EXPECT_GE(perEpoch.getLearningRate(int64_t(1) << 40), 0.0);
    ExponentialDecaySchedule everyStep(2.0, 0.5);
    EXPECT_EQ(everyStep.getLearningRate(3), 0.25);
    EXPECT_EQ(ExponentialDecaySchedule(5e-4, 1.0, 7).getLearningRate(1000), 5e-4);
    EXPECT_THROW(ExponentialDecaySchedule(1e-3, 0.0, 1), Error);
    EXPECT_THROW(ExponentialDecaySchedule(1e-3, 1.5, 1), Error);
    EXPECT_THROW(ExponentialDecaySchedule(1e-3, std::nan(""), 1), Error);
    EXPECT_THROW(ExponentialDecaySchedule(1e-3, 0.9, 0), Error);
    EXPECT_THROW(ExponentialDecaySchedule(-1e-3, 0.9, 1), Error);
}

TEST(LearningRateSchedule, WarmupThenCosineComposes) {
    auto schedule = makeWarmupCosineSchedule(1e-3, 10, 110, 1e-5);
    EXPECT_EQ(schedule->getLearningRate(0), 0.0);
    EXPECT_DOUBLE_EQ(schedule->getLearningRate(5), 5e-4);
    EXPECT_DOUBLE_EQ(schedule->getLearningRate(10), 1e-3); // end of warm-up = cosine peak
    EXPECT_DOUBLE_EQ(schedule->getLearningRate(60), 0.5 * (1e-3 + 1e-5)); // cosine midpoint
    EXPECT_EQ(schedule->getLearningRate(110), 1e-5); // end of cosine
    EXPECT_EQ(schedule->getLearningRate(200), 1e-5);

    // The same composition written out by hand.
    LinearWarmupSchedule byHand(10, std::make_shared<CosineDecaySchedule>(1e-3, 100, 1e-5));
    for (int t : {0, 3, 10, 37, 60, 109, 110, 150})
        EXPECT_EQ(byHand.getLearningRate(t), schedule->getLearningRate(t)) << "step " << t;

    auto noWarmup = makeWarmupCosineSchedule(1e-3, 0, 100);
    EXPECT_EQ(noWarmup->getLearningRate(0), 1e-3);
    EXPECT_EQ(noWarmup->getLearningRate(100), 0.0);
}

TEST(LearningRateSchedule, RejectsBadArguments) {
    EXPECT_THROW(LinearWarmupSchedule(-1, 1e-3), Error);
    EXPECT_THROW(LinearWarmupSchedule(5, nullptr), Error);
    EXPECT_THROW(LinearWarmupSchedule(5, 1e-3, -1.0), Error);
    EXPECT_THROW(CosineDecaySchedule(1e-3, 0), Error);
    EXPECT_THROW(CosineDecaySchedule(1e-3, 10, -1e-5), Error);
    EXPECT_THROW(CosineDecaySchedule(std::nan(""), 10), Error);
    EXPECT_THROW(makeWarmupCosineSchedule(1e-3, 100, 100), Error);
    EXPECT_THROW(makeWarmupCosineSchedule(1e-3, -1, 100), Error);
}

namespace {

// A broken user schedule must be caught rather than drive the optimizer with a negative rate.
class NegativeSchedule : public LearningRateSchedule {
protected:
    double computeLearningRate(int64_t) const override { return -1.0; }
};

} // namespace

TEST(LearningRateSchedule, RejectsInvalidValuesFromCustomSchedules) {
    NegativeSchedule negative;
    EXPECT_THROW(negative.getLearningRate(0), Error);
}
