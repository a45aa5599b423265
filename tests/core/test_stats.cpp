// The weights engine (core/stats): log-weights, ESS, log Z, bootstrap, clipping, histograms and
// free-energy profiles, divergences, structure metrics; against exact values and known cases.
#include "CoreTestUtils.h"
#include "cgflow/stats/Clipping.h"
#include "cgflow/stats/Divergence.h"
#include "cgflow/stats/Histogram.h"
#include "cgflow/stats/LogWeights.h"
#include "cgflow/stats/Structure.h"

#include <gtest/gtest.h>

#include <Eigen/Geometry>
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

} // namespace

TEST(Stats, LogSumExpIsStableAndValidates) {
    EXPECT_NEAR(logSumExp({1000, 1000}), 1000 + std::log(2.0), 1e-12);
    EXPECT_NEAR(logSumExp({-1000, -1001, -Inf}), -1000 + std::log1p(std::exp(-1.0)), 1e-12);
    EXPECT_NEAR(logSumExp({std::log(0.25), std::log(0.5)}), std::log(0.75), 1e-15);
    EXPECT_EQ(logSumExp({-Inf, -Inf}), -Inf);
    EXPECT_NE(errorMessage([] { logSumExp({0, NAN}); }).find("logW[1] is NaN"), std::string::npos);
    EXPECT_NE(errorMessage([] { logSumExp({Inf}); }).find("logW[0] is +inf"), std::string::npos);
    EXPECT_NE(errorMessage([] { logSumExp({}); }).find("logW is empty"), std::string::npos);
    EXPECT_NE(errorMessage([] { normalizedWeights({-Inf}); }).find("every weight is zero"), std::string::npos);
}

TEST(Stats, EffectiveSampleSize) {
    EXPECT_NEAR(effectiveSampleSize(std::vector<double>(50, 3.7)), 50, 1e-10);
    EXPECT_NEAR(effectiveSampleSize({2.0, -Inf, -Inf}), 1, 1e-15);
    EXPECT_NEAR(effectiveSampleFraction({0.0, std::log(3.0)}), 16.0 / 10.0 / 2.0, 1e-14);
    EXPECT_EQ(effectiveSampleSize({-Inf, -Inf}), 0.0);
    const std::vector<double> w = normalizedWeights({0.0, std::log(3.0), -Inf});
    EXPECT_NEAR(w[0], 0.25, 1e-15);
    EXPECT_NEAR(w[1], 0.75, 1e-15);
    EXPECT_EQ(w[2], 0.0);
}

TEST(Stats, LogZAndObservablesAgreeWithExactValuesWithinTheirErrors) {
    const GaussianCase c = gaussianCase(20000, 1.6, 3);
    const Estimate logZ = logMeanExp(c.logW);
    EXPECT_LT(std::fabs(logZ.value - 0.5 * std::log(2 * M_PI)), 4 * logZ.error) << logZ.value << " +- " << logZ.error;
    std::vector<double> x2;
    for (double x : c.x)
        x2.push_back(x * x);
    const Estimate second = selfNormalizedMean(c.logW, x2);
    EXPECT_LT(std::fabs(second.value - 1.0), 4 * second.error) << second.value << " +- " << second.error;
    // The bootstrap agrees with the delta method (both estimate the same standard error).
    const Estimate bootSecond = bootstrapMean(c.logW, x2, 300, 7);
    const Estimate bootLogZ = bootstrapLogZ(c.logW, 300, 7);
    EXPECT_EQ(bootSecond.value, second.value);
    EXPECT_NEAR(bootSecond.error / second.error, 1.0, 0.2);
    EXPECT_NEAR(bootLogZ.error / logZ.error, 1.0, 0.2);
    // Deterministic for a seed, different for another.
    EXPECT_EQ(bootstrapMean(c.logW, x2, 300, 7).error, bootSecond.error);
    EXPECT_NE(bootstrapMean(c.logW, x2, 300, 8).error, bootSecond.error);
    EXPECT_NE(errorMessage([&] { selfNormalizedMean(c.logW, {1.0}); }).find("f has 1 values"), std::string::npos);
    EXPECT_NE(errorMessage([&] { selfNormalizedMean({0.0, 0.0}, {1.0, NAN}); }).find("f[1] is not finite"),
              std::string::npos);
    EXPECT_NEAR(selfNormalizedMean({0.0, -Inf}, {2.0, NAN}).value, 2.0, 0);
}

TEST(Stats, ClippingPolicies) {
    const std::vector<double> logW = {1, 5, -Inf, 3, 4, 2};
    EXPECT_EQ(clipTopK(logW, 3), (std::vector<double>{1, 3, -Inf, 3, 3, 2}));
    EXPECT_EQ(clipTopK(logW, 0), logW);
    EXPECT_NE(errorMessage([&] { clipTopK(logW, 6); }).find("k must be in [0, 5]"), std::string::npos);
    EXPECT_EQ(dropTopFraction(logW, 0.4), (std::vector<double>{1, -Inf, -Inf, 3, -Inf, 2}));
    EXPECT_EQ(dropTopFraction(logW, 0.0), logW);
    // Percentile 75 of {1, 2, 3, 4, 5} (linear interpolation) is 4.
    EXPECT_EQ(clipAbovePercentile(logW, 75), (std::vector<double>{1, 4, -Inf, 3, 4, 2}));
    EXPECT_EQ(clipAbovePercentile(logW, 100), logW);
    EXPECT_NE(errorMessage([&] { clipAbovePercentile(logW, 0); }).find("percentile must be in (0, 100]"), std::string::npos);
    const std::vector<ClippingRow> rows =
        clippingReport(logW, "top_k", {0, 2, 5}, [](const std::vector<double>& w) { return effectiveSampleSize(w); });
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].numModified, 0);
    EXPECT_EQ(rows[1].numModified, 1); // the top two become the second largest: only the largest changes
    EXPECT_NEAR(rows[2].ess, 5.0, 1e-12);
    EXPECT_LT(rows[0].ess, rows[1].ess);
    EXPECT_NE(errorMessage([&] { clippingReport(logW, "soft", {1}, nullptr); }).find("policy must be"), std::string::npos);
}

TEST(Stats, HistogramsNormalizeWrapAndCountOutOfRange) {
    const HistogramAxis axis{0, 4, 4, false};
    const Histogram h = histogram1D({0.5, 1.5, 1.7, 3.9, 4.0, -0.1}, {}, axis);
    EXPECT_EQ(h.probability, (std::vector<double>{0.25, 0.5, 0, 0.25}));
    EXPECT_EQ(h.numOutOfRange, 2);
    EXPECT_NEAR(h.outOfRangeWeight, 2.0 / 6.0, 1e-15);
    // Weighted, periodic: -pi + 0.1 and pi + 0.1 (wrapped) share the first bin.
    const HistogramAxis angle{-M_PI, M_PI, 2, true};
    const Histogram w = histogram1D({-M_PI + 0.1, M_PI + 0.1, 1.0}, {0.0, 0.0, std::log(2.0)}, angle);
    EXPECT_NEAR(w.probability[0], 0.5, 1e-15);
    EXPECT_NEAR(w.probability[1], 0.5, 1e-15);
    EXPECT_EQ(w.numOutOfRange, 0);
    const Histogram two = histogram2D({0.5, 0.5, 1.5}, {0.2, 1.2, 1.2}, {}, {0, 2, 2}, {0, 2, 2});
    EXPECT_EQ(two.probability.size(), 4u);
    EXPECT_NEAR(two.probability[0 * 2 + 0], 1.0 / 3, 1e-15);
    EXPECT_NEAR(two.probability[0 * 2 + 1], 1.0 / 3, 1e-15);
    EXPECT_NEAR(two.probability[1 * 2 + 1], 1.0 / 3, 1e-15);
    EXPECT_NE(errorMessage([] { histogram1D({5.0}, {}, {0, 1, 2}); }).find("no weight falls on the grid"), std::string::npos);
    EXPECT_NE(errorMessage([] { histogram1D({0.5}, {}, {1, 0, 2}); }).find("finite low < high"), std::string::npos);
    EXPECT_NE(errorMessage([] { histogram1D({0.5, NAN}, {}, {0, 1, 2}); }).find("non-finite value"), std::string::npos);
}

TEST(Stats, FreeEnergyProfileMatchesAHarmonicWellWithinItsErrors) {
    // Importance-sampled N(0, 1) (kT = 2.5 kJ/mol): F(x) = kT x^2 / 2 up to a constant.
    const GaussianCase c = gaussianCase(40000, 1.5, 11);
    const double kT = 2.5;
    const HistogramAxis axis{-2, 2, 8, false};
    const FreeEnergyProfile f = freeEnergy1D(c.x, c.logW, axis, kT, 100, 3);
    // Exact bin probabilities of the in-range part, then F relative to the exact minimum bin.
    std::vector<double> exact(8);
    for (int b = 0; b < 8; b++) {
        const double lo = -2 + 0.5 * b, hi = lo + 0.5;
        exact[b] = std::erf(hi / std::sqrt(2.0)) - std::erf(lo / std::sqrt(2.0));
    }
    const double minF = -kT * std::log(exact[3]);
    int within = 0;
    for (int b = 0; b < 8; b++) {
        const double expected = -kT * std::log(exact[b]) - minF;
        ASSERT_TRUE(std::isfinite(f.error[b]) && f.error[b] > 0);
        // The estimate's own minimum bin (3 or 4) has F = 0 exactly; allow for the shift's noise too.
        within += std::fabs(f.freeEnergy[b] - expected) < 4 * f.error[b] + 4 * f.error[3];
    }
    EXPECT_EQ(within, 8);
    EXPECT_EQ(*std::min_element(f.freeEnergy.begin(), f.freeEnergy.end()), 0.0);
    EXPECT_GT(f.histogram.numOutOfRange, 0);
    // An empty bin: F = +inf, error NaN.
    const FreeEnergyProfile sparse = freeEnergy1D({0.1, 0.2, 0.9}, {}, {0, 1, 4, false}, 1.0, 20, 1);
    EXPECT_EQ(sparse.freeEnergy[1], Inf);
    EXPECT_TRUE(std::isnan(sparse.error[1]));
}

TEST(Stats, Divergences) {
    const std::vector<double> p = {0.5, 0.5}, q = {0.9, 0.1};
    EXPECT_NEAR(klDivergence(p, q, 0), 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(0.5 / 0.1), 1e-14);
    EXPECT_NEAR(klDivergence(p, q), klDivergence(p, q, 0), 1e-9);
    EXPECT_EQ(klDivergence(p, p), 0.0);
    EXPECT_EQ(jensenShannonDivergence(q, q), 0.0);
    EXPECT_NEAR(jensenShannonDivergence(p, q), jensenShannonDivergence(q, p), 1e-15);
    const double m0 = 0.7, m1 = 0.3;
    EXPECT_NEAR(jensenShannonDivergence(p, q, 0),
                0.5 * (0.5 * std::log(0.5 / m0) + 0.5 * std::log(0.5 / m1) + 0.9 * std::log(0.9 / m0) + 0.1 * std::log(0.1 / m1)),
                1e-14);
    // Disjoint supports: JS reaches ln 2; unnormalized inputs are normalized.
    EXPECT_NEAR(jensenShannonDivergence({2, 0}, {0, 5}), std::log(2.0), 1e-8);
    // d = (ln 2, ln 2/3): the variance after the best shift is (ln 3 / 2)^2.
    EXPECT_NEAR(pmfError({0.5, 0.5}, {0.25, 0.75}, 0), std::pow(std::log(3.0) / 2, 2), 1e-14);
    EXPECT_NEAR(pmfError({1, 1, 5}, {1, 1, 0}, 0), 0.0, 1e-14) << "bins empty in the reference are skipped";
    EXPECT_NEAR(pmfError({1, 2, 3}, {2, 4, 6}, 0), 0.0, 1e-14) << "a constant offset of the PMF is no error";
    EXPECT_GT(pmfError({1, 0}, {1, 1}), 100.0) << "a missed reference bin is penalized through the floor";
    EXPECT_NE(errorMessage([] { klDivergence({1}, {1, 2}); }).find("p has 1 bins but q has 2"), std::string::npos);
    EXPECT_NE(errorMessage([] { klDivergence({1, -1}, {1, 2}); }).find("p[1] must be finite and >= 0"), std::string::npos);
    EXPECT_NE(errorMessage([] { jensenShannonDivergence({0, 0}, {1, 2}); }).find("p is all zero"), std::string::npos);
}

TEST(Stats, RadiusOfGyrationAndRmsd) {
    // Two atoms 0.4 nm apart: Rg = 0.2 with equal masses; with masses 1 and 3 the COM is 0.1 from
    // the heavy atom: Rg^2 = (1 * 0.3^2 + 3 * 0.1^2) / 4 = 0.03.
    const std::vector<double> pair = {0, 0, 0, 0.4, 0, 0};
    EXPECT_NEAR(radiusOfGyration(2, pair)[0], 0.2, 1e-15);
    EXPECT_NEAR(radiusOfGyration(2, pair, {1, 3})[0], std::sqrt(0.03), 1e-15);
    // A chiral cloud, rotated and translated: RMSD 0; its mirror image: not 0 (no reflections).
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    std::vector<double> cloud(3 * 7), moved(3 * 7), mirror(3 * 7);
    for (double& v : cloud)
        v = u(rng);
    const Eigen::Matrix3d rotation = Eigen::AngleAxisd(1.1, Eigen::Vector3d(1, 2, -0.5).normalized()).toRotationMatrix();
    for (int i = 0; i < 7; i++) {
        Eigen::Vector3d p(cloud[3 * i], cloud[3 * i + 1], cloud[3 * i + 2]);
        Eigen::Vector3d r = rotation * p + Eigen::Vector3d(3, -1, 2);
        for (int a = 0; a < 3; a++) {
            moved[3 * i + a] = r[a];
            mirror[3 * i + a] = a == 0 ? -p[a] : p[a];
        }
    }
    EXPECT_NEAR(rmsdPair(7, moved.data(), cloud.data()), 0.0, 1e-12);
    EXPECT_GT(rmsdPair(7, mirror.data(), cloud.data()), 0.05);
    // One atom displaced by d along x (the rest far from it) gives at most d / sqrt(N).
    std::vector<double> shifted = cloud;
    shifted[0] += 0.3;
    const std::vector<double> r = rmsd(7, shifted, cloud);
    EXPECT_GT(r[0], 0);
    EXPECT_LE(r[0], 0.3 / std::sqrt(7.0) + 1e-12);
    EXPECT_NE(errorMessage([] { rmsd(2, {0, 0, 0, 1, 1}, {0, 0, 0, 1, 1, 1}); }).find("not a multiple of 3 * numAtoms"),
              std::string::npos);
}

TEST(Stats, BondAndDiversityScores) {
    // Sample 1: bond 0-1 = 0.15 (ref 0.15), bond 1-2 = 0.10 (ref 0.12: 17 % off). Sample 2: both exact.
    const std::vector<double> x = {0, 0, 0, 0.15, 0, 0, 0.25, 0, 0, 0, 0, 0, 0.15, 0, 0, 0.15, 0.12, 0};
    EXPECT_NEAR(bondScore(3, x, {{0, 1}, {1, 2}}, {0.15, 0.12}), 3.0 / 4.0, 1e-15);
    EXPECT_NEAR(bondScore(3, x, {{0, 1}, {1, 2}}, {0.15, 0.12}, 0.2), 1.0, 1e-15);
    EXPECT_NE(errorMessage([&] { bondScore(3, x, {{0, 3}}, {0.1}); }).find("atom 3 out of range"), std::string::npos);
    // Diversity: a set against itself gives -1/(n-1) (the cross mean includes the n zero self pairs).
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    const int n = 12;
    std::vector<double> set(3 * 5 * n);
    for (double& v : set)
        v = u(rng);
    EXPECT_NEAR(diversityScore(5, set, set), -1.0 / (n - 1), 1e-12);
    // A collapsed generator (one structure repeated) is not diverse: a clearly positive score.
    std::vector<double> collapsed;
    for (int s = 0; s < n; s++)
        collapsed.insert(collapsed.end(), set.begin(), set.begin() + 15);
    EXPECT_GT(diversityScore(5, collapsed, set), 0.3);
    EXPECT_NE(errorMessage([&] { diversityScore(5, std::vector<double>(set.begin(), set.begin() + 15), set); })
                  .find("need >= 2 samples"),
              std::string::npos);
}
