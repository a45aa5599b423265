#ifndef CGFLOW_FLOWS_RQSPLINE_H_
#define CGFLOW_FLOWS_RQSPLINE_H_

#include <algorithm>
#include <cmath>
#include <vector>

namespace cgflow::flows {

/**
 * Elementwise rational-quadratic (RQ) splines: the monotonic spline with linear tails of Durkan
 * et al. 2019 ("Neural Spline Flows") and the circular spline of Rezende et al. 2020
 * ("Normalizing flows on tori and spheres"). One scalar is transformed at a time with its own
 * raw (unconstrained) parameters, exactly as a coupling layer uses them: the conditioner emits
 * P raw values per transformed element.
 *
 * Raw parameter layout for one scalar, K = number of bins, P = getNumParameters():
 *
 *   raw[0     .. K)     unnormalized bin widths   (softmax -> widths)
 *   raw[K     .. 2K)    unnormalized bin heights  (softmax -> heights)
 *   raw[2K    .. P)     unnormalized knot derivatives (softplus -> derivatives)
 *       Monotonic: P = 3K - 1. raw[2K + j - 1] is knot j for the K - 1 interior knots
 *                  j = 1 .. K-1; the boundary derivatives are fixed to 1 so the spline joins
 *                  the identity tails with a continuous derivative.
 *       Circular:  P = 3K. raw[2K + j] is knot j for j = 0 .. K-1; knot K is the same point of
 *                  the circle as knot 0 and shares its derivative, which makes the map C^1 on
 *                  the circle.
 *
 * Derived knots (cumulative positions x_0..x_K, y_0..y_K and derivatives d_0..d_K):
 *   w_k = 2B (minBinWidth  + (1 - K minBinWidth)  softmax(raw widths)_k),  x_0 = -B, x_K = B
 *   h_k = 2B (minBinHeight + (1 - K minBinHeight) softmax(raw heights)_k), y_0 = -B, y_K = B
 *   d_j = minDerivative + softplus(raw)
 * so every bin is at least 2B minBinWidth wide and 2B minBinHeight high, and every derivative
 * is at least minDerivative, whatever the network emits.
 *
 * Domains. Monotonic: the spline acts on [-B, B] (both ends included) and is the identity with
 * log|det| = 0 outside; NaN propagates to both outputs. Circular: B = pi. Inputs in the closed
 * interval [-pi, pi] are used as they are, so f(-pi) = -pi and f(pi) = pi (the same point of the
 * circle, consistently); inputs outside are first wrapped into [-pi, pi) (wrapAngle), so outputs
 * are always in [-pi, pi]. Infinite or NaN circular inputs give NaN.
 *
 * Usage in a hot loop: keep one RQSplineKnots per thread; computeKnots() only allocates when the
 * number of bins grows, and the scalar functions below never allocate. They are defined inline
 * in this header so that a coupling layer's loop can inline them.
 */
enum class RQSplineType { Monotonic, Circular };

/** The spline of one scalar derived from its raw parameters, plus what the backward pass needs. */
struct RQSplineKnots {
    std::vector<double> x;               // K+1 knot positions, x[0] = -B, x[K] = B
    std::vector<double> y;               // K+1 knot values,    y[0] = -B, y[K] = B
    std::vector<double> derivatives;     // K+1 derivatives dy/dx at the knots
    std::vector<double> widthSoftmax;    // K softmax outputs of the raw widths
    std::vector<double> heightSoftmax;   // K softmax outputs of the raw heights
    std::vector<double> derivativeSlope; // one per raw derivative value: softplus'(raw) = sigmoid(raw)
};

class RQSpline {
public:
    static constexpr double DefaultMinBinWidth = 1e-3;
    static constexpr double DefaultMinBinHeight = 1e-3;
    static constexpr double DefaultMinDerivative = 1e-3;
    /** The most bins a spline may have (so that its 3K raw values never overflow an int). */
    static constexpr int MaxNumBins = 1 << 20;

    /**
     * 1 <= numBins <= MaxNumBins; bound B > 0 and finite; each minimum > 0, finite, and numBins * minBinWidth < 1,
     * numBins * minBinHeight < 1 (otherwise no room is left for the softmax). Anything else: Error
     * naming the argument.
     */
    static RQSpline monotonic(int numBins, double bound, double minBinWidth = DefaultMinBinWidth,
                              double minBinHeight = DefaultMinBinHeight,
                              double minDerivative = DefaultMinDerivative);
    /** Circular spline on [-pi, pi]; same argument rules as monotonic(). */
    static RQSpline circular(int numBins, double minBinWidth = DefaultMinBinWidth,
                             double minBinHeight = DefaultMinBinHeight,
                             double minDerivative = DefaultMinDerivative);

    /** Raw values per scalar: 3K - 1 (monotonic) or 3K (circular). numBins outside [1, MaxNumBins] -> Error. */
    static int numParameters(RQSplineType type, int numBins);

    RQSplineType getType() const { return type; }
    int getNumBins() const { return numBins; }
    double getBound() const { return bound; }
    double getMinBinWidth() const { return minBinWidth; }
    double getMinBinHeight() const { return minBinHeight; }
    double getMinDerivative() const { return minDerivative; }
    int getNumParameters() const { return numParameters(type, numBins); }
    int getWidthOffset() const { return 0; }
    int getHeightOffset() const { return numBins; }
    int getDerivativeOffset() const { return 2 * numBins; }
    /** Raw derivative values per scalar: K - 1 (monotonic) or K (circular). */
    int getNumRawDerivatives() const { return type == RQSplineType::Monotonic ? numBins - 1 : numBins; }

    /** Map any finite angle into [-pi, pi); angles already in [-pi, pi] are returned unchanged. */
    static double wrapAngle(double x);

    /** Derive the knots from raw[0 .. getNumParameters()). */
    void computeKnots(const double* raw, RQSplineKnots& knots) const;

    /**
     * The backward pass of the parameterization: given dL/dx_j, dL/dy_j, dL/dd_j for the K+1 knots
     * (arrays of K+1), ACCUMULATE (+=) dL/draw into gradRaw[0 .. getNumParameters()). Gradients on
     * quantities that the parameterization holds fixed (x_0, x_K, y_0, y_K, and the monotonic
     * boundary derivatives) are ignored; for the circular spline d_0 and d_K are one parameter.
     */
    void backwardKnots(const RQSplineKnots& knots, const double* gradKnotX, const double* gradKnotY,
                       const double* gradKnotDerivatives, double* gradRaw) const;

    /** y = f(x); logDet = log|dy/dx|. */
    double forward(const RQSplineKnots& knots, double x, double& logDet) const;
    /** x = f^-1(y) in closed form; logDet = log|dx/dy| = -log|dy/dx| at that x. */
    double inverse(const RQSplineKnots& knots, double y, double& logDet) const;

    /**
     * Vector-Jacobian product of forward(): given gradY = dL/dy and gradLogDet = dL/d(log|dy/dx|)
     * at input x, returns dL/dx and ACCUMULATES dL/draw into gradRaw[0 .. getNumParameters()).
     */
    double forwardGradient(const RQSplineKnots& knots, double x, double gradY, double gradLogDet,
                           double* gradRaw) const;
    /**
     * Vector-Jacobian product of inverse(): given gradX = dL/dx (x the inverse's output) and
     * gradLogDet = dL/d(log|dx/dy|) at input y, returns dL/dy and ACCUMULATES dL/draw into gradRaw.
     */
    double inverseGradient(const RQSplineKnots& knots, double y, double gradX, double gradLogDet,
                           double* gradRaw) const;

    /**
     * Batched versions: n scalars, raw holds n * getNumParameters() values (those of scalar i at
     * raw + i * getNumParameters()). logDet receives one value per scalar (not summed). In the
     * gradient versions gradY/gradX/gradLogDet may be null (read as zeros); the input gradient
     * is WRITTEN (n values) and gradRaw is ACCUMULATED (n * getNumParameters() values). n < 0 or a
     * required null pointer -> Error. An RQSpline is immutable, so threads may call these
     * concurrently on disjoint ranges of the arrays.
     *
     * These evaluate the exps and logs of the parameterization with SIMD packet math over chunks
     * of scalars (about twice as fast as a loop of computeKnots() + forward()); results can
     * differ from the scalar path in the last bits, so evaluate a forward and its matching
     * inverse through the same path when bitwise round trips matter.
     */
    void forwardBatch(int n, const double* raw, const double* x, double* y, double* logDet) const;
    void inverseBatch(int n, const double* raw, const double* y, double* x, double* logDet) const;
    /**
     * forwardBatch()/inverseBatch() over `groups` groups of `groupSize` consecutive scalars that sit
     * at strides in larger arrays, e.g. the transformed values of every sample of a coupling layer
     * in one call: scalar t of group g has raw parameters at raw + g * rawStride + t * P and its
     * input, output and log-det at index g * ioStride + t. Negative sizes or overlapping strides
     * -> Error.
     */
    void forwardBatchStrided(int groups, int groupSize, const double* raw, int rawStride, const double* x,
                             int ioStride, double* y, double* logDet) const;
    void inverseBatchStrided(int groups, int groupSize, const double* raw, int rawStride, const double* y,
                             int ioStride, double* x, double* logDet) const;
    /**
     * The gradient functions in the strided layout of forwardBatchStrided(): x/y, the upstream
     * gradients and the input gradient at g * ioStride + t, the raw gradient (ACCUMULATED) at
     * gradRaw + g * rawStride + t * P.
     */
    void forwardGradientBatchStrided(int groups, int groupSize, const double* raw, int rawStride, const double* x,
                                     int ioStride, const double* gradY, const double* gradLogDet, double* gradX,
                                     double* gradRaw) const;
    void inverseGradientBatchStrided(int groups, int groupSize, const double* raw, int rawStride, const double* y,
                                     int ioStride, const double* gradX, const double* gradLogDet, double* gradY,
                                     double* gradRaw) const;
    void forwardGradientBatch(int n, const double* raw, const double* x, const double* gradY,
                              const double* gradLogDet, double* gradX, double* gradRaw) const;
    void inverseGradientBatch(int n, const double* raw, const double* y, const double* gradX,
                              const double* gradLogDet, double* gradY, double* gradRaw) const;

private:
    RQSpline(RQSplineType type, int numBins, double bound, double minBinWidth, double minBinHeight,
             double minDerivative);

    void resizeKnots(RQSplineKnots& knots) const;
    // The part of computeKnots() after the transcendentals, shared with the batched functions,
    // which compute those vectorized over many scalars. On entry widthSoftmax/heightSoftmax hold
    // exp(raw - max) (unnormalized), derivativeSlope[i] holds sigmoid(raw derivative i) and the
    // derivative of that raw value's knot holds log(1 + exp(-|raw derivative i|)).
    void finishKnots(const double* raw, RQSplineKnots& knots) const;
    // Runs f(i, knots) for i = 0..n-1 with the knots of scalar i, whose raw parameters are at
    // rawOf(i) (the engine of the batched gradient functions).
    template <class RawOf, class F>
    void forEachScalar(int n, const RawOf& rawOf, F&& f) const;
    // The engine of forwardBatch()/inverseBatch(): the same formulas evaluated across up to 64
    // scalars at a time in structure-of-arrays form, so that every step (softmax, cumulative
    // knots, bin search, the rational-quadratic segment and its inverse) is one SIMD pass.
    /** Both strided gradient batches: per scalar, forwardGradient or inverseGradient at `in`. */
    void gradientBatch(bool inverseDirection, int groups, int groupSize, const double* raw, int rawStride,
                       const double* in, int ioStride, const double* gradOut, const double* gradLogDet,
                       double* gradIn, double* gradRaw, const char* inName, const char* gradInName) const;
    void transformBatch(bool inverseDirection, int groups, int groupSize, const double* raw, int rawStride,
                        const double* in, int ioStride, double* out, double* logDet) const;

    // Where an input of the spline's own domain goes: false for monotonic tails (identity), and
    // for circular inputs it wraps in place.
    bool toDomain(double& v) const;
    // The bin k with knots[k] <= v < knots[k+1] (k = K-1 for v = knots[K]). Counting instead of
    // searching keeps it branch-free, and the O(K) knot computation dominates anyway.
    int findBin(const double* knots, double v) const;
    // The gradient of gy * y + gl * logDet at local coordinate xi of bin k, pushed through the
    // parameterization into gradRaw (accumulated); *gradXi receives its derivative w.r.t. xi.
    void accumulateBinGradient(const RQSplineKnots& knots, int k, double xi, double gradYLocal,
                               double gradLogDetLocal, double* gradRaw, double* gradXi) const;
    // forward() and inverse() with the derivative f'(x) itself instead of its log (1 outside the
    // spline's domain), so that the batched functions can take all the logs in one vectorized pass.
    double forwardWithDerivative(const RQSplineKnots& knots, double x, double& derivative) const;
    double inverseWithDerivative(const RQSplineKnots& knots, double y, double& forwardDerivative) const;
    void softmaxBackward(const double* softmax, int bin, double gradLeft, double gradRight, double scale,
                         double* gradRaw) const;

    RQSplineType type;
    int numBins;
    double bound;
    double minBinWidth;
    double minBinHeight;
    double minDerivative;
};

// ------------------------------------------------------------------------------------------
// Inline definitions (the hot inner loop of coupling layers).
// ------------------------------------------------------------------------------------------

namespace detail {

constexpr double Pi = 3.14159265358979323846;

// Cumulative knots from softmax weights. The ends are set exactly rather than summed so that
// the spline meets the tails (or closes the circle) without a rounding gap.
inline void cumulativeKnots(const double* softmax, int n, double minSize, double bound, double* knots) {
    const double scale = 1.0 - n * minSize;
    double cum = 0;
    knots[0] = -bound;
    for (int j = 1; j < n; j++) {
        cum += minSize + scale * softmax[j - 1];
        knots[j] = -bound + 2 * bound * cum;
    }
    knots[n] = bound;
}

// The rational-quadratic segment of one bin in its local coordinate xi in [0, 1] (Durkan et al.
// eq. 4 and the derivative below it): numerator, denominator and the derivative factor.
struct RQSegment {
    double numerator;   // N = h (s xi^2 + d0 xi(1-xi)), so y = y_k + N / D
    double denominator; // D = s + (d0 + d1 - 2s) xi(1-xi)
    double slopeFactor; // M = d1 xi^2 + 2 s xi(1-xi) + d0 (1-xi)^2, so dy/dx = s^2 M / D^2
};

inline RQSegment rqSegment(double xi, double h, double s, double d0, double d1) {
    const double t = xi * (1 - xi);
    const double u = 1 - xi;
    return {h * (s * xi * xi + d0 * t), s + (d0 + d1 - 2 * s) * t, d1 * xi * xi + 2 * s * t + d0 * u * u};
}

// The xi in [0, 1] with N(xi) / D(xi) = eta for 0 <= eta <= h: N - eta D = 0 rearranged to
// a xi^2 + b xi + c = 0 (Durkan et al. eq. 6-8), solved in closed form.
inline double rqSolve(double eta, double h, double s, double d0, double d1) {
    const double q = d0 + d1 - 2 * s;
    const double a = h * (s - d0) + eta * q;
    const double b = h * d0 - eta * q;
    const double c = -s * eta;
    const double root = std::sqrt(std::max(b * b - 4 * a * c, 0.0));
    // The wanted root written in whichever form adds terms of equal sign: for b >= 0 the papers'
    // 2c / (-b - sqrt(disc)); for b < 0 the textbook form, whose a = h s - b is then > 0.
    const double xi = b >= 0 ? 2 * c / (-b - root) : (-b + root) / (2 * a);
    return std::min(std::max(xi, 0.0), 1.0); // rounding only; NaN passes through
}

// dy/dx = s^2 M / D^2, taken as one product: its log is then one log instead of three, as
// accurate as the sum of logs, and the product cannot overflow for derivatives the
// parameterization can realistically produce.
inline double rqDerivative(double s, const RQSegment& seg) {
    return s * s * seg.slopeFactor / (seg.denominator * seg.denominator);
}

} // namespace detail

inline double RQSpline::wrapAngle(double x) {
    if (x >= -detail::Pi && x <= detail::Pi)
        return x;
    const double twoPi = 2 * detail::Pi;
    double r = x - twoPi * std::floor((x + detail::Pi) / twoPi);
    // floor() of a rounded quotient can be off by one at the seam.
    if (r >= detail::Pi)
        r -= twoPi;
    else if (r < -detail::Pi)
        r += twoPi;
    return r;
}

inline void RQSpline::resizeKnots(RQSplineKnots& knots) const {
    const int K = numBins;
    knots.x.resize(K + 1);
    knots.y.resize(K + 1);
    knots.derivatives.resize(K + 1);
    knots.widthSoftmax.resize(K);
    knots.heightSoftmax.resize(K);
    knots.derivativeSlope.resize(getNumRawDerivatives());
}

inline void RQSpline::computeKnots(const double* raw, RQSplineKnots& knots) const {
    const int K = numBins;
    resizeKnots(knots);
    // Softmax shifted by the maximum so that raw values of any size give finite weights.
    for (int part = 0; part < 2; part++) {
        const double* r = raw + part * K;
        double* e = part == 0 ? knots.widthSoftmax.data() : knots.heightSoftmax.data();
        double m = r[0];
        for (int i = 1; i < K; i++)
            m = std::max(m, r[i]);
        for (int i = 0; i < K; i++)
            e[i] = std::exp(r[i] - m);
    }
    const int numDeriv = getNumRawDerivatives();
    const int firstKnot = type == RQSplineType::Monotonic ? 1 : 0;
    for (int i = 0; i < numDeriv; i++) {
        const double r = raw[2 * K + i];
        const double e = std::exp(-std::abs(r));
        const double inv = 1.0 / (1.0 + e);
        knots.derivativeSlope[i] = r >= 0 ? inv : e * inv;
        knots.derivatives[firstKnot + i] = std::log(1.0 + e);
    }
    finishKnots(raw, knots);
}

inline void RQSpline::finishKnots(const double* raw, RQSplineKnots& knots) const {
    const int K = numBins;
    for (double* e : {knots.widthSoftmax.data(), knots.heightSoftmax.data()}) {
        double sum = 0;
        for (int i = 0; i < K; i++)
            sum += e[i];
        const double inv = 1.0 / sum;
        for (int i = 0; i < K; i++)
            e[i] *= inv;
    }
    detail::cumulativeKnots(knots.widthSoftmax.data(), K, minBinWidth, bound, knots.x.data());
    detail::cumulativeKnots(knots.heightSoftmax.data(), K, minBinHeight, bound, knots.y.data());

    // softplus(r) = max(r, 0) + log(1 + e) with e = exp(-|r|) <= 1 (and sigmoid(r) = 1/(1 + e)
    // or e/(1 + e)) neither overflows nor cancels for any r. log(1 + e) rather than log1p(e)
    // lets the batched path use a vectorized log; it costs at most ~1e-16 absolute, far below
    // minDerivative.
    const int numDeriv = getNumRawDerivatives();
    const int firstKnot = type == RQSplineType::Monotonic ? 1 : 0; // raw derivative i is knot i + firstKnot
    for (int i = 0; i < numDeriv; i++)
        knots.derivatives[firstKnot + i] += minDerivative + std::max(raw[2 * K + i], 0.0);
    if (type == RQSplineType::Monotonic) {
        knots.derivatives[0] = 1.0;
        knots.derivatives[K] = 1.0;
    } else {
        knots.derivatives[K] = knots.derivatives[0];
    }
}

inline bool RQSpline::toDomain(double& v) const {
    if (type == RQSplineType::Monotonic)
        return !(v < -bound || v > bound); // NaN stays in, so it reaches both outputs
    v = wrapAngle(v);
    return true;
}

inline int RQSpline::findBin(const double* knots, double v) const {
    int k = 0;
    for (int j = 1; j < numBins; j++)
        k += v >= knots[j];
    return k;
}

inline double RQSpline::forwardWithDerivative(const RQSplineKnots& knots, double x, double& derivative) const {
    if (!toDomain(x)) {
        derivative = 1;
        return x;
    }
    const int k = findBin(knots.x.data(), x);
    const double xk = knots.x[k], w = knots.x[k + 1] - xk;
    const double yk = knots.y[k], h = knots.y[k + 1] - yk;
    const double s = h / w;
    const double xi = (x - xk) / w;
    const detail::RQSegment seg = detail::rqSegment(xi, h, s, knots.derivatives[k], knots.derivatives[k + 1]);
    derivative = detail::rqDerivative(s, seg);
    // Rounding can put the result an ulp past the bin's end; keeping it inside preserves the
    // ordering across bins and keeps circular outputs in [-pi, pi], so that f(pi) is not read
    // back as -pi by the inverse. (NaN passes through min/max unchanged.)
    return std::min(std::max(yk + seg.numerator / seg.denominator, yk), knots.y[k + 1]);
}

inline double RQSpline::inverseWithDerivative(const RQSplineKnots& knots, double y, double& forwardDerivative) const {
    if (!toDomain(y)) {
        forwardDerivative = 1;
        return y;
    }
    const int k = findBin(knots.y.data(), y);
    const double xk = knots.x[k], w = knots.x[k + 1] - xk;
    const double yk = knots.y[k], h = knots.y[k + 1] - yk;
    const double s = h / w;
    const double d0 = knots.derivatives[k], d1 = knots.derivatives[k + 1];
    // The segment read from its right end, 1 - xi against y_{k+1} - y, is the same kind of
    // segment with d0 and d1 swapped. Solving from the nearer end keeps the offset small, so the
    // inverse stays accurate next to both knots and returns the knot exactly at y = y_{k+1}.
    const double eta = y - yk;
    if (eta <= 0.5 * h) {
        const double xi = detail::rqSolve(eta, h, s, d0, d1);
        forwardDerivative = detail::rqDerivative(s, detail::rqSegment(xi, h, s, d0, d1));
        return xk + xi * w;
    }
    const double xiMirror = detail::rqSolve(knots.y[k + 1] - y, h, s, d1, d0);
    forwardDerivative = detail::rqDerivative(s, detail::rqSegment(xiMirror, h, s, d1, d0));
    return std::max(knots.x[k + 1] - xiMirror * w, xk);
}

inline double RQSpline::forward(const RQSplineKnots& knots, double x, double& logDet) const {
    double derivative;
    const double y = forwardWithDerivative(knots, x, derivative);
    logDet = std::log(derivative);
    return y;
}

inline double RQSpline::inverse(const RQSplineKnots& knots, double y, double& logDet) const {
    double forwardDerivative;
    const double x = inverseWithDerivative(knots, y, forwardDerivative);
    logDet = -std::log(forwardDerivative);
    return x;
}

inline void RQSpline::softmaxBackward(const double* softmax, int bin, double gradLeft, double gradRight,
                                      double scale, double* gradRaw) const {
    // Knot j (1 <= j <= K-1) is the sum of the first j widths, so a width i gets the gradient of
    // every inner knot to its right: here only knots bin and bin + 1 carry one. The outer knots
    // are constants (their gradients are dropped by the caller).
    const double before = scale * (gradLeft + gradRight); // widths i < bin
    const double at = scale * gradRight;                  // width  i = bin
    double dot = 0;
    for (int i = 0; i < bin; i++)
        dot += softmax[i];
    dot = dot * before + softmax[bin] * at;
    for (int i = 0; i < bin; i++)
        gradRaw[i] += softmax[i] * (before - dot);
    gradRaw[bin] += softmax[bin] * (at - dot);
    for (int i = bin + 1; i < numBins; i++)
        gradRaw[i] -= softmax[i] * dot;
}

inline void RQSpline::accumulateBinGradient(const RQSplineKnots& knots, int k, double xi, double gy,
                                            double gl, double* gradRaw, double* gradXi) const {
    const int K = numBins;
    const double xk = knots.x[k], w = knots.x[k + 1] - xk;
    const double yk = knots.y[k], h = knots.y[k + 1] - yk;
    const double s = h / w;
    const double d0 = knots.derivatives[k], d1 = knots.derivatives[k + 1];
    const double t = xi * (1 - xi), dt = 1 - 2 * xi, u = 1 - xi;
    const double q = d0 + d1 - 2 * s;
    const double N = h * (s * xi * xi + d0 * t);
    const double D = s + q * t;
    const double M = d1 * xi * xi + 2 * s * t + d0 * u * u;
    const double r = N / D;
    const double invD = 1 / D, invM = 1 / M;

    // Partials w.r.t. the bin-local variables (xi, s, h, d0, d1), s and h taken as independent;
    // y - y_k = N/D and logDet = 2 log s + log M - 2 log D.
    const double dNxi = h * (2 * s * xi + d0 * dt), dDxi = q * dt, dMxi = 2 * (d1 * xi + s * dt - d0 * u);
    const double dNs = h * xi * xi, dDs = 1 - 2 * t, dMs = 2 * t;
    const double dNh = s * xi * xi + d0 * t;
    const double dNd0 = h * t, dDd0 = t, dMd0 = u * u;
    const double dDd1 = t, dMd1 = xi * xi;

    auto combine = [&](double dN, double dD, double dM) {
        return gy * (dN - r * dD) * invD + gl * (dM * invM - 2 * dD * invD);
    };
    const double gXi = combine(dNxi, dDxi, dMxi);
    const double gS = combine(dNs, dDs, dMs) + gl * 2 / s;
    const double gH = gy * dNh * invD;
    const double gD0 = combine(dNd0, dDd0, dMd0);
    const double gD1 = combine(0, dDd1, dMd1);
    *gradXi = gXi;

    // To knot quantities: xi = (x - x_k)/w, s = h/w, w = x_{k+1} - x_k, h = y_{k+1} - y_k, and y
    // itself moves one-for-one with y_k.
    const double gXk = (gXi * (xi - 1) + gS * s) / w;
    const double gXk1 = -(gXi * xi + gS * s) / w;
    const double gYk1 = gH + gS / w;
    const double gYk = gy - gYk1;

    // Knots 0 and K are fixed at -B and B: only inner knots pass gradients to the softmax.
    softmaxBackward(knots.widthSoftmax.data(), k, k >= 1 ? gXk : 0.0, k + 1 <= K - 1 ? gXk1 : 0.0,
                    2 * bound * (1 - K * minBinWidth), gradRaw);
    softmaxBackward(knots.heightSoftmax.data(), k, k >= 1 ? gYk : 0.0, k + 1 <= K - 1 ? gYk1 : 0.0,
                    2 * bound * (1 - K * minBinHeight), gradRaw + K);

    double* gradDeriv = gradRaw + 2 * K;
    const double* slope = knots.derivativeSlope.data();
    if (type == RQSplineType::Monotonic) {
        if (k >= 1)
            gradDeriv[k - 1] += gD0 * slope[k - 1];
        if (k + 1 <= K - 1)
            gradDeriv[k] += gD1 * slope[k];
    } else {
        const int k1 = k + 1 == K ? 0 : k + 1; // knot K is knot 0 on the circle
        gradDeriv[k] += gD0 * slope[k];
        gradDeriv[k1] += gD1 * slope[k1];
    }
}

inline double RQSpline::forwardGradient(const RQSplineKnots& knots, double x, double gradY, double gradLogDet,
                                        double* gradRaw) const {
    if (!toDomain(x))
        return gradY; // identity tail: no parameter dependence
    const int k = findBin(knots.x.data(), x);
    const double xk = knots.x[k], w = knots.x[k + 1] - xk;
    const double xi = (x - xk) / w;
    double gradXi;
    accumulateBinGradient(knots, k, xi, gradY, gradLogDet, gradRaw, &gradXi);
    return gradXi / w; // wrapping on the circle has unit derivative
}

inline double RQSpline::inverseGradient(const RQSplineKnots& knots, double y, double gradX, double gradLogDet,
                                        double* gradRaw) const {
    if (!toDomain(y))
        return gradX;
    double unusedLogDet;
    const double x = inverse(knots, y, unusedLogDet);
    const int k = findBin(knots.y.data(), y); // the bin the inverse used; x lies in it
    const double xk = knots.x[k], w = knots.x[k + 1] - xk;
    const double yk = knots.y[k], h = knots.y[k + 1] - yk;
    const double s = h / w;
    const double d0 = knots.derivatives[k], d1 = knots.derivatives[k + 1];
    const double xi = (x - xk) / w;
    const double t = xi * (1 - xi), dt = 1 - 2 * xi, u = 1 - xi;
    const double D = s + (d0 + d1 - 2 * s) * t;
    const double M = d1 * xi * xi + 2 * s * t + d0 * u * u;
    // Implicit differentiation of x = f^-1(y; theta) with logDet_inv = -l(x; theta), l = log f':
    //   dx/dy = 1/f',  dx/dtheta = -(df/dtheta)/f'.
    // With v = (gradX - gradLogDet dl/dx) / f' this gives dL/dy = v and
    //   dL/dtheta = -v df/dtheta - gradLogDet dl/dtheta,
    // i.e. the forward VJP at fixed x with upstream (-v, -gradLogDet).
    const double fPrime = s * s * M / (D * D);
    const double dlDx = ((2 * (d1 * xi + s * dt - d0 * u)) / M - 2 * (d0 + d1 - 2 * s) * dt / D) / w;
    const double v = (gradX - gradLogDet * dlDx) / fPrime;
    double unusedGradXi;
    accumulateBinGradient(knots, k, xi, -v, -gradLogDet, gradRaw, &unusedGradXi);
    return v;
}

} // namespace cgflow::flows

#endif
