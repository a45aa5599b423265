#include "cgflow/flows/RQSpline.h"

#include "cgflow/Error.h"

#include <Eigen/Core>

#include <algorithm>
#include <sstream>
#include <string>

namespace cgflow::flows {

namespace {

void checkNumBins(int numBins) {
    // The upper bound keeps 3 * numBins (the raw parameters per dimension) far from int overflow.
    if (numBins < 1)
        throw Error("RQSpline: numBins must be >= 1, got " + std::to_string(numBins));
    if (numBins > RQSpline::MaxNumBins)
        throw Error("RQSpline: numBins must be <= " + std::to_string(RQSpline::MaxNumBins) + ", got " +
                    std::to_string(numBins));
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

void checkStrided(int groups, int groupSize, int rawStride, int ioStride) {
    if (groups < 0 || groupSize < 0)
        throw Error("RQSpline: groups and groupSize must be >= 0, got " + std::to_string(groups) + " and " +
                    std::to_string(groupSize));
    if (groups > 1 && (rawStride < 0 || ioStride < groupSize))
        throw Error("RQSpline: strides must leave room for a group: rawStride >= 0 and ioStride >= groupSize, got " +
                    std::to_string(rawStride) + " and " + std::to_string(ioStride));
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

template <class RawOf, class F>
void RQSpline::forEachScalar(int n, const RawOf& rawOf, F&& f) const {
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
            const double* r = rawOf(start + i);
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
            finishKnots(rawOf(start + i), knots);
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
    transformBatch(false, 1, n, raw, 0, x, 0, y, logDet);
}

void RQSpline::inverseBatch(int n, const double* raw, const double* y, double* x, double* logDet) const {
    checkCount(n);
    if (n == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(y, "y");
    checkPointer(x, "x");
    checkPointer(logDet, "logDet");
    transformBatch(true, 1, n, raw, 0, y, 0, x, logDet);
}

void RQSpline::forwardGradientBatch(int n, const double* raw, const double* x, const double* gradY,
                                    const double* gradLogDet, double* gradX, double* gradRaw) const {
    checkCount(n);
    forwardGradientBatchStrided(1, n, raw, 0, x, 0, gradY, gradLogDet, gradX, gradRaw);
}

void RQSpline::inverseGradientBatch(int n, const double* raw, const double* y, const double* gradX,
                                    const double* gradLogDet, double* gradY, double* gradRaw) const {
    checkCount(n);
    inverseGradientBatchStrided(1, n, raw, 0, y, 0, gradX, gradLogDet, gradY, gradRaw);
}

void RQSpline::forwardGradientBatchStrided(int groups, int groupSize, const double* raw, int rawStride,
                                           const double* x, int ioStride, const double* gradY,
                                           const double* gradLogDet, double* gradX, double* gradRaw) const {
    gradientBatch(false, groups, groupSize, raw, rawStride, x, ioStride, gradY, gradLogDet, gradX, gradRaw, "x", "gradX");
}

void RQSpline::inverseGradientBatchStrided(int groups, int groupSize, const double* raw, int rawStride,
                                           const double* y, int ioStride, const double* gradX,
                                           const double* gradLogDet, double* gradY, double* gradRaw) const {
    gradientBatch(true, groups, groupSize, raw, rawStride, y, ioStride, gradX, gradLogDet, gradY, gradRaw, "y", "gradY");
}

void RQSpline::gradientBatch(bool inverseDirection, int groups, int groupSize, const double* raw, int rawStride,
                             const double* in, int ioStride, const double* gradOut, const double* gradLogDet,
                             double* gradIn, double* gradRaw, const char* inName, const char* gradInName) const {
    checkStrided(groups, groupSize, rawStride, ioStride);
    if (groups == 0 || groupSize == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(in, inName);
    checkPointer(gradIn, gradInName);
    checkPointer(gradRaw, "gradRaw");
    const long P = getNumParameters();
    auto rawOffset = [&](long i) { return (i / groupSize) * static_cast<long>(rawStride) + (i % groupSize) * P; };
    auto io = [&](long i) { return (i / groupSize) * static_cast<long>(ioStride) + i % groupSize; };
    forEachScalar(groups * groupSize, [&](long i) { return raw + rawOffset(i); },
                  [&](long i, const RQSplineKnots& knots) {
                      const long k = io(i);
                      const double g = gradOut ? gradOut[k] : 0.0, gl = gradLogDet ? gradLogDet[k] : 0.0;
                      gradIn[k] = inverseDirection ? inverseGradient(knots, in[k], g, gl, gradRaw + rawOffset(i))
                                                   : forwardGradient(knots, in[k], g, gl, gradRaw + rawOffset(i));
                  });
}

void RQSpline::transformBatch(bool inverseDirection, int groups, int groupSize, const double* raw, int rawStride,
                              const double* in, int ioStride, double* out, double* logDet) const {
    using Column = Eigen::Array<double, Eigen::Dynamic, 1>;
    using Table = Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic>; // (scalars x knots), one knot per column
    constexpr int Chunk = 64;
    const int K = numBins, P = getNumParameters(), numDeriv = getNumRawDerivatives();
    const int firstKnot = type == RQSplineType::Monotonic ? 1 : 0;
    const bool circular = type == RQSplineType::Circular;
    // Per-thread buffers sized once for a full chunk (Eigen-allocated, so packet-aligned); every
    // step below works on their first m rows and allocates nothing.
    struct Buffers {
        Table widths, heights, rawDeriv, x, y, d;
        Column v, inside, xk, x1, yk, y1, d0, d1, w, h, s, xi, t, u, den, mm, result, slope, tmp, cum, xiRight,
            slopeRight, fromRight;
        int numBins = -1;
    };
    thread_local Buffers b;
    if (b.numBins != K) {
        for (Table* t : {&b.widths, &b.heights, &b.rawDeriv})
            t->setZero(Chunk, K);
        for (Table* t : {&b.x, &b.y, &b.d})
            t->setZero(Chunk, K + 1);
        for (Column* c : {&b.v, &b.inside, &b.xk, &b.x1, &b.yk, &b.y1, &b.d0, &b.d1, &b.w, &b.h, &b.s, &b.xi,
                          &b.t, &b.u, &b.den, &b.mm, &b.result, &b.slope, &b.tmp, &b.cum, &b.xiRight, &b.slopeRight,
                          &b.fromRight})
            c->setZero(Chunk);
        b.numBins = K;
    }
    const long total = static_cast<long>(groups) * groupSize;
    auto rawOf = [&](long i) { return raw + (i / groupSize) * static_cast<long>(rawStride) + (i % groupSize) * P; };
    auto ioIndex = [&](long i) { return (i / groupSize) * static_cast<long>(ioStride) + i % groupSize; };
    for (long start = 0; start < total; start += Chunk) {
        const int m = static_cast<int>(std::min<long>(Chunk, total - start));
        // Structure of arrays: column j holds parameter j of every scalar of the chunk.
        for (int i = 0; i < m; i++) {
            const double* r = rawOf(start + i);
            for (int j = 0; j < K; j++) {
                b.widths(i, j) = r[j];
                b.heights(i, j) = r[K + j];
            }
            for (int j = 0; j < numDeriv; j++)
                b.rawDeriv(i, j) = r[2 * K + j];
            double v = in[ioIndex(start + i)];
            // Monotonic inputs outside [-B, B] pass through (NaN counts as inside, so it reaches
            // both outputs); circular inputs are wrapped.
            b.inside[i] = toDomain(v) ? 1.0 : 0.0;
            b.v[i] = v;
        }
        // Vector steps run over a whole number of packets (mp rows): Eigen evaluates a tail
        // that does not fill a packet with the scalar exp/log, whose last bits differ from the
        // packet versions, and a sample's result would then depend on where it falls in the
        // batch (so on the batch size). Rows m .. mp-1 hold stale values and are never read back.
        const int mp = (m + 7) & ~7;
        auto col = [mp](Table& t, int j) { return t.col(j).head(mp); };
        auto head = [mp](auto& c) { return c.head(mp); };
        // Softmax shifted by each scalar's maximum, then cumulative knots with exact ends (as
        // computeKnots()).
        auto knotsFrom = [&](Table& e, double minSize, Table& knots) {
            head(b.tmp) = col(e, 0);
            for (int j = 1; j < K; j++)
                head(b.tmp) = head(b.tmp).max(col(e, j));
            head(b.cum).setZero();
            for (int j = 0; j < K; j++) {
                col(e, j) = (col(e, j) - head(b.tmp)).exp();
                head(b.cum) += col(e, j);
            }
            head(b.tmp) = head(b.cum).inverse();
            const double scale = 1.0 - K * minSize;
            head(b.cum).setZero();
            col(knots, 0).setConstant(-bound);
            for (int j = 1; j < K; j++) {
                head(b.cum) += minSize + scale * (col(e, j - 1) * head(b.tmp));
                col(knots, j) = -bound + 2 * bound * head(b.cum);
            }
            col(knots, K).setConstant(bound);
        };
        knotsFrom(b.widths, minBinWidth, b.x);
        knotsFrom(b.heights, minBinHeight, b.y);
        // Derivatives: minDerivative + softplus(raw), softplus(r) = max(r, 0) + log(1 + exp(-|r|)).
        for (int j = 0; j < numDeriv; j++) {
            head(b.tmp) = (-col(b.rawDeriv, j).abs()).exp();
            col(b.d, firstKnot + j) = minDerivative + col(b.rawDeriv, j).max(0.0) + (1.0 + head(b.tmp)).log();
        }
        if (circular) {
            col(b.d, K) = col(b.d, 0);
        } else {
            col(b.d, 0).setConstant(1.0);
            col(b.d, K).setConstant(1.0);
        }
        // Bin k with knots[k] <= v < knots[k+1] (counting, as findBin()) and each scalar's bin
        // quantities. A scalar loop: Eigen 3.4 has no packet path for comparisons and select(),
        // and six gathers per scalar are cheaper than selecting over every bin.
        const Table& search = inverseDirection ? b.y : b.x;
        for (int i = 0; i < m; i++) {
            const double v = b.v[i];
            int k = 0;
            for (int j = 1; j < K; j++)
                k += v >= search(i, j);
            b.xk[i] = b.x(i, k);
            b.x1[i] = b.x(i, k + 1);
            b.yk[i] = b.y(i, k);
            b.y1[i] = b.y(i, k + 1);
            b.d0[i] = b.d(i, k);
            b.d1[i] = b.d(i, k + 1);
        }
        head(b.w) = head(b.x1) - head(b.xk);
        head(b.h) = head(b.y1) - head(b.yk);
        head(b.s) = head(b.h) / head(b.w);
        // dy/dx = s^2 M / D^2 at local coordinate xi with knot derivatives (d0, d1) (rqSegment()).
        auto slopeAt = [&](Column& xi, Column& d0, Column& d1, Column& slope) {
            head(b.t) = head(xi) * (1 - head(xi));
            head(b.u) = 1 - head(xi);
            head(b.den) = head(b.s) + (head(d0) + head(d1) - 2 * head(b.s)) * head(b.t);
            head(b.mm) = head(d1) * head(xi).square() + 2 * head(b.s) * head(b.t) + head(d0) * head(b.u).square();
            head(slope) = head(b.s).square() * head(b.mm) / head(b.den).square();
        };
        if (!inverseDirection) {
            head(b.xi) = (head(b.v) - head(b.xk)) / head(b.w);
            slopeAt(b.xi, b.d0, b.d1, b.slope);
            // y = y_k + N / D.
            head(b.result) = head(b.yk) + head(b.h) * (head(b.s) * head(b.xi).square() + head(b.d0) * head(b.t)) /
                                              head(b.den);
            // Kept inside the bin against rounding (NaN kept), as forward().
            for (int i = 0; i < m; i++)
                b.result[i] = std::min(std::max(b.result[i], b.yk[i]), b.y1[i]);
        } else {
            // N - eta D = 0 solved in closed form from the nearer end of the bin (as inverse()
            // and rqSolve()); both ends are computed and the nearer one selected.
            auto solve = [&](Column& eta, Column& d0, Column& d1, Column& xi) {
                head(b.t) = head(d0) + head(d1) - 2 * head(b.s);                      // q
                head(b.u) = head(b.h) * (head(b.s) - head(d0)) + head(eta) * head(b.t); // a
                head(b.den) = head(b.h) * head(d0) - head(eta) * head(b.t);             // b
                head(b.mm) = -head(b.s) * head(eta);                                    // c
                head(b.cum) = (head(b.den).square() - 4 * head(b.u) * head(b.mm)).max(0.0).sqrt();
                head(xi) = (head(b.den) >= 0)
                               .select(2 * head(b.mm) / (-head(b.den) - head(b.cum)),
                                       (-head(b.den) + head(b.cum)) / (2 * head(b.u)));
                for (int i = 0; i < m; i++) // rounding only; NaN passes through, as rqSolve()
                    xi[i] = std::min(std::max(xi[i], 0.0), 1.0);
            };
            head(b.tmp) = head(b.v) - head(b.yk); // eta from the left end
            solve(b.tmp, b.d0, b.d1, b.xi);
            head(b.tmp) = head(b.y1) - head(b.v); // eta from the right end
            solve(b.tmp, b.d1, b.d0, b.xiRight);
            slopeAt(b.xiRight, b.d1, b.d0, b.slopeRight);
            slopeAt(b.xi, b.d0, b.d1, b.slope);
            head(b.fromRight) = head(b.x1) - head(b.xiRight) * head(b.w);
            for (int i = 0; i < m; i++)
                b.fromRight[i] = std::max(b.fromRight[i], b.xk[i]);
            const auto nearLeft = (head(b.v) - head(b.yk)) <= 0.5 * head(b.h);
            head(b.result) = nearLeft.select(head(b.xk) + head(b.xi) * head(b.w), head(b.fromRight));
            head(b.slope) = nearLeft.select(head(b.slope), head(b.slopeRight));
        }
        head(b.slope) = head(b.slope).log();
        const double sign = inverseDirection ? -1.0 : 1.0;
        for (int i = 0; i < m; i++) {
            const long index = ioIndex(start + i);
            const bool transformed = b.inside[i] != 0.0;
            out[index] = transformed ? b.result[i] : b.v[i];
            logDet[index] = transformed ? sign * b.slope[i] : 0.0;
        }
    }
}

void RQSpline::forwardBatchStrided(int groups, int groupSize, const double* raw, int rawStride, const double* x,
                                   int ioStride, double* y, double* logDet) const {
    checkStrided(groups, groupSize, rawStride, ioStride);
    if (groups == 0 || groupSize == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(x, "x");
    checkPointer(y, "y");
    checkPointer(logDet, "logDet");
    transformBatch(false, groups, groupSize, raw, rawStride, x, ioStride, y, logDet);
}

void RQSpline::inverseBatchStrided(int groups, int groupSize, const double* raw, int rawStride, const double* y,
                                   int ioStride, double* x, double* logDet) const {
    checkStrided(groups, groupSize, rawStride, ioStride);
    if (groups == 0 || groupSize == 0)
        return;
    checkPointer(raw, "raw");
    checkPointer(y, "y");
    checkPointer(x, "x");
    checkPointer(logDet, "logDet");
    transformBatch(true, groups, groupSize, raw, rawStride, y, ioStride, x, logDet);
}

} // namespace cgflow::flows
