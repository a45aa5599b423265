// The weights engine, part 2: RunningWeights (one weight at a time, as BoltzmannGeneratorIntegrator
// keeps them) against the batch functions of LogWeights.h, and the independence Metropolis-Hastings
// test metropolisAccept against its acceptance probability and an exact stationary distribution.
#include "CoreTestUtils.h"
#include "cgflow/stats/LogWeights.h"
#include "cgflow/stats/Metropolis.h"
#include "cgflow/stats/RunningWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace cgflow::stats;
using cgflowtest::errorMessage;

namespace {
const double Inf = std::numeric_limits<double>::infinity();
} // namespace

TEST(StatsRunningWeights, AgreesWithTheBatchFunctions) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0.0, 3.0);
    std::vector<double> logW;
    RunningWeights running;
    for (int i = 0; i < 5000; i++) {
        // Offsets of hundreds of nats and some zero weights: both must be handled exactly.
        const double value = i % 97 == 0 ? -Inf : 400.0 + normal(rng);
        logW.push_back(value);
        running.add(value);
    }
    EXPECT_EQ(running.getCount(), 5000);
    EXPECT_EQ(running.getNumZero(), 52);
    EXPECT_NEAR(running.getLogSumWeights(), logSumExp(logW), 1e-9);
    EXPECT_NEAR(running.getEffectiveSampleSize(), effectiveSampleSize(logW), 1e-8 * effectiveSampleSize(logW));
    EXPECT_NEAR(running.getEffectiveSampleFraction(), effectiveSampleFraction(logW), 1e-11);
    const Estimate batch = logMeanExp(logW), stream = running.getLogZ();
    EXPECT_NEAR(stream.value, batch.value, 1e-9);
    EXPECT_NEAR(stream.error, batch.error, 1e-9);
}

TEST(StatsRunningWeights, EmptyAllZeroAndInvalidWeights) {
    RunningWeights running;
    EXPECT_EQ(running.getEffectiveSampleSize(), 0.0);
    EXPECT_EQ(running.getEffectiveSampleFraction(), 0.0);
    EXPECT_TRUE(std::isnan(running.getLogZ().value));
    EXPECT_TRUE(std::isnan(running.getLogZ().error));
    running.add(-Inf);
    running.add(-Inf);
    EXPECT_EQ(running.getCount(), 2);
    EXPECT_EQ(running.getEffectiveSampleSize(), 0.0);
    EXPECT_EQ(running.getLogZ().value, -Inf);
    EXPECT_EQ(running.getLogZ().error, Inf);
    EXPECT_NE(errorMessage([&] { running.add(std::nan("")); }).find("logWeight"), std::string::npos);
    EXPECT_NE(errorMessage([&] { running.add(Inf); }).find("logWeight"), std::string::npos);
    EXPECT_EQ(running.getCount(), 2); // a refused weight is not counted
    running.add(1.0);
    EXPECT_EQ(running.getEffectiveSampleSize(), 1.0);
    EXPECT_NEAR(running.getLogZ().value, 1.0 - std::log(3.0), 1e-15);
    running.reset();
    EXPECT_EQ(running.getCount(), 0);
    EXPECT_EQ(running.getNumZero(), 0);
    EXPECT_EQ(running.getLogSumWeights(), -Inf);
}

TEST(StatsRunningWeights, LogAddExp) {
    EXPECT_EQ(logAddExp(-Inf, -Inf), -Inf);
    EXPECT_EQ(logAddExp(-Inf, 2.0), 2.0);
    EXPECT_EQ(logAddExp(3.0, -Inf), 3.0);
    EXPECT_NEAR(logAddExp(1000.0, 1000.0), 1000.0 + std::log(2.0), 1e-12);
    EXPECT_NEAR(logAddExp(std::log(2.0), std::log(3.0)), std::log(5.0), 1e-15);
}

TEST(StatsMetropolis, AcceptanceRules) {
    // Uphill in weight: always; zero-weight proposal: never; from a zero-weight state: any positive weight.
    EXPECT_TRUE(metropolisAccept(1.0, 0.0, 0.999999));
    EXPECT_TRUE(metropolisAccept(0.0, 0.0, 0.999999));
    EXPECT_FALSE(metropolisAccept(-Inf, 0.0, 1e-300));
    EXPECT_FALSE(metropolisAccept(-Inf, -Inf, 1e-300));
    EXPECT_TRUE(metropolisAccept(-700.0, -Inf, 0.999999));
    // Downhill: accepted exactly when u < w'/w.
    const double logRatio = std::log(0.25);
    EXPECT_TRUE(metropolisAccept(logRatio, 0.0, 0.2499));
    EXPECT_FALSE(metropolisAccept(logRatio, 0.0, 0.2501));
}

TEST(StatsMetropolis, IndependenceChainSamplesTheTargetExactly) {
    // Three states with target p and a proposal q far from it: the chain's visit frequencies
    // converge to p (independence MH is exact for any q with full support).
    const std::vector<double> p = {0.7, 0.2, 0.1}, q = {0.1, 0.3, 0.6};
    std::vector<double> logW(3);
    for (int i = 0; i < 3; i++)
        logW[i] = std::log(p[i]) - std::log(q[i]);
    std::mt19937_64 rng(11);
    std::discrete_distribution<int> propose(q.begin(), q.end());
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const int steps = 400000;
    std::vector<double> visits(3, 0.0);
    int state = 2;
    for (int s = 0; s < steps; s++) {
        const int proposal = propose(rng);
        if (metropolisAccept(logW[proposal], logW[state], uniform(rng)))
            state = proposal;
        visits[state] += 1.0 / steps;
    }
    for (int i = 0; i < 3; i++)
        EXPECT_NEAR(visits[i], p[i], 0.006) << "state " << i; // > 5 standard errors of the correlated chain
}
