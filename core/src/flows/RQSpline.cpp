#include "cgflow/flows/RQSpline.h"

#include "cgflow/Error.h"

#include <Eigen/Core>

#include <algorithm>
#include <sstream>
#include <string>

namespace cgflow::flows {

namespace {

void checkNumBins(int numBins) {
    if (numBins < 1)
        throw Error("RQSpline: numBins must be >= 1, got " + std::to_string(numBins));
}

// A minimum must leave room for the softmax: K * min < 1, else every bin is pinned (or the
// widths no longer sum to the interval).
void checkMinimum(const char* name, double value, int numBins, bool sharedByBins) {
    std::ostringstream msg;
    msg.precision(17);
    if (!(value > 0) || !std::isfinite(value)) {
        msg << "RQSpline: " << name << " must be positive and finite, got " << value;
        throw Error(msg.str());
    }
    if (sharedByBins && numBins * value >= 1) {
        msg << "RQSpline: numBins * " << name << " must be < 1 so the softmax has room, got " << numBins
            << " * " << value << " = " << numBins * value;
        throw Error(msg.str());
    }
}

void checkPointer(const void* p, const char* name) {
    if (p == nullptr)
        throw Error(std::string("RQSpline: ") + name + " must not be null");
}

// values[i] <- sign * log(values[i]) for i < n, vectorized: the scalar log was a fifth of a
// spline evaluation. Through a packet-aligned per-thread buffer so that the result does not
// depend on where the caller's array sits (Eigen peels unaligned heads with the scalar log).
void logInPlace(int n, double* values, double sign) {
    thread_local Eigen::ArrayXd buffer;
    if (buffer.size() < n)
        buffer.resize(n);
    auto head = buffer.head(n);
    head = Eigen::Map<const Eigen::ArrayXd>(values, n);
    head = sign * head.log();
    Eigen::Map<Eigen::ArrayXd>(values, n) = head;
}

void checkCount(int n) {
    if (n < 0)
        throw Error("RQSpline: n (number of scalars) must be >= 0, got " + std::to_string(n));
}

} // namespace

RQSpline::RQSpline(RQSplineType type, int numBins, double bound, double minBinWidth, double minBinHeight,
                   double minDerivative)
    : type(type), numBins(numBins), bound(bound), minBinWidth(minBinWidth), minBinHeight(minBinHeight),
      minDerivative(minDerivative) {
    checkNumBins(numBins);
    if (!(bound > 0) || !std::isfinite(bound)) {
        std::ostringstream msg;
        msg.precision(17);
        msg << "RQSpline: bound B must be positive and finite (the spline acts on [-B, B]), got " << bound;
        throw Error(msg.str());
    }
    checkMinimum("minBinWidth", minBinWidth, numBins, true);
    checkMinimum("minBinHeight", minBinHeight, numBins, true);
    checkMinimum("minDerivative", minDerivative, numBins, false);
}

RQSpline RQSpline::monotonic(int numBins, double bound, double minBinWidth, double minBinHeight,
                             double minDerivative) {
    return RQSpline(RQSplineType::Monotonic, numBins, bound, minBinWidth, minBinHeight, minDerivative);
}

RQSpline RQSpline::circular(int numBins, double minBinWidth, double minBinHeight, double minDerivative) {
    return RQSpline(RQSplineType::Circular, numBins, detail::Pi, minBinWidth, minBinHeight, minDerivative);
}

int RQSpline::numParameters(RQSplineType type, int numBins) {
    checkNumBins(numBins);
    return type == RQSplineType::Monotonic ? 3 * numBins - 1 : 3 * numBins;
}

void RQSpline::backwardKnots(const RQSplineKnots& knots, const double* gradKnotX, const double* gradKnotY,
                             const double* gradKnotDerivatives, double* gradRaw) const {
    const int K = numBins;
    // Width i enters every inner knot j > i, so dL/dw_i is a suffix sum over inner knots; then
    // through w = 2B (min + (1 - K min) softmax) and the softmax Jacobian.
    auto softmaxPart = [K](const double* softmax, const double* gradKnot, double scale, double* out) {
        // Two passes (the softmax Jacobian needs sum_i softmax_i dL/dsoftmax_i first) rather
        // than a scratch array, so this stays allocation-free.
        double suffix = 0;
        double dot = 0;
        for (int i = K - 1; i >= 0; i--) {
            if (i + 1 <= K - 1)
                suffix += gradKnot[i + 1];
            dot += softmax[i] * scale * suffix;
        }
        suffix = 0;
        for (int i = K - 1; i >= 0; i--) {
            if (i + 1 <= K - 1)
                suffix += gradKnot[i + 1];
            out[i] += softmax[i] * (scale * suffix - dot);
        }
    };
    softmaxPart(knots.widthSoftmax.data(), gradKnotX, 2 * bound * (1 - K * minBinWidth), gradRaw);
    softmaxPart(knots.heightSoftmax.data(), gradKnotY, 2 * bound * (1 - K * minBinHeight), gradRaw + K);

    double* gradDeriv = gradRaw + 2 * K;
    if (type == RQSplineType::Monotonic) {
        for (int j = 1; j < K; j++)
            gradDeriv[j - 1] += gradKnotDerivatives[j] * knots.derivativeSlope[j - 1];
    } else {
        gradDeriv[0] += (gradKnotDerivatives[0] + gradKnotDerivatives[K]) * knots.derivativeSlope[0];
        for (int j = 1; j < K; j++)
            gradDeriv[j] += gradKnotDerivatives[j] * knots.derivativeSlope[j];
    }
}

template <class F>
void RQSpline::forEachScalar(int n, const double* raw, F&& f) const {
    // Chunks of scalars: the exps and logs of the parameterization are most of the cost of a
    // spline evaluation, and over a whole chunk Eigen evaluates them with SIMD packet math
    // (within ~1.5 ulp of libm; so results can differ from the scalar computeKnots() in the
    // last bits). The chunk is small enough to stay in L1.
    const int K = numBins, P = getNumParameters(), numDeriv = getNumRawDerivatives();
    const int firstKnot = type == RQSplineType::Monotonic ? 1 : 0;
    const int chunk = std::min(n, 64);
    // Per-thread buffers: coupling layers call this once per sample, so allocating here would cost
    // more than the arithmetic. They are Eigen arrays because Eigen's allocator aligns them to the
    // packet size: over a merely 16-byte-aligned std::vector, Eigen peels a scalar prologue whose
    // length depends on the heap address, and the same input would give results differing in the
    // last bit from one call to the next.
    struct Buffers {
        Eigen::ArrayXd expSoftmax, rawDeriv, expDeriv, logDeriv, slopeDeriv;
        RQSplineKnots knots;
    };
    thread_local Buffers buffers;
    auto reserve = [](Eigen::ArrayXd& a, Eigen::Index size) {
        if (a.size() < size)
            a.resize(size);
    };
    reserve(buffers.expSoftmax, static_cast<Eigen::Index>(chunk) * 2 * K);
    for (Eigen::ArrayXd* a : {&buffers.rawDeriv, &buffers.expDeriv, &buffers.logDeriv, &buffers.slopeDeriv})
        reserve(*a, static_cast<Eigen::Index>(chunk) * numDeriv);
    double* expSoftmax = buffers.expSoftmax.data();
    double* rawDeriv = buffers.rawDeriv.data();
    double* expDeriv = buffers.expDeriv.data();
    double* logDeriv = buffers.logDeriv.data();
    double* slopeDeriv = buffers.slopeDeriv.data();
    RQSplineKnots& knots = buffers.knots;
    resizeKnots(knots);
    for (int start = 0; start < n; start += chunk) {
        const int m = std::min(chunk, n - start);
        for (int i = 0; i < m; i++) {
            const double* r = raw + static_cast<size_t>(start + i) * P;
            double* e = expSoftmax + static_cast<size_t>(i) * 2 * K;
            for (int part = 0; part < 2; part++) {
                const double* rp = r + part * K;
                double maxValue = rp[0];
                for (int j = 1; j < K; j++)
                    maxValue = std::max(maxValue, rp[j]);
                for (int j = 0; j < K; j++)
                    e[part * K + j] = rp[j] - maxValue;
            }
            std::copy(r + 2 * K, r + P, rawDeriv + static_cast<size_t>(i) * numDeriv);
        }
        Eigen::Map<Eigen::ArrayXd, Eigen::AlignedMax> softmaxArg(expSoftmax, static_cast<Eigen::Index>(m) * 2 * K);
        softmaxArg = softmaxArg.exp();
        if (numDeriv > 0) {
            // The same formulas as computeKnots(), over the whole chunk.
            const Eigen::Index size = static_cast<Eigen::Index>(m) * numDeriv;
            Eigen::Map<const Eigen::ArrayXd, Eigen::AlignedMax> r(rawDeriv, size);
            Eigen::Map<Eigen::ArrayXd, Eigen::AlignedMax> e(expDeriv, size), slope(slopeDeriv, size);
            e = (-r.abs()).exp();
            Eigen::Map<Eigen::ArrayXd, Eigen::AlignedMax>(logDeriv, size) = (1.0 + e).log();
            slope = 1.0 / (1.0 + e);
            slope = (r >= 0).select(slope, e * slope);
        }
        for (int i = 0; i < m; i++) {
            const double* e = expSoftmax + static_cast<size_t>(i) * 2 * K;
            std::copy(e, e + K, knots.widthSoftmax.begin());
            std::copy(e + K, e + 2 * K, knots.heightSoftmax.begin());
            const size_t d = static_cast<size_t>(i) * numDeriv;
            std::copy(slopeDeriv + d, slopeDeriv + d + numDeriv, knots.derivativeSlope.begin());
            std::copy(logDeriv + d, logDeriv + d + numDeriv, knots.derivatives.begin() + firstKnot);
            finishKnots(raw + static_cast<size_t>(start + i) * P, knots);
            f(start + i, knots);
        }
    }
}

void RQSpline::forwardBatch(int n, const double* raw, const double* x, double* y, double* logDet) const {
    checkCount(n);
    if (n == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(x, "x");
    checkPointer(y, "y");
    checkPointer(logDet, "logDet");
    forEachScalar(n, raw, [&](int i, const RQSplineKnots& knots) { y[i] = forwardWithDerivative(knots, x[i], logDet[i]); });
    logInPlace(n, logDet, 1.0);
}

void RQSpline::inverseBatch(int n, const double* raw, const double* y, double* x, double* logDet) const {
    checkCount(n);
    if (n == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(y, "y");
    checkPointer(x, "x");
    checkPointer(logDet, "logDet");
    forEachScalar(n, raw, [&](int i, const RQSplineKnots& knots) { x[i] = inverseWithDerivative(knots, y[i], logDet[i]); });
    logInPlace(n, logDet, -1.0);
}

void RQSpline::forwardGradientBatch(int n, const double* raw, const double* x, const double* gradY,
                                    const double* gradLogDet, double* gradX, double* gradRaw) const {
    checkCount(n);
    if (n == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(x, "x");
    checkPointer(gradX, "gradX");
    checkPointer(gradRaw, "gradRaw");
    const size_t P = getNumParameters();
    forEachScalar(n, raw, [&](int i, const RQSplineKnots& knots) {
        gradX[i] = forwardGradient(knots, x[i], gradY ? gradY[i] : 0.0, gradLogDet ? gradLogDet[i] : 0.0,
                                   gradRaw + i * P);
    });
}

void RQSpline::inverseGradientBatch(int n, const double* raw, const double* y, const double* gradX,
                                    const double* gradLogDet, double* gradY, double* gradRaw) const {
    checkCount(n);
    if (n == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(y, "y");
    checkPointer(gradY, "gradY");
    checkPointer(gradRaw, "gradRaw");
    const size_t P = getNumParameters();
    forEachScalar(n, raw, [&](int i, const RQSplineKnots& knots) {
        gradY[i] = inverseGradient(knots, y[i], gradX ? gradX[i] : 0.0, gradLogDet ? gradLogDet[i] : 0.0,
                                   gradRaw + i * P);
    });
}

} // namespace cgflow::flows
