// The weights engine, part 1 (cgflow/stats/LogWeights.h): log-sum-exp, Kish ESS, log Z and
// self-normalized estimates with delta-method and bootstrap errors, against direct sums, exact
// importance-sampling cases and the spread of independent replicates.
#include "CoreTestUtils.h"
#include "cgflow/stats/LogWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace cgflow::stats;
using cgflowtest::errorMessage;

namespace {

const double Inf = std::numeric_limits<double>::infinity();

/** Importance sampling of the unnormalized target exp(-x^2/2) (Z = sqrt(2 pi)) with a N(0, sigma^2) proposal. */
struct GaussianCase {
    std::vector<double> x, logW;
};

GaussianCase gaussianCase(int n, double sigma, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, sigma);
    GaussianCase c;
    for (int i = 0; i < n; i++) {
        const double x = normal(rng);
        const double logQ = -x * x / (2 * sigma * sigma) - std::log(sigma * std::sqrt(2 * M_PI));
        c.x.push_back(x);
        c.logW.push_back(-x * x / 2 - logQ);
    }
    return c;
}

std::vector<double> squares(const std::vector<double>& x) {
    std::vector<double> out;
    for (double v : x)
        out.push_back(v * v);
    return out;
}

} // namespace

TEST(StatsLogWeights, LogSumExpMatchesDirectSumsAndSurvivesLargeOffsets) {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-5, 5);
    std::vector<double> x(37);
    double direct = 0;
    for (double& v : x) {
        v = u(rng);
        direct += std::exp(v);
    }
    EXPECT_NEAR(logSumExp(x), std::log(direct), 1e-13);
    // exp(+-1000) over- and underflows a direct sum; the shift must carry through exactly.
    for (double offset : {1e3, -1e3}) {
        std::vector<double> shifted = x;
        for (double& v : shifted)
            v += offset;
        EXPECT_NEAR(logSumExp(shifted), std::log(direct) + offset, 1e-10) << offset;
    }
    EXPECT_NEAR(logSumExp({1000, 1000}), 1000 + std::log(2.0), 1e-12);
    EXPECT_NEAR(logSumExp({-1000, -1001, -Inf}), -1000 + std::log1p(std::exp(-1.0)), 1e-12);
    EXPECT_EQ(logSumExp({-Inf, 2.5, -Inf}), 2.5);
    EXPECT_EQ(logSumExp({-Inf, -Inf}), -Inf);
}

TEST(StatsLogWeights, InvalidLogWeightsAreErrorsNamingTheEntry) {
    EXPECT_NE(errorMessage([] { logSumExp({0, NAN}); }).find("logW[1] is NaN"), std::string::npos);
    EXPECT_NE(errorMessage([] { logSumExp({Inf}); }).find("logW[0] is +inf"), std::string::npos);
    EXPECT_NE(errorMessage([] { logSumExp({}); }).find("logW is empty"), std::string::npos);
    EXPECT_NE(errorMessage([] { effectiveSampleSize({1, 2, NAN}); }).find("logW[2] is NaN"), std::string::npos);
    EXPECT_NE(errorMessage([] { logMeanExp({Inf, 0}); }).find("logW[0] is +inf"), std::string::npos);
    EXPECT_NE(errorMessage([] { normalizedWeights({-Inf}); }).find("every weight is zero"), std::string::npos);
}

TEST(StatsLogWeights, EffectiveSampleSize) {
    EXPECT_NEAR(effectiveSampleSize(std::vector<double>(50, 3.7)), 50, 1e-10);
    EXPECT_NEAR(effectiveSampleFraction(std::vector<double>(50, -800.0)), 1.0, 1e-12);
    EXPECT_NEAR(effectiveSampleSize({2.0, -Inf, -Inf}), 1, 1e-15);
    // w = (1, 3): (1 + 3)^2 / (1 + 9) = 1.6, a fraction 0.8 of 2.
    EXPECT_NEAR(effectiveSampleSize({0.0, std::log(3.0)}), 1.6, 1e-14);
    EXPECT_NEAR(effectiveSampleFraction({0.0, std::log(3.0)}), 0.8, 1e-14);
    // Scale-free: a common offset of the log-weights (an unknown normalizer) changes nothing.
    EXPECT_NEAR(effectiveSampleSize({700.0, 700 + std::log(3.0)}), 1.6, 1e-12);
    EXPECT_EQ(effectiveSampleSize({-Inf, -Inf}), 0.0);
    const std::vector<double> w = normalizedWeights({0.0, std::log(3.0), -Inf});
    EXPECT_NEAR(w[0], 0.25, 1e-15);
    EXPECT_NEAR(w[1], 0.75, 1e-15);
    EXPECT_EQ(w[2], 0.0);
}

TEST(StatsLogWeights, LogZErrorIsTheDeltaMethodOfTheMeanWeight) {
    // se(mean w) / mean w with the population variance of w, written out directly.
    const std::vector<double> logW = {0.3, -1.2, 2.0, -Inf, 0.0, 1.1};
    std::vector<double> w;
    for (double v : logW)
        w.push_back(std::exp(v));
    double mean = 0, meanSq = 0;
    for (double v : w) {
        mean += v / w.size();
        meanSq += v * v / w.size();
    }
    const Estimate e = logMeanExp(logW);
    EXPECT_NEAR(e.value, std::log(mean), 1e-14);
    EXPECT_NEAR(e.error, std::sqrt((meanSq - mean * mean) / w.size()) / mean, 1e-14);
    const Estimate none = logMeanExp({-Inf, -Inf});
    EXPECT_EQ(none.value, -Inf);
    EXPECT_EQ(none.error, Inf);
}

TEST(StatsLogWeights, LogZAndObservablesAgreeWithExactValuesWithinTheirErrors) {
    const GaussianCase c = gaussianCase(10000, 1.6, 3);
    const Estimate logZ = logMeanExp(c.logW);
    EXPECT_LT(std::fabs(logZ.value - 0.5 * std::log(2 * M_PI)), 4 * logZ.error) << logZ.value << " +- " << logZ.error;
    EXPECT_LT(logZ.error, 0.01); // the test has power: 10000 samples of a good proposal
    const std::vector<double> x2 = squares(c.x);
    const Estimate second = selfNormalizedMean(c.logW, x2);
    EXPECT_LT(std::fabs(second.value - 1.0), 4 * second.error) << second.value << " +- " << second.error;
    // The bootstrap agrees with the delta method (both estimate the same standard error).
    const Estimate bootSecond = bootstrapMean(c.logW, x2, 200, 7);
    const Estimate bootLogZ = bootstrapLogZ(c.logW, 200, 7);
    EXPECT_EQ(bootSecond.value, second.value);
    EXPECT_EQ(bootLogZ.value, logZ.value);
    EXPECT_NEAR(bootSecond.error / second.error, 1.0, 0.2);
    EXPECT_NEAR(bootLogZ.error / logZ.error, 1.0, 0.2);
    // Deterministic for a seed, different for another.
    EXPECT_EQ(bootstrapMean(c.logW, x2, 200, 7).error, bootSecond.error);
    EXPECT_NE(bootstrapMean(c.logW, x2, 200, 8).error, bootSecond.error);
}

TEST(StatsLogWeights, BootstrapErrorsMatchTheSpreadOfIndependentReplicates) {
    // 100 independent data sets: the standard deviation of their estimates is the true standard error,
    // which the bootstrap (per data set) and the delta method must reproduce; and +-2 bootstrap errors
    // cover the exact <x^2> = 1 about 95 % of the time.
    const int replicates = 100, n = 1000;
    std::vector<double> estimates;
    double meanBoot = 0, meanDelta = 0;
    int covered = 0;
    for (int r = 0; r < replicates; r++) {
        const GaussianCase c = gaussianCase(n, 1.5, 100 + r);
        const std::vector<double> x2 = squares(c.x);
        const Estimate boot = bootstrapMean(c.logW, x2, 100, r);
        estimates.push_back(boot.value);
        meanBoot += boot.error / replicates;
        meanDelta += selfNormalizedMean(c.logW, x2).error / replicates;
        covered += std::fabs(boot.value - 1.0) < 2 * boot.error;
    }
    double mean = 0, variance = 0;
    for (double v : estimates)
        mean += v / replicates;
    for (double v : estimates)
        variance += (v - mean) * (v - mean) / (replicates - 1);
    const double spread = std::sqrt(variance);
    EXPECT_NEAR(meanBoot / spread, 1.0, 0.2) << "bootstrap " << meanBoot << " vs replicate spread " << spread;
    EXPECT_NEAR(meanDelta / spread, 1.0, 0.2) << "delta method " << meanDelta << " vs replicate spread " << spread;
    EXPECT_GE(covered, 85);
    EXPECT_LT(std::fabs(mean - 1.0), 4 * spread / std::sqrt(replicates));
}

TEST(StatsLogWeights, SelfNormalizedMeanAndBootstrapEdgeCases) {
    EXPECT_NE(errorMessage([] { selfNormalizedMean({0.0, 0.0}, {1.0}); }).find("values has 1 entries but logW has 2"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { selfNormalizedMean({0.0, 0.0}, {1.0, NAN}); }).find("values[1] is not finite"),
              std::string::npos);
    // A non-finite observable on a zero-weight sample (a clash) is ignored.
    EXPECT_EQ(selfNormalizedMean({0.0, -Inf}, {2.0, NAN}).value, 2.0);
    // w = (1, 3), f = (0, 4): mean 3; delta error sqrt(0.25^2 * 9 + 0.75^2 * 1) = 0.75 sqrt(2).
    const Estimate e = selfNormalizedMean({0.0, std::log(3.0)}, {0.0, 4.0});
    EXPECT_NEAR(e.value, 3.0, 1e-14);
    EXPECT_NEAR(e.error, 0.75 * std::sqrt(2.0), 1e-14);
    // One positive weight among ten: about exp(-1) of the resamples miss it. The mean of such a
    // resample is undefined (an Error naming the resample); its log Z is -inf (an infinite error).
    std::vector<double> lonely(10, -Inf);
    lonely[3] = 0;
    const std::vector<double> f(10, 1.0);
    EXPECT_NE(errorMessage([&] { bootstrapMean(lonely, f, 50, 1); }).find("the statistic failed on resample"),
              std::string::npos);
    EXPECT_EQ(bootstrapLogZ(lonely, 50, 1).error, Inf);
    EXPECT_NE(errorMessage([&] { bootstrapMean(lonely, f, 1, 1); }).find("numResamples must be >= 2"), std::string::npos);
    EXPECT_NE(errorMessage([&] {
                  bootstrap(f, {}, [](const std::vector<double>&, const std::vector<double>&) { return NAN; }, 5, 0);
              }).find("NaN on resample 0"),
              std::string::npos);
}

TEST(StatsLogWeights, BootstrapIndicesAreUniformAndReproducible) {
    const int n = 10, resamples = 2000;
    std::vector<int> counts(n, 0);
    for (int b = 0; b < resamples; b++)
        for (int i = 0; i < n; i++) {
            const int k = bootstrapIndex(42, b, i, n);
            ASSERT_GE(k, 0);
            ASSERT_LT(k, n);
            counts[k]++;
            ASSERT_EQ(k, bootstrapIndex(42, b, i, n));
        }
    // Each count is Binomial(20000, 0.1): mean 2000, sd 42.
    for (int c : counts)
        EXPECT_NEAR(c, 2000, 5 * 42);
}
