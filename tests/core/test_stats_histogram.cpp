// The weights engine, part 3 (cgflow/stats/Histogram.h): weighted 1-D/2-D histograms on fixed grids
// (normalization, periodic wrap, out-of-range counting) and free-energy profiles against an exact density.
#include "CoreTestUtils.h"
#include "cgflow/stats/Histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

using namespace cgflow::stats;
using cgflowtest::errorMessage;

namespace {
const double Inf = std::numeric_limits<double>::infinity();
} // namespace

TEST(StatsHistogram, NormalizesAndCountsOutOfRangeWithoutClamping) {
    const HistogramAxis axis{0, 4, 4, false};
    const Histogram h = histogram1D({0.5, 1.5, 1.7, 3.9, 4.0, -0.1}, {}, axis);
    EXPECT_EQ(h.probability, (std::vector<double>{0.25, 0.5, 0, 0.25}));
    EXPECT_EQ(h.numOutOfRange, 2); // 4.0 is the open upper edge, -0.1 below
    EXPECT_NEAR(h.outOfRangeWeight, 2.0 / 6.0, 1e-15);
    // Weighted: the out-of-range fraction is a fraction of weight; -inf weights count nowhere, and a
    // NaN value with zero weight (a clash) is ignored.
    const Histogram w = histogram1D({0.5, 9.0, 2.5, NAN}, {0.0, std::log(2.0), std::log(3.0), -Inf}, axis);
    EXPECT_NEAR(w.probability[0], 0.25, 1e-15);
    EXPECT_NEAR(w.probability[2], 0.75, 1e-15);
    EXPECT_EQ(w.numOutOfRange, 1);
    EXPECT_NEAR(w.outOfRangeWeight, 2.0 / 6.0, 1e-15);
    EXPECT_NE(errorMessage([] { histogram1D({5.0}, {}, {0, 1, 2}); }).find("no weight falls on the grid"), std::string::npos);
    EXPECT_NE(errorMessage([] { histogram1D({0.5}, {}, {1, 0, 2}); }).find("finite low < high"), std::string::npos);
    EXPECT_NE(errorMessage([] { histogram1D({0.5}, {}, {0, 1, 0}); }).find("numBins must be >= 1"), std::string::npos);
    EXPECT_NE(errorMessage([] { histogram1D({0.5, NAN}, {}, {0, 1, 2}); }).find("values[1] is not finite"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { histogram1D({0.5, 0.2}, {0.0}, {0, 1, 2}); }).find("logW has 1 values but there are 2"),
              std::string::npos);
}

TEST(StatsHistogram, PeriodicAxesWrapEveryValue) {
    // -pi + 0.1 and pi + 0.1 (wrapped) share the first bin.
    const HistogramAxis angle{-M_PI, M_PI, 2, true};
    const Histogram w = histogram1D({-M_PI + 0.1, M_PI + 0.1, 1.0}, {0.0, 0.0, std::log(2.0)}, angle);
    EXPECT_NEAR(w.probability[0], 0.5, 1e-15);
    EXPECT_NEAR(w.probability[1], 0.5, 1e-15);
    EXPECT_EQ(w.numOutOfRange, 0);
    // Several turns away, the upper edge (= the lower one), and a hair below the lower edge, whose
    // wrapped position rounds to the upper edge: it belongs to the last bin, never outside.
    const HistogramAxis unit{0, 1, 4, true};
    const Histogram h = histogram1D({0.1 + 7, 0.6 - 3, 1.0, -1e-17, 0.99}, {}, unit);
    EXPECT_EQ(h.numOutOfRange, 0);
    EXPECT_NEAR(h.probability[0], 0.4, 1e-15);
    EXPECT_NEAR(h.probability[2], 0.2, 1e-15);
    EXPECT_NEAR(h.probability[3], 0.4, 1e-15);
}

TEST(StatsHistogram, TwoDimensionalGridsAreRowMajor) {
    const Histogram two = histogram2D({0.5, 0.5, 1.5, 3.0}, {0.2, 1.2, 1.2, 0.5}, {}, {0, 2, 2}, {0, 2, 2});
    ASSERT_EQ(two.probability.size(), 4u);
    EXPECT_NEAR(two.probability[0 * 2 + 0], 1.0 / 3, 1e-15);
    EXPECT_NEAR(two.probability[0 * 2 + 1], 1.0 / 3, 1e-15);
    EXPECT_NEAR(two.probability[1 * 2 + 1], 1.0 / 3, 1e-15);
    EXPECT_EQ(two.probability[1 * 2 + 0], 0.0);
    EXPECT_EQ(two.numOutOfRange, 1);
    // A periodic axis next to a plain one (a dihedral against a distance).
    const Histogram mixed =
        histogram2D({-M_PI - 0.1, -0.5, 0.3}, {0.5, 0.5, 1.5}, {}, {-M_PI, M_PI, 2, true}, {0, 1, 1, false});
    EXPECT_NEAR(mixed.probability[1], 0.5, 1e-15); // -pi - 0.1 wraps to pi - 0.1, the second x bin
    EXPECT_NEAR(mixed.probability[0], 0.5, 1e-15);
    EXPECT_EQ(mixed.numOutOfRange, 1);             // y = 1.5 is off the non-periodic axis
    EXPECT_NE(errorMessage([] { histogram2D({0.5}, {0.5, 0.1}, {}, {0, 1, 2}, {0, 1, 2}); }).find("x has 1 values but y has 2"),
              std::string::npos);
    // Errors name the coordinate: x[i] or y[i]; no samples at all is its own error.
    EXPECT_NE(errorMessage([] { histogram2D({0.5, 0.5}, {0.5, NAN}, {}, {0, 1, 2}, {0, 1, 2}); }).find("y[1] is not finite"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { histogram2D({INFINITY}, {0.5}, {}, {0, 1, 2}, {0, 1, 2}); }).find("x[0] is not finite"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { histogram2D({}, {}, {}, {0, 1, 2}, {0, 1, 2}); }).find("histogram2D: x and y are empty"),
              std::string::npos);
}

TEST(StatsHistogram, FreeEnergyProfileMatchesAHarmonicWellWithinItsErrors) {
    // Importance-sampled N(0, 1) (kT = 2.5 kJ/mol) from a N(0, 1.5^2) proposal: the exact profile is
    // F_b = -kT ln P_b with P_b the Gaussian mass of bin b, shifted to minimum 0.
    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal(0, 1.5);
    std::vector<double> x, logW;
    for (int i = 0; i < 40000; i++) {
        x.push_back(normal(rng));
        logW.push_back(-x.back() * x.back() / 2 + x.back() * x.back() / (2 * 1.5 * 1.5));
    }
    const double kT = 2.5;
    const FreeEnergyProfile f = freeEnergy1D(x, logW, {-2, 2, 8, false}, kT, 100, 3);
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
    // The errors are small enough for the comparison to mean something (outer bins: ~1 % of samples).
    EXPECT_LT(f.error[0], 0.2);
    EXPECT_EQ(*std::min_element(f.freeEnergy.begin(), f.freeEnergy.end()), 0.0);
    EXPECT_GT(f.histogram.numOutOfRange, 0);
    // Deterministic for a seed.
    EXPECT_EQ(freeEnergy1D(x, logW, {-2, 2, 8, false}, kT, 100, 3).error, f.error);
}

TEST(StatsHistogram, FreeEnergyEdgeCases) {
    // An empty bin: F = +inf, error NaN.
    const FreeEnergyProfile sparse = freeEnergy1D({0.1, 0.2, 0.9}, {}, {0, 1, 4, false}, 1.0, 20, 1);
    EXPECT_EQ(sparse.freeEnergy[1], Inf);
    EXPECT_TRUE(std::isnan(sparse.error[1]));
    EXPECT_NEAR(sparse.freeEnergy[3], std::log(2.0), 1e-14); // p = 1/3 vs 2/3, kT = 1
    const FreeEnergyProfile two = freeEnergy2D({0.1, 0.2, 0.9}, {0.5, 0.5, 0.5}, {}, {0, 1, 2}, {0, 1, 1}, 2.0, 20, 1);
    ASSERT_EQ(two.freeEnergy.size(), 2u);
    EXPECT_NEAR(two.freeEnergy[1], 2.0 * std::log(2.0), 1e-14);
    EXPECT_NE(errorMessage([] { freeEnergy1D({0.5}, {}, {0, 1, 2}, 0.0); }).find("kT must be a finite number > 0"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { freeEnergy1D({0.5}, {}, {0, 1, 2}, 1.0, 1); }).find("numResamples must be >= 2"),
              std::string::npos);
    // No samples: an error of its own (not "no weight falls on the grid"); a NaN sample is named.
    EXPECT_NE(errorMessage([] { histogram1D({}, {}, {0, 1, 2}); }).find("histogram1D: values is empty"), std::string::npos);
    EXPECT_NE(errorMessage([] { freeEnergy1D({}, {}, {0, 1, 2}, 1.0); }).find("freeEnergy1D: values is empty"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { freeEnergy1D({0.5, NAN}, {}, {0, 1, 2}, 1.0); }).find("freeEnergy1D: values[1] is not finite"),
              std::string::npos);
    // A NaN value with weight zero is ignored, as before.
    EXPECT_EQ(histogram1D({0.5, NAN}, {0.0, -Inf}, {0, 1, 2}).probability[1], 1.0);
}
