// Adaptive tempering: the KL and relative-KL-increase estimators against a Gaussian case with exact
// answers, and both step rules.
#include "CoreTestUtils.h"
#include "cgflow/train/Tempering.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace cgflow::train;
using cgflowtest::errorMessage;

namespace {

/** x ~ q = N(0, s^2); U = x^2 / 2 (so p_beta = N(0, 1/beta)). */
void gaussianSamples(int n, double s, unsigned seed, std::vector<double>& energies, std::vector<double>& logQ) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, s);
    energies.clear();
    logQ.clear();
    for (int i = 0; i < n; i++) {
        const double x = normal(rng);
        energies.push_back(0.5 * x * x);
        logQ.push_back(-x * x / (2 * s * s) - std::log(s * std::sqrt(2 * M_PI)));
    }
}

double exactKL(double s, double beta) {
    return 0.5 * (beta * s * s - 1 - std::log(beta * s * s));
}

double exactNumerator(double s, double beta, double d) {
    // log Z(beta + d) - log Z(beta) + d <U>_q with log Z(b) = log sqrt(2 pi / b) and <U>_q = s^2 / 2.
    return -0.5 * std::log((beta + d) / beta) + d * s * s / 2;
}

} // namespace

TEST(Tempering, EstimatorsMatchTheGaussianCase) {
    std::vector<double> u, logQ;
    const double s = 1.3, beta = 0.8;
    gaussianSamples(200000, s, 1, u, logQ);
    const TemperingStatistics stats = temperingStatistics(u, logQ, beta);
    EXPECT_NEAR(stats.logZ, 0.5 * std::log(2 * M_PI / beta), 0.01);
    EXPECT_NEAR(stats.klEstimate, exactKL(s, beta), 0.01);
    EXPECT_EQ(stats.numFinite, 200000);
    for (double d : {0.05, 0.2}) {
        const double expected = exactNumerator(s, beta, d) / exactKL(s, beta);
        EXPECT_NEAR(relativeKLIncrease(u, logQ, beta, d), expected, 0.05 * std::fabs(expected) + 0.01) << d;
    }
    EXPECT_NEAR(relativeKLIncrease(u, logQ, beta, 0.0), 0.0, 1e-12);
    // Non-finite samples have weight zero, stay out of the averages and count in n: adding as many clashes
    // as samples halves mean w (log Z - log 2) and the ESS fraction, and leaves <U>_q alone.
    const size_t n = u.size();
    for (size_t i = 0; i < n; i++) {
        u.push_back(i % 2 ? NAN : INFINITY);
        logQ.push_back(0.0);
    }
    const TemperingStatistics doubled = temperingStatistics(u, logQ, beta);
    EXPECT_EQ(doubled.numFinite, 200000);
    EXPECT_EQ(doubled.numSamples, 400000);
    EXPECT_NEAR(doubled.logZ, stats.logZ - std::log(2.0), 1e-12);
    EXPECT_NEAR(doubled.essFraction, stats.essFraction / 2, 1e-12);
    EXPECT_NEAR(doubled.meanEnergy, stats.meanEnergy, 1e-12);
    EXPECT_NEAR(doubled.klEstimate, stats.klEstimate - std::log(2.0), 1e-12);
}

TEST(Tempering, StepRules) {
    std::vector<double> u, logQ;
    gaussianSamples(50000, 1.3, 2, u, logQ);
    const double beta = 0.8, cmax = 0.3;
    const double step = adaptiveTemperatureStep(u, logQ, beta, 1.0, cmax, 0.5);
    EXPECT_GT(step, 0.0);
    EXPECT_LT(step, 0.2);
    EXPECT_NEAR(relativeKLIncrease(u, logQ, beta, step), cmax, 1e-4);
    // Capped by maxStep, then by betaTarget - beta, when the KL barely moves.
    EXPECT_EQ(adaptiveTemperatureStep(u, logQ, beta, 1.0, 1e6, 0.05), 0.05);
    EXPECT_NEAR(adaptiveTemperatureStep(u, logQ, beta, 0.81, 1e6, 0.5), 0.01, 1e-15);
    // Rule (b): the first of max, 0.6 max, 0.36 max, ... whose increase is within the limit.
    const double shrunk = shrinkingTemperatureStep(u, logQ, beta, 1.0, cmax, 0.5);
    EXPECT_LE(relativeKLIncrease(u, logQ, beta, shrunk), cmax);
    EXPECT_GT(relativeKLIncrease(u, logQ, beta, shrunk / 0.6), cmax);
    const double k = std::log(shrunk / 0.5) / std::log(0.6);
    EXPECT_NEAR(k, std::round(k), 1e-9);
    EXPECT_NE(errorMessage([&] { adaptiveTemperatureStep(u, logQ, 1.0, 1.0, 0.1, 0.1); }).find("betaTarget must exceed beta"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { relativeKLIncrease(u, {1.0}, 1.0, 0.1); }).find("logQ has 1 values"), std::string::npos);
}
