#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/flows/RQSpline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::flows::RQSpline;
using cgflow::flows::RQSplineKnots;
using cgflow::flows::RQSplineType;

namespace {

const double Pi = 3.14159265358979323846;

using cgflowtest::errorMessage;

// The splines every property is checked on: both types, K = 1 (degenerate), small and typical K,
// narrow and wide intervals, default and custom minimum constants.
std::vector<RQSpline> testSplines() {
    return {RQSpline::monotonic(1, 2.0),          RQSpline::monotonic(2, 1.0),
            RQSpline::monotonic(8, 5.0),          RQSpline::monotonic(16, 3.0, 0.01, 0.02, 0.05),
            RQSpline::circular(1),                RQSpline::circular(2),
            RQSpline::circular(8),                RQSpline::circular(12, 0.02, 0.01, 0.1)};
}

// Raw conditioner outputs. Mode 0: moderate N(0, 1.5) values; mode 1: extreme values, each
// entry +-10 or uniform in [-10, 10], which pins bins and derivatives at their minimums.
std::vector<double> randomRaw(const RQSpline& spline, std::mt19937& rng, int mode) {
    std::vector<double> raw(spline.getNumParameters());
    std::normal_distribution<double> normal(0.0, 1.5);
    std::uniform_real_distribution<double> uniform(-10.0, 10.0);
    std::bernoulli_distribution coin(0.5);
    for (double& r : raw) {
        if (mode == 0)
            r = normal(rng);
        else
            r = coin(rng) ? (coin(rng) ? 10.0 : -10.0) : uniform(rng);
    }
    return raw;
}

RQSplineKnots knotsOf(const RQSpline& spline, const std::vector<double>& raw) {
    RQSplineKnots knots;
    spline.computeKnots(raw.data(), knots);
    return knots;
}

double forwardOf(const RQSpline& spline, const std::vector<double>& raw, double x, double* logDet) {
    double ld;
    double y = spline.forward(knotsOf(spline, raw), x, ld);
    if (logDet)
        *logDet = ld;
    return y;
}

double inverseOf(const RQSpline& spline, const std::vector<double>& raw, double y, double* logDet) {
    double ld;
    double x = spline.inverse(knotsOf(spline, raw), y, ld);
    if (logDet)
        *logDet = ld;
    return x;
}

// Five-point central difference: truncation O(h^4), so h can be large enough that rounding is
// far below the 1e-6 relative tolerance.
double centralDifference(const std::function<double(double)>& f, double x, double h) {
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h);
}

// For gradient checks: central differences over a ladder of steps, keeping the one whose two
// neighbours agree with it best. The inverse carries rounding noise of order eps/f' (its
// quadratic is as ill-conditioned as the map), and tiny bins carry the rounding of -B + 2B cum,
// which a fixed small step would amplify and a fixed large step would trade for truncation
// error; requiring three steps to agree keeps a coincidentally close noisy pair from passing
// as converged. Returns the estimate and the disagreement that backs it.
struct Derivative {
    double value;
    double error;
};

Derivative robustDerivative(const std::function<double(double)>& f, double x) {
    const double steps[] = {1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6};
    const int n = sizeof(steps) / sizeof(steps[0]);
    double d[n];
    for (int i = 0; i < n; i++)
        d[i] = centralDifference(f, x, steps[i]);
    Derivative best{d[1], std::numeric_limits<double>::infinity()};
    for (int i = 1; i + 1 < n; i++) {
        const double error = std::max(std::abs(d[i] - d[i - 1]), std::abs(d[i + 1] - d[i]));
        if (error < best.error)
            best = {d[i], error};
    }
    return best;
}

double distanceToNearest(const std::vector<double>& knots, double v) {
    double d = std::numeric_limits<double>::infinity();
    for (double k : knots)
        d = std::min(d, std::abs(v - k));
    return d;
}

// A point in the spline's domain (plus, for the monotonic spline, some in the tails) that keeps
// a margin from the knots: log|det| is only C^0 there, and the finite differences of the
// gradient tests would otherwise straddle a kink.
double pointAwayFromKnots(const RQSpline& spline, const std::vector<double>& knots, std::mt19937& rng,
                          bool allowTails) {
    const double B = spline.getBound();
    const double range = allowTails && spline.getType() == RQSplineType::Monotonic ? 1.3 * B : B;
    std::uniform_real_distribution<double> uniform(-range, range);
    for (;;) {
        double v = uniform(rng);
        if (distanceToNearest(knots, v) > 2e-3 && std::abs(std::abs(v) - B) > 2e-3)
            return v;
    }
}

// |analytic - fd| <= 1e-6 * max(|analytic|, |fd|) plus the finite difference's own error
// estimate, with a floor of 1e-8 times the largest gradient of the same draw for components
// that are zero up to rounding: with extreme raw values the double-precision differences of
// the inverse cannot resolve less (checked against a 60-digit mpmath reference for such cases).
void expectGradientClose(double analytic, const Derivative& fd, double scale, const std::string& what) {
    const double tol = 1e-6 * std::max(std::abs(analytic), std::abs(fd.value)) + 1e-8 * (1 + scale) + fd.error;
    EXPECT_NEAR(analytic, fd.value, tol) << what << " (fd error estimate " << fd.error << ")";
}

} // namespace

TEST(RQSpline, ParameterCountsAndLayout) {
    for (int K = 1; K <= 12; K++) {
        RQSpline m = RQSpline::monotonic(K, 4.0);
        RQSpline c = RQSpline::circular(K);
        EXPECT_EQ(m.getNumParameters(), 3 * K - 1);
        EXPECT_EQ(c.getNumParameters(), 3 * K);
        EXPECT_EQ(RQSpline::numParameters(RQSplineType::Monotonic, K), 3 * K - 1);
        EXPECT_EQ(RQSpline::numParameters(RQSplineType::Circular, K), 3 * K);
        EXPECT_EQ(m.getNumRawDerivatives(), K - 1);
        EXPECT_EQ(c.getNumRawDerivatives(), K);
        EXPECT_EQ(m.getWidthOffset(), 0);
        EXPECT_EQ(m.getHeightOffset(), K);
        EXPECT_EQ(m.getDerivativeOffset(), 2 * K);
    }
    RQSpline c = RQSpline::circular(4);
    EXPECT_EQ(c.getType(), RQSplineType::Circular);
    EXPECT_DOUBLE_EQ(c.getBound(), Pi);
    RQSpline m = RQSpline::monotonic(4, 2.5, 0.01, 0.02, 0.03);
    EXPECT_EQ(m.getType(), RQSplineType::Monotonic);
    EXPECT_EQ(m.getNumBins(), 4);
    EXPECT_EQ(m.getBound(), 2.5);
    EXPECT_EQ(m.getMinBinWidth(), 0.01);
    EXPECT_EQ(m.getMinBinHeight(), 0.02);
    EXPECT_EQ(m.getMinDerivative(), 0.03);
    EXPECT_EQ(RQSpline::monotonic(4, 1.0).getMinBinWidth(), 1e-3);
    EXPECT_EQ(RQSpline::monotonic(4, 1.0).getMinBinHeight(), 1e-3);
    EXPECT_EQ(RQSpline::monotonic(4, 1.0).getMinDerivative(), 1e-3);
}

TEST(RQSpline, InvalidArgumentsThrowErrorsNamingTheArgument) {
    EXPECT_NE(errorMessage([] { RQSpline::monotonic(0, 1.0); }).find("numBins must be >= 1"), std::string::npos);
    EXPECT_NE(errorMessage([] { RQSpline::circular(-3); }).find("numBins"), std::string::npos);
    EXPECT_NE(errorMessage([] { RQSpline::numParameters(RQSplineType::Circular, 0); }).find("numBins"),
              std::string::npos);
    for (double b : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()})
        EXPECT_NE(errorMessage([b] { RQSpline::monotonic(4, b); }).find("bound"), std::string::npos) << b;
    // K * min >= 1 leaves the softmax no room.
    std::string msg = errorMessage([] { RQSpline::monotonic(10, 1.0, 0.1); });
    EXPECT_NE(msg.find("minBinWidth"), std::string::npos) << msg;
    EXPECT_NE(msg.find("< 1"), std::string::npos) << msg;
    msg = errorMessage([] { RQSpline::circular(4, 1e-3, 0.3); });
    EXPECT_NE(msg.find("minBinHeight"), std::string::npos) << msg;
    EXPECT_NE(errorMessage([] { RQSpline::monotonic(4, 1.0, 0.0); }).find("minBinWidth must be positive"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { RQSpline::monotonic(4, 1.0, 1e-3, -1e-3); }).find("minBinHeight"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { RQSpline::circular(4, 1e-3, 1e-3, 0.0); }).find("minDerivative"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { RQSpline::circular(4, 1e-3, 1e-3, std::nan("")); }).find("minDerivative"),
              std::string::npos);
    // Just below the limit is fine.
    EXPECT_NO_THROW(RQSpline::monotonic(10, 1.0, 0.0999, 0.0999));

    RQSpline s = RQSpline::monotonic(3, 1.0);
    double v = 0;
    EXPECT_NE(errorMessage([&] { s.forwardBatch(-1, &v, &v, &v, &v); }).find("n (number of scalars)"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { s.forwardBatch(1, nullptr, &v, &v, &v); }).find("raw must not be null"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { s.inverseGradientBatch(1, &v, &v, &v, &v, nullptr, &v); }).find("gradY"),
              std::string::npos);
    EXPECT_NO_THROW(s.forwardBatch(0, nullptr, nullptr, nullptr, nullptr));
}

TEST(RQSpline, KnotsRespectMinimumsAndBoundaryConditions) {
    std::mt19937 rng(11);
    for (const RQSpline& spline : testSplines()) {
        const int K = spline.getNumBins();
        const double B = spline.getBound();
        for (int draw = 0; draw < 200; draw++) {
            std::vector<double> raw = randomRaw(spline, rng, draw % 2);
            if (draw < 4) // far beyond what the softmax and softplus could take unshifted
                for (double& r : raw)
                    r = (draw % 2 ? 1000.0 : -1000.0) * ((&r - raw.data()) % 3 == 0 ? 1 : -1);
            RQSplineKnots knots = knotsOf(spline, raw);
            ASSERT_EQ(knots.x.size(), size_t(K + 1));
            EXPECT_EQ(knots.x[0], -B);
            EXPECT_EQ(knots.x[K], B);
            EXPECT_EQ(knots.y[0], -B);
            EXPECT_EQ(knots.y[K], B);
            for (int k = 0; k < K; k++) {
                EXPECT_GE(knots.x[k + 1] - knots.x[k], 2 * B * spline.getMinBinWidth() * (1 - 1e-9));
                EXPECT_GE(knots.y[k + 1] - knots.y[k], 2 * B * spline.getMinBinHeight() * (1 - 1e-9));
            }
            for (int j = 0; j <= K; j++) {
                EXPECT_TRUE(std::isfinite(knots.derivatives[j]));
                EXPECT_GE(knots.derivatives[j], spline.getMinDerivative());
            }
            if (spline.getType() == RQSplineType::Monotonic) {
                EXPECT_EQ(knots.derivatives[0], 1.0);
                EXPECT_EQ(knots.derivatives[K], 1.0);
            } else {
                EXPECT_EQ(knots.derivatives[0], knots.derivatives[K]);
            }
        }
    }
}

TEST(RQSpline, InverseUndoesForwardInsideOutsideAndAtKnots) {
    std::mt19937 rng(1);
    for (const RQSpline& spline : testSplines()) {
        const double B = spline.getBound();
        const bool monotonic = spline.getType() == RQSplineType::Monotonic;
        for (int draw = 0; draw < 100; draw++) {
            const int mode = draw % 2;
            std::vector<double> raw = randomRaw(spline, rng, mode);
            RQSplineKnots knots = knotsOf(spline, raw);
            std::vector<double> points;
            std::uniform_real_distribution<double> uniform(monotonic ? -1.5 * B : -B, monotonic ? 1.5 * B : B);
            for (int i = 0; i < 20; i++)
                points.push_back(uniform(rng));
            for (size_t j = 0; j < knots.x.size(); j++)
                for (double off : {0.0, 1e-12, -1e-12, 1e-14, -1e-14}) {
                    points.push_back(knots.x[j] + off);
                    points.push_back(knots.y[j] + off);
                }
            points.push_back(-B);
            points.push_back(B);
            for (double p : points) {
                if (!monotonic && std::abs(p) > Pi)
                    continue; // the circle is covered below
                // x -> y -> x. The inverse is exactly as well conditioned as the map: an ulp of y
                // moves x by ulp/f', and minimum-derivative bins of extreme draws reach f' ~ 1e-6.
                double ldF, ldI, ldAt;
                double y = spline.forward(knots, p, ldF);
                double x = spline.inverse(knots, y, ldI);
                // So: 1e-10 for moderate draws, and backward stability (|x - p| f' within 1e-13 B,
                // i.e. an error of a few ulps of y) where that allows more.
                const double tolX = std::max(1e-10, 1e-13 * std::max(1.0, B) * std::exp(-ldF));
                EXPECT_NEAR(x, p, tolX) << "x=" << p << " mode=" << mode;
                // log|dx/dy| is -log|dy/dx| at the point the inverse returned (the x of an ulp-
                // perturbed y can differ from p by far more than ld's own rounding near a knot).
                // Re-evaluating at that x still moves xi by ulp(x)/w, and in a minimum-width bin
                // next to a minimum derivative log|det| changes by ~1e6 per unit xi, so extreme
                // draws get a looser bound.
                const double ldTol = mode == 0 ? 1e-10 : 1e-7;
                spline.forward(knots, x, ldAt);
                EXPECT_NEAR(ldI, -ldAt, ldTol * std::max(1.0, std::abs(ldI))) << "x=" << p;
                // y -> x -> y.
                double x2 = spline.inverse(knots, p, ldI);
                double y2 = spline.forward(knots, x2, ldF);
                EXPECT_NEAR(y2, p, 1e-10 * std::max(1.0, B)) << "y=" << p;
                EXPECT_NEAR(ldI, -ldF, ldTol * std::max(1.0, std::abs(ldI))) << "y=" << p;
                if (monotonic && std::abs(p) > B) {
                    EXPECT_EQ(y, p); // identity tails
                    EXPECT_EQ(ldF, 0.0);
                    EXPECT_EQ(x2, p);
                }
            }
        }
    }
}

TEST(RQSpline, CircularAtPlusMinusPiAndWrapping) {
    std::mt19937 rng(2);
    for (const RQSpline& spline : testSplines()) {
        if (spline.getType() != RQSplineType::Circular)
            continue;
        for (int draw = 0; draw < 50; draw++) {
            std::vector<double> raw = randomRaw(spline, rng, draw % 2);
            RQSplineKnots knots = knotsOf(spline, raw);
            const int mode = draw % 2;
            double ldMinus, ldPlus, ld;
            EXPECT_NEAR(spline.forward(knots, -Pi, ldMinus), -Pi, 1e-14);
            EXPECT_NEAR(spline.forward(knots, Pi, ldPlus), Pi, 1e-14);
            EXPECT_LE(spline.forward(knots, Pi, ld), Pi); // never past the seam
            // Equal boundary derivatives: the map is C^1 across the seam of the circle.
            EXPECT_NEAR(ldMinus, ldPlus, 1e-12);
            EXPECT_NEAR(ldMinus, std::log(knots.derivatives[0]), 1e-12);
            // The inverse at the seam: 1e-10, or a few ulps of y (backward stable) where the
            // boundary derivative is tiny.
            const double tolSeam = std::max(1e-10, 1e-13 * Pi * std::exp(-ldPlus));
            EXPECT_NEAR(spline.inverse(knots, -Pi, ld), -Pi, tolSeam);
            EXPECT_NEAR(ld, -ldMinus, 1e-12);
            double xPi = spline.inverse(knots, Pi, ld);
            EXPECT_NEAR(xPi, Pi, tolSeam);
            EXPECT_LE(xPi, Pi);
            EXPECT_NEAR(ld, -ldPlus, 1e-6);
            // log|det| is continuous into the seam from both sides (its values inside are checked
            // against finite differences elsewhere), so the derivative is too. dlog|det|/dx can
            // reach ~1e8 next to a minimum derivative, hence the tiny step.
            const double delta = 1e-13;
            spline.forward(knots, Pi - delta, ld);
            EXPECT_NEAR(ld, ldPlus, 1e-4);
            spline.forward(knots, -Pi + delta, ld);
            EXPECT_NEAR(ld, ldMinus, 1e-4);
            // Inputs outside [-pi, pi] are the same points of the circle. Wrapping rounds the
            // input by ~ulp(2 pi m), which the map scales by f' (forward) or 1/f' (inverse).
            std::uniform_real_distribution<double> uniform(-Pi, Pi);
            for (int i = 0; i < 10; i++) {
                double x = uniform(rng);
                double y = spline.forward(knots, x, ld);
                for (int m : {-3, -1, 1, 2}) {
                    const double wrapError = 1e-15 * (Pi + 2 * Pi * std::abs(m));
                    double ldm;
                    double ym = spline.forward(knots, x + 2 * Pi * m, ldm);
                    EXPECT_NEAR(ym, y, 10 * wrapError * std::max(1.0, std::exp(ld)));
                    EXPECT_NEAR(ldm, ld, mode == 0 ? 1e-8 : 1e-6);
                    EXPECT_GE(ym, -Pi);
                    EXPECT_LE(ym, Pi);
                    double xm = spline.inverse(knots, y + 2 * Pi * m, ldm);
                    EXPECT_NEAR(xm, x, 10 * wrapError * std::max(1.0, std::exp(-ld)));
                }
            }
        }
    }
    EXPECT_EQ(RQSpline::wrapAngle(Pi), Pi);
    EXPECT_EQ(RQSpline::wrapAngle(-Pi), -Pi);
    EXPECT_NEAR(RQSpline::wrapAngle(3 * Pi), -Pi, 1e-15);
    EXPECT_NEAR(RQSpline::wrapAngle(-3.5 * Pi), 0.5 * Pi, 1e-14);
    EXPECT_NEAR(RQSpline::wrapAngle(7.0), 7.0 - 2 * Pi, 1e-15);
    EXPECT_LT(RQSpline::wrapAngle(std::nextafter(Pi, 4.0)), -Pi + 1e-15);
}

TEST(RQSpline, LogDetMatchesFiniteDifferenceAndInverseLogDet) {
    std::mt19937 rng(3);
    for (const RQSpline& spline : testSplines()) {
        for (int draw = 0; draw < 60; draw++) {
            std::vector<double> raw = randomRaw(spline, rng, draw % 2);
            RQSplineKnots knots = knotsOf(spline, raw);
            for (int i = 0; i < 10; i++) {
                double x = pointAwayFromKnots(spline, knots.x, rng, true);
                double ld;
                double y = spline.forward(knots, x, ld);
                auto f = [&](double v) {
                    double unused;
                    return spline.forward(knots, v, unused);
                };
                double fd = centralDifference(f, x, 1e-6);
                EXPECT_NEAR(std::exp(ld), fd, 1e-7 * std::max(1.0, fd)) << "x=" << x;
                double ldInv;
                spline.inverse(knots, y, ldInv);
                EXPECT_NEAR(ldInv, -ld, 1e-9 * std::max(1.0, std::exp(-ld)));
                // And the inverse's own derivative, by differencing the inverse.
                double yy = pointAwayFromKnots(spline, knots.y, rng, true);
                spline.inverse(knots, yy, ldInv);
                auto g = [&](double v) {
                    double unused;
                    return spline.inverse(knots, v, unused);
                };
                double fdInv = centralDifference(g, yy, 1e-6);
                EXPECT_NEAR(std::exp(ldInv), fdInv, 1e-6 * std::max(1.0, fdInv)) << "y=" << yy;
            }
        }
    }
}

TEST(RQSpline, StrictlyMonotonicAndJoinsIdentityTails) {
    std::mt19937 rng(4);
    for (const RQSpline& spline : testSplines()) {
        const double B = spline.getBound();
        for (int draw = 0; draw < 40; draw++) {
            std::vector<double> raw = randomRaw(spline, rng, draw % 2);
            RQSplineKnots knots = knotsOf(spline, raw);
            const int n = 20000;
            double previous = -std::numeric_limits<double>::infinity();
            for (int i = 0; i <= n; i++) {
                double x = -B + 2 * B * i / n;
                double ld;
                double y = spline.forward(knots, x, ld);
                ASSERT_GT(y, previous) << "x=" << x;
                ASSERT_TRUE(std::isfinite(ld));
                previous = y;
            }
            if (spline.getType() != RQSplineType::Monotonic)
                continue;
            // Continuous with the identity, and with derivative 1, from both sides of +-B. The
            // log-det (checked against finite differences in the interior elsewhere) must tend
            // to 0 at the edge; it can change by ~1e6 per unit x in a narrow, steep end bin, so
            // the approach is probed 1e-13 away rather than by a finite difference.
            for (double edge : {-B, B}) {
                double ld;
                EXPECT_NEAR(spline.forward(knots, edge, ld), edge, 1e-14 * B);
                EXPECT_NEAR(ld, 0.0, 1e-12);
                const double h = 1e-13;
                double inner = edge < 0 ? edge + h : edge - h;
                double yInner = spline.forward(knots, inner, ld);
                EXPECT_NEAR(yInner, inner, 1e-14 * B);
                EXPECT_NEAR(ld, 0.0, 1e-4);
                double outer = edge < 0 ? edge - h : edge + h;
                EXPECT_EQ(spline.forward(knots, outer, ld), outer);
                EXPECT_EQ(ld, 0.0);
            }
        }
    }
}

TEST(RQSpline, NonFiniteInputsPropagate) {
    RQSpline m = RQSpline::monotonic(4, 2.0);
    RQSpline c = RQSpline::circular(4);
    std::vector<double> rawM(m.getNumParameters(), 0.3), rawC(c.getNumParameters(), -0.2);
    double ld;
    EXPECT_TRUE(std::isnan(m.forward(knotsOf(m, rawM), std::nan(""), ld)));
    EXPECT_TRUE(std::isnan(ld));
    EXPECT_TRUE(std::isnan(m.inverse(knotsOf(m, rawM), std::nan(""), ld)));
    EXPECT_TRUE(std::isnan(ld));
    EXPECT_EQ(m.forward(knotsOf(m, rawM), -INFINITY, ld), -INFINITY);
    EXPECT_TRUE(std::isnan(c.forward(knotsOf(c, rawC), std::nan(""), ld)));
    EXPECT_TRUE(std::isnan(c.forward(knotsOf(c, rawC), INFINITY, ld)));
}

// Gradients of L = a y + b log|dy/dx| (forward) and L = a x + b log|dx/dy| (inverse) w.r.t. the
// input and every raw parameter, against five-point central differences.
TEST(RQSpline, GradientsMatchFiniteDifferences) {
    std::mt19937 rng(5);
    std::normal_distribution<double> normal(0.0, 1.0);
    int checked = 0;
    for (const RQSpline& spline : testSplines()) {
        const int P = spline.getNumParameters();
        for (int draw = 0; draw < 60; draw++) {
            std::vector<double> raw = randomRaw(spline, rng, draw % 2);
            RQSplineKnots knots = knotsOf(spline, raw);
            for (bool inverse : {false, true}) {
                // Keep the input (and, for the inverse, the output) away from the knots, where
                // log|det| has kinks the differences would straddle.
                double in;
                for (;;) {
                    in = pointAwayFromKnots(spline, inverse ? knots.y : knots.x, rng, true);
                    double ld;
                    double out = inverse ? spline.inverse(knots, in, ld) : spline.forward(knots, in, ld);
                    if (distanceToNearest(inverse ? knots.x : knots.y, out) > 2e-3)
                        break;
                }
                // Each upstream alone and both together.
                for (int which = 0; which < 3; which++) {
                    const double a = which == 1 ? 0.0 : normal(rng);
                    const double b = which == 0 ? 0.0 : normal(rng);
                    auto loss = [&](const std::vector<double>& r, double v) {
                        double ld;
                        double out = inverse ? inverseOf(spline, r, v, &ld) : forwardOf(spline, r, v, &ld);
                        return a * out + b * ld;
                    };
                    std::vector<double> gradRaw(P, 0.0);
                    double gradIn = inverse ? spline.inverseGradient(knots, in, a, b, gradRaw.data())
                                            : spline.forwardGradient(knots, in, a, b, gradRaw.data());
                    double scale = std::abs(gradIn);
                    for (double g : gradRaw)
                        scale = std::max(scale, std::abs(g));
                    const std::string tag = std::string(inverse ? "inverse" : "forward") + " K=" +
                                            std::to_string(spline.getNumBins()) + " draw=" + std::to_string(draw) +
                                            " in=" + std::to_string(in);
                    Derivative fdIn = robustDerivative([&](double v) { return loss(raw, v); }, in);
                    expectGradientClose(gradIn, fdIn, scale, tag + " d/dinput");
                    for (int p = 0; p < P; p++) {
                        Derivative fd = robustDerivative(
                            [&](double v) {
                                std::vector<double> r = raw;
                                r[p] = v;
                                return loss(r, in);
                            },
                            raw[p]);
                        expectGradientClose(gradRaw[p], fd, scale, tag + " d/draw[" + std::to_string(p) + "]");
                    }
                    checked++;
                }
            }
        }
    }
    EXPECT_GT(checked, 2500);
}

TEST(RQSpline, KnotBackwardMatchesFiniteDifferences) {
    std::mt19937 rng(6);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (const RQSpline& spline : testSplines()) {
        const int K = spline.getNumBins(), P = spline.getNumParameters();
        for (int draw = 0; draw < 20; draw++) {
            std::vector<double> raw = randomRaw(spline, rng, draw % 2);
            std::vector<double> gx(K + 1), gy(K + 1), gd(K + 1);
            for (int j = 0; j <= K; j++) {
                gx[j] = normal(rng);
                gy[j] = normal(rng);
                gd[j] = normal(rng);
            }
            auto loss = [&](const std::vector<double>& r) {
                RQSplineKnots k = knotsOf(spline, r);
                double l = 0;
                for (int j = 0; j <= K; j++)
                    l += gx[j] * k.x[j] + gy[j] * k.y[j] + gd[j] * k.derivatives[j];
                return l;
            };
            std::vector<double> gradRaw(P, 0.5); // accumulates onto what is there
            spline.backwardKnots(knotsOf(spline, raw), gx.data(), gy.data(), gd.data(), gradRaw.data());
            for (int p = 0; p < P; p++) {
                double fd = centralDifference(
                    [&](double v) {
                        std::vector<double> r = raw;
                        r[p] = v;
                        return loss(r);
                    },
                    raw[p], 1e-5);
                EXPECT_NEAR(gradRaw[p] - 0.5, fd, 1e-6 * std::max(1.0, std::abs(fd))) << "p=" << p;
            }
        }
    }
}

TEST(RQSpline, BatchedMatchesScalarAndAccumulates) {
    std::mt19937 rng(7);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (const RQSpline& spline : testSplines()) {
        // Several chunks of the batched engine and a partial one. Moderate draws only: the
        // batched path evaluates its exps with SIMD packet math, which can differ from libm in
        // the last bit, and extreme draws (f' ~ 1e-6) would amplify that in the inverse.
        const int P = spline.getNumParameters(), n = 150;
        std::vector<double> raw, x(n), gy(n), gl(n);
        for (int i = 0; i < n; i++) {
            std::vector<double> r = randomRaw(spline, rng, 0);
            raw.insert(raw.end(), r.begin(), r.end());
            x[i] = 1.2 * spline.getBound() * (2.0 * i / (n - 1) - 1.0);
            gy[i] = normal(rng);
            gl[i] = normal(rng);
        }
        std::vector<double> y(n), ld(n), xBack(n), ldBack(n);
        spline.forwardBatch(n, raw.data(), x.data(), y.data(), ld.data());
        spline.inverseBatch(n, raw.data(), y.data(), xBack.data(), ldBack.data());
        std::vector<double> gradIn(n), gradRaw(n * P, 1.0), gradInInv(n), gradRawInv(n * P, -1.0);
        spline.forwardGradientBatch(n, raw.data(), x.data(), gy.data(), gl.data(), gradIn.data(), gradRaw.data());
        spline.inverseGradientBatch(n, raw.data(), y.data(), gy.data(), gl.data(), gradInInv.data(),
                                    gradRawInv.data());
        for (int i = 0; i < n; i++) {
            std::vector<double> r(raw.begin() + i * P, raw.begin() + (i + 1) * P);
            RQSplineKnots knots = knotsOf(spline, r);
            // Knots that differ in the last bit move the inverse by up to cond = |dx/dy| times
            // that, and its gradients (which carry 1/f' factors) by up to cond^2. Mistakes in
            // the batching (indexing, accumulation, missing terms) are O(1).
            double l;
            const double yExpected = spline.forward(knots, x[i], l);
            const double cond = std::exp(std::abs(l));
            auto close = [](double a, double b, double amplification) {
                return std::abs(a - b) <= 1e-13 * (1 + amplification) * std::max(1.0, std::abs(b));
            };
            EXPECT_TRUE(close(y[i], yExpected, cond)) << y[i] << " " << yExpected;
            EXPECT_TRUE(close(ld[i], l, cond)) << ld[i] << " " << l;
            const double xExpected = spline.inverse(knots, y[i], l);
            EXPECT_TRUE(close(xBack[i], xExpected, cond)) << xBack[i] << " " << xExpected;
            EXPECT_TRUE(close(ldBack[i], l, cond)) << ldBack[i] << " " << l;
            std::vector<double> g(P, 0.0), gInv(P, 0.0);
            const double gradExpected = spline.forwardGradient(knots, x[i], gy[i], gl[i], g.data());
            EXPECT_TRUE(close(gradIn[i], gradExpected, cond)) << gradIn[i] << " " << gradExpected;
            const double gradInvExpected = spline.inverseGradient(knots, y[i], gy[i], gl[i], gInv.data());
            EXPECT_TRUE(close(gradInInv[i], gradInvExpected, cond * cond)) << gradInInv[i] << " " << gradInvExpected;
            for (int p = 0; p < P; p++) {
                EXPECT_TRUE(close(gradRaw[i * P + p], 1.0 + g[p], cond)) << "p=" << p;
                EXPECT_TRUE(close(gradRawInv[i * P + p], -1.0 + gInv[p], cond * cond)) << "p=" << p;
            }
        }
        // Null upstream gradients read as zeros.
        std::vector<double> gradOnlyY(n), rawOnlyY(n * P, 0.0), gradNone(n), rawNone(n * P, 0.0);
        spline.forwardGradientBatch(n, raw.data(), x.data(), gy.data(), nullptr, gradOnlyY.data(), rawOnlyY.data());
        spline.forwardGradientBatch(n, raw.data(), x.data(), nullptr, nullptr, gradNone.data(), rawNone.data());
        for (int i = 0; i < n; i++) {
            std::vector<double> r(raw.begin() + i * P, raw.begin() + (i + 1) * P);
            std::vector<double> g(P, 0.0);
            double expected = spline.forwardGradient(knotsOf(spline, r), x[i], gy[i], 0.0, g.data());
            EXPECT_NEAR(gradOnlyY[i], expected, 1e-12 * std::max(1.0, std::abs(expected)));
            for (int p = 0; p < P; p++)
                EXPECT_NEAR(rawOnlyY[i * P + p], g[p], 1e-12 * std::max(1.0, std::abs(g[p])));
            EXPECT_EQ(gradNone[i], 0.0);
        }
        for (double v : rawNone)
            EXPECT_EQ(v, 0.0);
        std::vector<double> gradInvOnlyLd(n), rawInvOnlyLd(n * P, 0.0), gradInvNone(n), rawInvNone(n * P, 0.0);
        spline.inverseGradientBatch(n, raw.data(), x.data(), nullptr, gl.data(), gradInvOnlyLd.data(),
                                    rawInvOnlyLd.data());
        spline.inverseGradientBatch(n, raw.data(), x.data(), nullptr, nullptr, gradInvNone.data(), rawInvNone.data());
        for (int i = 0; i < n; i++) {
            std::vector<double> r(raw.begin() + i * P, raw.begin() + (i + 1) * P);
            std::vector<double> g(P, 0.0);
            RQSplineKnots knots = knotsOf(spline, r);
            double ldInv;
            spline.inverse(knots, x[i], ldInv);
            const double cond2 = std::exp(2 * std::abs(ldInv));
            double expected = spline.inverseGradient(knots, x[i], 0.0, gl[i], g.data());
            EXPECT_NEAR(gradInvOnlyLd[i], expected, 1e-13 * (1 + cond2) * std::max(1.0, std::abs(expected)));
            for (int p = 0; p < P; p++)
                EXPECT_NEAR(rawInvOnlyLd[i * P + p], g[p], 1e-13 * (1 + cond2) * std::max(1.0, std::abs(g[p])));
            EXPECT_EQ(gradInvNone[i], 0.0);
        }
        for (double v : rawInvNone)
            EXPECT_EQ(v, 0.0);
    }
}

// Found writing tests/fuzz (reproduced with fuzz_flow_config, UBSan): "num_bins": 1000000000 in a flow config
// (or a model file) overflowed 3 * numBins, an int (undefined behaviour, caught by UBSan), before any check ran.
TEST(RQSpline, HugeNumBinsIsAnErrorNotAnOverflow) {
    EXPECT_NE(errorMessage([] { RQSpline::numParameters(RQSplineType::Monotonic, 1000000000); })
                  .find("numBins must be <= 1048576, got 1000000000"),
              std::string::npos);
    EXPECT_THROW(cgflow::flows::Flow::fromConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 4},
                                                  {"num_bins", 1000000000}}),
                 cgflow::Error);
    EXPECT_EQ(RQSpline::numParameters(RQSplineType::Circular, RQSpline::MaxNumBins), 3 * RQSpline::MaxNumBins);
}
