#include "cgflow/Error.h"
#include "cgflow/optim/GradientGuard.h"
#include "cgflow/optim/GradientNorm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

using cgflow::Error;
using namespace cgflow::optim;

namespace {

const double inf = std::numeric_limits<double>::infinity();

GradientGuardOptions smallWindow() {
    GradientGuardOptions options;
    options.windowSize = 5;
    options.minHistory = 3;
    options.skipFactor = 10.0;
    options.clipFactor = 5.0;
    return options;
}

} // namespace

TEST(GradientNorm, GlobalNormIsEuclideanEvenAtExtremeScales) {
    std::vector<double> g = {3.0, -4.0, 12.0};
    EXPECT_DOUBLE_EQ(globalGradientNorm(g.data(), g.size()), 13.0);
    EXPECT_EQ(globalGradientNorm(nullptr, 0), 0.0);
    std::vector<double> huge = {3e200, 4e200};
    EXPECT_NEAR(globalGradientNorm(huge.data(), 2) / 5e200, 1.0, 1e-15);
    std::vector<double> tiny = {3e-200, -4e-200};
    EXPECT_NEAR(globalGradientNorm(tiny.data(), 2) / 5e-200, 1.0, 1e-15);
    std::vector<double> bad = {1.0, inf};
    EXPECT_TRUE(std::isinf(globalGradientNorm(bad.data(), 2)));
    bad[1] = std::nan("");
    EXPECT_TRUE(std::isnan(globalGradientNorm(bad.data(), 2)));
}

TEST(GradientNorm, ClippingScalesToTheMaximumAndKeepsTheDirection) {
    std::vector<double> g = {3.0, -4.0, 12.0};
    const double before = clipGradientNorm(g.data(), g.size(), 6.5);
    EXPECT_DOUBLE_EQ(before, 13.0);
    EXPECT_NEAR(globalGradientNorm(g.data(), g.size()), 6.5, 1e-14);
    EXPECT_DOUBLE_EQ(g[0], 1.5);
    EXPECT_DOUBLE_EQ(g[1], -2.0);
    EXPECT_DOUBLE_EQ(g[2], 6.0);

    std::vector<double> small = {0.3, 0.4};
    EXPECT_DOUBLE_EQ(clipGradientNorm(small.data(), 2, 1.0), 0.5);
    EXPECT_EQ(small, (std::vector<double>{0.3, 0.4})); // below the maximum: untouched
    EXPECT_DOUBLE_EQ(clipGradientNorm(small.data(), 2, inf), 0.5);

    std::vector<double> bad = {1.0, std::nan("")};
    EXPECT_TRUE(std::isnan(clipGradientNorm(bad.data(), 2, 1.0)));
    EXPECT_EQ(bad[0], 1.0); // non-finite: left for the caller to handle
    EXPECT_THROW(clipGradientNorm(small.data(), 2, 0.0), Error);
    EXPECT_THROW(clipGradientNorm(small.data(), 2, std::nan("")), Error);
}

TEST(GradientGuard, AcceptsClipsAndSkipsACraftedSequence) {
    GradientGuard guard(smallWindow());
    // Warm-up: fewer than minHistory = 3 norms, so even a wild one is accepted and remembered.
    EXPECT_EQ(guard.check(1.0).action, GradientAction::Accept);
    EXPECT_EQ(guard.check(300.0).action, GradientAction::Accept);
    EXPECT_EQ(guard.check(3.0).action, GradientAction::Accept);
    EXPECT_EQ(guard.getMedian(), 3.0); // {1, 300, 3}

    GradientDecision accept = guard.check(15.0); // = 5 x median: ties are accepted
    EXPECT_EQ(accept.action, GradientAction::Accept);
    EXPECT_EQ(accept.median, 3.0);
    EXPECT_EQ(accept.scale, 1.0);
    EXPECT_EQ(guard.getMedian(), 9.0); // {1, 300, 3, 15}: (3 + 15) / 2

    GradientDecision clip = guard.check(60.0); // 5 x 9 = 45 < 60 <= 90 = 10 x 9
    EXPECT_EQ(clip.action, GradientAction::Clip);
    EXPECT_DOUBLE_EQ(clip.scale, 45.0 / 60.0);
    EXPECT_EQ(guard.getHistorySize(), 5); // clipped norms are remembered (unclipped)
    EXPECT_EQ(guard.getMedian(), 15.0);   // {1, 300, 3, 15, 60}

    GradientDecision skip = guard.check(151.0); // > 10 x 15
    EXPECT_EQ(skip.action, GradientAction::Skip);
    EXPECT_EQ(skip.scale, 0.0);
    EXPECT_EQ(guard.check(std::nan("")).action, GradientAction::Skip);
    EXPECT_EQ(guard.check(inf).action, GradientAction::Skip);
    EXPECT_EQ(guard.getConsecutiveSkips(), 3);
    EXPECT_EQ(guard.getHistory(), (std::vector<double>{1.0, 300.0, 3.0, 15.0, 60.0})); // skips not remembered

    // Window of 5: the next accepted norm pushes out the oldest (1).
    EXPECT_EQ(guard.check(20.0).action, GradientAction::Accept);
    EXPECT_EQ(guard.getHistory(), (std::vector<double>{300.0, 3.0, 15.0, 60.0, 20.0}));
    EXPECT_EQ(guard.getMedian(), 20.0);
    EXPECT_EQ(guard.getConsecutiveSkips(), 0);
    // Once 300 leaves the window the median drops: {3, 15, 60, 20, 10} -> 15.
    EXPECT_EQ(guard.check(10.0).action, GradientAction::Accept);
    EXPECT_EQ(guard.getMedian(), 15.0);
    EXPECT_EQ(guard.getNumAccepted(), 6);
    EXPECT_EQ(guard.getNumClipped(), 1);
    EXPECT_EQ(guard.getNumSkipped(), 3);
    EXPECT_THROW(guard.check(-1.0), Error);
}

TEST(GradientGuard, DefaultsAreThePapersValues) {
    GradientGuard guard;
    EXPECT_EQ(guard.getOptions().windowSize, 50);
    EXPECT_EQ(guard.getOptions().skipFactor, 10.0);
    EXPECT_EQ(guard.getOptions().clipFactor, 5.0);
    // The median is over the last 50 accepted norms only.
    for (int i = 1; i <= 60; i++)
        guard.check(static_cast<double>(i));
    EXPECT_EQ(guard.getHistorySize(), 50);
    EXPECT_EQ(guard.getMedian(), 35.5); // {11 .. 60}
}

TEST(GradientGuard, ApplyScalesClippedGradientsAndLeavesSkippedOnes) {
    GradientGuard guard(smallWindow());
    for (int i = 0; i < 3; i++)
        guard.check(2.0);
    std::vector<double> g = {0.0, 12.0, -16.0}; // norm 20: between 10 and 20 x median 2
    GradientDecision decision = guard.apply(g.data(), g.size());
    EXPECT_EQ(decision.action, GradientAction::Clip);
    EXPECT_DOUBLE_EQ(decision.norm, 20.0);
    EXPECT_NEAR(globalGradientNorm(g.data(), g.size()), 10.0, 1e-14);
    EXPECT_DOUBLE_EQ(g[1], 6.0);

    std::vector<double> big = {300.0, 400.0};
    EXPECT_EQ(guard.apply(big.data(), 2).action, GradientAction::Skip);
    EXPECT_EQ(big, (std::vector<double>{300.0, 400.0}));
}

TEST(GradientGuard, ZeroMedianAndForcedUpdatesCannotStallTraining) {
    GradientGuard zeros(smallWindow());
    for (int i = 0; i < 5; i++)
        zeros.check(0.0);
    EXPECT_EQ(zeros.check(1.0).action, GradientAction::Accept);

    GradientGuardOptions options = smallWindow();
    options.maxConsecutiveSkips = 2;
    GradientGuard guard(options);
    for (int i = 0; i < 3; i++)
        guard.check(1.0);
    EXPECT_EQ(guard.check(100.0).action, GradientAction::Skip);
    EXPECT_EQ(guard.check(100.0).action, GradientAction::Skip);
    GradientDecision forced = guard.check(100.0);
    EXPECT_EQ(forced.action, GradientAction::Clip);
    EXPECT_DOUBLE_EQ(forced.scale, 5.0 / 100.0);
    EXPECT_EQ(guard.getConsecutiveSkips(), 0);
    EXPECT_EQ(guard.getHistorySize(), 4);
}

TEST(GradientGuard, StateRoundTripGivesIdenticalDecisions) {
    GradientGuard guard(smallWindow());
    for (double norm : {1.0, 4.0, 2.0, 8.0, 3.0, 5.0, 100.0})
        guard.check(norm);
    GradientGuard::State state = guard.getState();
    GradientGuard restored(smallWindow());
    restored.setState(state);
    EXPECT_EQ(restored.getHistory(), guard.getHistory());
    for (double norm : {6.0, 30.0, 45.0, 2.0, 500.0, 7.0}) {
        GradientDecision a = guard.check(norm), b = restored.check(norm);
        EXPECT_EQ(a.action, b.action);
        EXPECT_EQ(a.scale, b.scale);
        EXPECT_EQ(a.median, b.median);
    }
    EXPECT_EQ(restored.getNumSkipped(), guard.getNumSkipped());

    GradientGuard::State tooLong = state;
    tooLong.history.assign(6, 1.0);
    EXPECT_THROW(restored.setState(tooLong), Error);
    GradientGuard::State negative = state;
    negative.history[0] = -1.0;
    EXPECT_THROW(restored.setState(negative), Error);
}

TEST(GradientGuard, RejectsBadOptions) {
    auto with = [](auto set) {
        GradientGuardOptions options;
        set(options);
        return options;
    };
    EXPECT_THROW(GradientGuard(with([](GradientGuardOptions& o) { o.windowSize = 0; })), Error);
    EXPECT_THROW(GradientGuard(with([](GradientGuardOptions& o) { o.minHistory = 51; })), Error);
    EXPECT_THROW(GradientGuard(with([](GradientGuardOptions& o) { o.minHistory = 0; })), Error);
    EXPECT_THROW(GradientGuard(with([](GradientGuardOptions& o) { o.skipFactor = 0.0; })), Error);
    EXPECT_THROW(GradientGuard(with([](GradientGuardOptions& o) { o.clipFactor = std::nan(""); })), Error);
    EXPECT_THROW(GradientGuard(with([](GradientGuardOptions& o) { o.maxConsecutiveSkips = -1; })), Error);
}
