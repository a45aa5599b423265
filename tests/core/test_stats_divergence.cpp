// The weights engine, part 4 (cgflow/stats/Divergence.h): forward KL and Jensen-Shannon with their
// stated epsilon floor, and the CG-BG paper's PMF error, against hand-computed values.
#include "CoreTestUtils.h"
#include "cgflow/stats/Divergence.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace cgflow::stats;
using cgflowtest::errorMessage;

TEST(StatsDivergence, KullbackLeiblerAgainstHandValues) {
    const std::vector<double> p = {0.5, 0.5}, q = {0.9, 0.1};
    EXPECT_NEAR(klDivergence(p, q, 0), 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(0.5 / 0.1), 1e-14);
    EXPECT_NEAR(klDivergence(q, p, 0), 0.9 * std::log(0.9 / 0.5) + 0.1 * std::log(0.1 / 0.5), 1e-14);
    EXPECT_NEAR(klDivergence(p, q), klDivergence(p, q, 0), 1e-9); // the default floor barely matters here
    EXPECT_EQ(klDivergence(p, p), 0.0);
    EXPECT_EQ(klDivergence({3, 1, 0}, {0.75, 0.25, 0}), 0.0); // normalized first
    // Disjoint supports: finite only through the floor, and exactly the stated one:
    // p~ = ((1 + e), e) / (1 + 2e), q~ reversed, D = (1 / (1 + 2e)) ln((1 + e) / e).
    const double e = 1e-10;
    EXPECT_NEAR(klDivergence({1, 0}, {0, 1}), std::log((1 + e) / e) / (1 + 2 * e), 1e-12);
    const double e2 = 1e-3;
    EXPECT_NEAR(klDivergence({1, 0}, {0, 1}, e2), std::log((1 + e2) / e2) / (1 + 2 * e2), 1e-12);
    EXPECT_NE(errorMessage([] { klDivergence({1}, {1, 2}); }).find("p has 1 bins but q has 2"), std::string::npos);
    EXPECT_NE(errorMessage([] { klDivergence({1, -1}, {1, 2}); }).find("p[1] must be finite and >= 0"), std::string::npos);
    EXPECT_NE(errorMessage([] { klDivergence({1, 1}, {1, NAN}); }).find("q[1] must be finite and >= 0"), std::string::npos);
    EXPECT_NE(errorMessage([] { klDivergence({1, 1}, {1, 1}, -1); }).find("epsilon must be finite and >= 0"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { klDivergence({}, {}); }).find("p is empty"), std::string::npos);
}

TEST(StatsDivergence, JensenShannonIsSymmetricAndBoundedByLn2) {
    const std::vector<double> p = {0.5, 0.5}, q = {0.9, 0.1};
    EXPECT_EQ(jensenShannonDivergence(q, q), 0.0);
    const double m0 = 0.7, m1 = 0.3;
    EXPECT_NEAR(jensenShannonDivergence(p, q, 0),
                0.5 * (0.5 * std::log(0.5 / m0) + 0.5 * std::log(0.5 / m1) + 0.9 * std::log(0.9 / m0) + 0.1 * std::log(0.1 / m1)),
                1e-14);
    // Disjoint supports reach ln 2; unnormalized inputs are normalized.
    EXPECT_NEAR(jensenShannonDivergence({2, 0}, {0, 5}), std::log(2.0), 1e-8);
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<double> u(0, 1);
    for (int trial = 0; trial < 50; trial++) {
        std::vector<double> a(12), b(12);
        for (int i = 0; i < 12; i++) {
            a[i] = u(rng) < 0.3 ? 0 : u(rng);
            b[i] = u(rng) < 0.3 ? 0 : u(rng);
        }
        a[0] += 0.1;
        b[0] += 0.1;
        const double ab = jensenShannonDivergence(a, b), ba = jensenShannonDivergence(b, a);
        EXPECT_NEAR(ab, ba, 1e-15);
        EXPECT_GT(ab, 0);
        EXPECT_LE(ab, std::log(2.0));
    }
    EXPECT_NE(errorMessage([] { jensenShannonDivergence({0, 0}, {1, 2}); }).find("p is all zero"), std::string::npos);
}

TEST(StatsDivergence, PmfErrorIsTheMixtureWeightedSquaredDifferenceOfMinusLnP) {
    // p = (0.5, 0.5, 0, 0), q = (0.25, 0.5, 0.25, 0): bins 0-2 are populated in either; bin 2 takes the
    // baseline b in p; mixture weights (0.375, 0.5, (b + 0.25) / 2); differences (ln 2, 0, ln(4 b)).
    for (double b : {DefaultPmfErrorBaseline, 1e-3}) {
        const double m2 = (b + 0.25) / 2;
        const double expected =
            (0.375 * std::pow(std::log(2.0), 2) + m2 * std::pow(std::log(4 * b), 2)) / (0.375 + 0.5 + m2);
        EXPECT_NEAR(pmfError({0.5, 0.5, 0, 0}, {0.25, 0.5, 0.25, 0}, b), expected, 1e-12) << b;
        EXPECT_NEAR(pmfError({0.25, 0.5, 0.25, 0}, {0.5, 0.5, 0, 0}, b), expected, 1e-12) << "symmetric";
    }
    EXPECT_EQ(pmfError({1, 2, 3, 0}, {2, 4, 6, 0}), 0.0) << "densities are normalized: no error from a scale";
    // Both populated everywhere: no baseline involved, sum m (ln p - ln q)^2 with m = (p + q) / 2.
    const double d = std::log(0.8 / 0.6);
    EXPECT_NEAR(pmfError({0.8, 0.2}, {0.6, 0.4}, 1e-6),
                0.7 * d * d + 0.3 * std::pow(std::log(0.2 / 0.4), 2), 1e-14);
    // A sampler that misses half the reference pays about 0.25 (ln 2e-6)^2, weighted by the mixture.
    EXPECT_GT(pmfError({1, 0}, {0.5, 0.5}), 40.0);
    EXPECT_NE(errorMessage([] { pmfError({1, 0}, {1, 1}, 0.0); }).find("baseline must be in (0, 1]"), std::string::npos);
    EXPECT_NE(errorMessage([] { pmfError({1, 0}, {0, 0}); }).find("q is all zero"), std::string::npos);
    EXPECT_NE(errorMessage([] { pmfError({1, 0}, {1}); }).find("p has 2 bins but q has 1"), std::string::npos);
}
