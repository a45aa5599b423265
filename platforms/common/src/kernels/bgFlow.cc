// BoltzmannGeneratorIntegrator on the GPU: a flow's sampling pass over a block of proposals and
// their placement into the Context. Batches are sample-major (sample s at [s * width, (s+1) * width)).
// The host launches one kernel per step of the pass (base draws, conditioner features, each dense
// layer, its activation, the elementwise transform), in the order of the flow's layers. Arithmetic
// is in `real`; log-densities accumulate in `mixed` (double in mixed and double precision).
// Requires BG_MAX_BINS (largest spline bin count) and BG_MAX_DIM (largest dimension) as defines.

#define BG_PI ((real) 3.14159265358979323846)

DEVICE real3 bgCross(real3 a, real3 b) {
    return make_real3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

DEVICE real3 bgNormalize(real3 a) {
    return a * (1 / SQRT(a.x * a.x + a.y * a.y + a.z * a.z));
}

DEVICE real bgWrapAngle(real x) {
    if (x >= -BG_PI && x <= BG_PI)
        return x;
    real r = x - 2 * BG_PI * floor((x + BG_PI) / (2 * BG_PI));
    if (r >= BG_PI)
        r -= 2 * BG_PI;
    else if (r < -BG_PI)
        r += 2 * BG_PI;
    return r;
}

// ---- Base draws: the core's BaseDensity::sample on the device ----
// Philox4x32-10 (Random123) keyed by the seed, counter (sample index low, high, stream tag, pair of
// dimensions), exactly as cgflow::util::philoxOpenUniforms, so a block holds the same base points as
// on the CPU. The quantile arithmetic is in `mixed`: in mixed and double precision it is the core's
// double-precision formula (agreeing to a few ulps of the math library); in single precision the
// complements 1 - u are taken from the integers, so that no uniform rounds to 0 or 1 in float.

#define BG_BASE_STREAM 0x42415345u
#if defined(USE_DOUBLE_PRECISION) || defined(USE_MIXED_PRECISION)
#define BG_MIXED_IS_DOUBLE 1
#define BG_M(x) (x)
#else
#define BG_M(x) (x##f)
#endif

DEVICE void bgPhilox4x32(unsigned int* c, unsigned int k0, unsigned int k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const mm_ulong p0 = (mm_ulong) 0xD2511F53u * c[0];
        const mm_ulong p1 = (mm_ulong) 0xCD9E8D57u * c[2];
        const unsigned int hi0 = (unsigned int) (p0 >> 32), lo0 = (unsigned int) p0;
        const unsigned int hi1 = (unsigned int) (p1 >> 32), lo1 = (unsigned int) p1;
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
    }
}

// u = (k + 1/2) 2^-53 from 53 random bits of two words (philoxOpenUniforms), and its complement 1 - u.
DEVICE mixed bgOpenUniform(unsigned int high, unsigned int low, mixed* complement) {
    const mm_ulong k = ((mm_ulong) (high >> 5) << 26) | (mm_ulong) (low >> 6);
#ifdef BG_MIXED_IS_DOUBLE
    const mixed u = ((mixed) k + 0.5) * 1.1102230246251565404e-16;
    *complement = 1 - u;
#else
    const mixed u = ((mixed) k + 0.5f) * 1.1102230246251565404e-16f;
    *complement = ((mixed) (((mm_ulong) 1 << 53) - k) - 0.5f) * 1.1102230246251565404e-16f;
#endif
    return u;
}

DEVICE mixed bgNormalCdf(mixed x) {
    return BG_M(0.5) * erfc(-x / sqrt((mixed) 2));
}

// The core's standardNormalQuantile (Acklam, then one Halley step), given p and 1 - p.
DEVICE mixed bgNormalQuantile(mixed p, mixed complement) {
    const mixed low = BG_M(0.02425);
    mixed x;
    if (p < low || complement < low) {
        const mixed q = sqrt(-2 * log(p < low ? p : complement));
        x = (((((BG_M(-7.784894002430293e-03) * q + BG_M(-3.223964580411365e-01)) * q + BG_M(-2.400758277161838e+00)) * q +
               BG_M(-2.549732539343734e+00)) * q + BG_M(4.374664141464968e+00)) * q + BG_M(2.938163982698783e+00)) /
            ((((BG_M(7.784695709041462e-03) * q + BG_M(3.224671290700398e-01)) * q + BG_M(2.445134137142996e+00)) * q +
              BG_M(3.754408661907416e+00)) * q + 1);
        if (p >= low)
            x = -x;
    }
    else {
        const mixed q = p - BG_M(0.5), r = q * q;
        x = (((((BG_M(-3.969683028665376e+01) * r + BG_M(2.209460984245205e+02)) * r + BG_M(-2.759285104469687e+02)) * r +
               BG_M(1.383577518672690e+02)) * r + BG_M(-3.066479806614716e+01)) * r + BG_M(2.506628277459239e+00)) * q /
            (((((BG_M(-5.447609879822406e+01) * r + BG_M(1.615858368580409e+02)) * r + BG_M(-1.556989798598866e+02)) * r +
               BG_M(6.680131188771972e+01)) * r + BG_M(-1.328068155288572e+01)) * r + 1);
    }
    const mixed e = (x <= 0 ? bgNormalCdf(x) - p : complement - bgNormalCdf(-x));
    const mixed u = e * BG_M(2.5066282746310005024) * exp(BG_M(0.5) * x * x);
    return x - u / (1 + BG_M(0.5) * x * u);
}

// One work item per sample: z (kinds[d]: 0 normal, 1 truncated normal on [-bound, bound], 2 uniform
// on [-pi, pi)) and logQ = log p_base(z) = -|z_real|^2 / 2 - logNormalizer.
KERNEL void bgBaseSample(int numSamples, int dim, unsigned int seedLow, unsigned int seedHigh, unsigned int firstLow,
                         unsigned int firstHigh, GLOBAL const int* RESTRICT kinds, mixed bound, mixed lowerMass,
                         mixed truncatedMass, mixed logNormalizer, GLOBAL real* RESTRICT data,
                         GLOBAL mixed* RESTRICT logQ) {
    for (int s = GLOBAL_ID; s < numSamples; s += GLOBAL_SIZE) {
        const mm_ulong index = (((mm_ulong) firstHigh << 32) | (mm_ulong) firstLow) + (mm_ulong) s;
        mixed sumSquares = 0;
        for (int d = 0; d < dim; d += 2) {
            unsigned int c[4] = {(unsigned int) index, (unsigned int) (index >> 32), BG_BASE_STREAM, (unsigned int) (d / 2)};
            bgPhilox4x32(c, seedLow, seedHigh);
            for (int k = 0; k < 2 && d + k < dim; k++) {
                mixed complement;
                const mixed u = (k == 0 ? bgOpenUniform(c[0], c[1], &complement) : bgOpenUniform(c[2], c[3], &complement));
                const int kind = kinds[d + k];
                mixed value;
                if (kind == 2)
                    value = -BG_M(3.14159265358979323846) + 2 * BG_M(3.14159265358979323846) * u;
                else if (kind == 0)
                    value = bgNormalQuantile(u, complement);
                else {
                    // The truncated normal's inverse CDF from the nearer tail, as the core.
                    const mixed q = u * truncatedMass;
                    if (q <= BG_M(0.5) * truncatedMass) {
                        const mixed p = lowerMass + q;
                        value = bgNormalQuantile(p, 1 - p);
                    }
                    else {
#ifdef BG_MIXED_IS_DOUBLE
                        const mixed p = lowerMass + (truncatedMass - q);
#else
                        const mixed p = lowerMass + truncatedMass * complement;
#endif
                        value = -bgNormalQuantile(p, 1 - p);
                    }
                    value = min(max(value, -bound), bound);
                }
                if (kind != 2)
                    sumSquares += value * value;
                data[s * dim + d + k] = (real) value;
            }
        }
        logQ[s] = BG_M(-0.5) * sumSquares - logNormalizer;
    }
}

// Conditioner input of a coupling layer: each pass-through dimension (circular ones as cos, sin)
// then the context features, which are the same for every sample of the block.
// passDims[i] = dimension, passCircular[i] = 1 for a circular one.
KERNEL void bgCouplingFeatures(int numSamples, int dim, GLOBAL const real* RESTRICT data, int numPass,
                               GLOBAL const int* RESTRICT passDims, GLOBAL const int* RESTRICT passCircular,
                               int numContext, GLOBAL const real* RESTRICT contextFeatures,
                               GLOBAL real* RESTRICT features, int featureWidth) {
    for (int s = GLOBAL_ID; s < numSamples; s += GLOBAL_SIZE) {
        int row = 0;
        for (int i = 0; i < numPass; i++) {
            real v = data[s * dim + passDims[i]];
            if (passCircular[i]) {
                features[s * featureWidth + row++] = cos(v);
                features[s * featureWidth + row++] = sin(v);
            }
            else
                features[s * featureWidth + row++] = v;
        }
        for (int i = 0; i < numContext; i++)
            features[s * featureWidth + row++] = contextFeatures[i];
    }
}

// out[s][j] = sum_k W[j][k] in[s][k] + b[j] (+ out[s][j] when accumulate: the residual stream).
// W is row-major (out x in) at params + weightOffset, b follows it, as in the core's flat layout.
// A tiled matrix product: each work group of BG_TILE^2 threads computes a BG_TILE x BG_TILE tile of
// out (samples x outputs), staging BG_TILE-wide slices of in and W in local memory, so every value
// read from global memory is used BG_TILE times.
#define BG_TILE 16
KERNEL void bgDense(int numSamples, GLOBAL const real* RESTRICT in, int inWidth, GLOBAL const real* RESTRICT params,
                    int weightOffset, GLOBAL real* out, int outWidth, int accumulate) {
    LOCAL real xTile[BG_TILE][BG_TILE + 1];
    LOCAL real wTile[BG_TILE][BG_TILE + 1];
    const int tilesJ = (outWidth + BG_TILE - 1) / BG_TILE;
    const int numTiles = ((numSamples + BG_TILE - 1) / BG_TILE) * tilesJ;
    const int ty = LOCAL_ID / BG_TILE, tx = LOCAL_ID - ty * BG_TILE;
    GLOBAL const real* w = params + weightOffset;
    // OpenMM launches at most a device-dependent number of groups: each group strides over tiles.
    for (int tile = GROUP_ID; tile < numTiles; tile += NUM_GROUPS) {
        const int tileS = tile / tilesJ, tileJ = tile - tileS * tilesJ;
        const int s = tileS * BG_TILE + ty, j = tileJ * BG_TILE + tx;
        real sum = 0;
        for (int k0 = 0; k0 < inWidth; k0 += BG_TILE) {
            // xTile[ty][tx] = in[s][k0 + tx]; wTile[ty][tx] = W[tileJ * T + ty][k0 + tx] (both read along k).
            const int k = k0 + tx;
            const int row = tileJ * BG_TILE + ty;
            xTile[ty][tx] = (s < numSamples && k < inWidth ? in[s * inWidth + k] : 0);
            wTile[ty][tx] = (row < outWidth && k < inWidth ? w[row * inWidth + k] : 0);
            SYNC_THREADS;
            for (int kk = 0; kk < BG_TILE; kk++)
                sum += xTile[ty][kk] * wTile[tx][kk];
            SYNC_THREADS;
        }
        if (s < numSamples && j < outWidth) {
            const int index = s * outWidth + j;
            sum += params[weightOffset + outWidth * inWidth + j];
            if (accumulate)
                sum += out[index];
            out[index] = sum;
        }
    }
}

// y = f(x) elementwise; kinds as nn::Activation: 0 identity, 1 tanh, 2 sigmoid, 3 softplus, 4 silu, 5 relu.
KERNEL void bgActivation(int count, GLOBAL const real* x, GLOBAL real* y, int kind) { // may run in place
    for (int i = GLOBAL_ID; i < count; i += GLOBAL_SIZE) {
        const real v = x[i];
        real r = v;
        if (kind == 1)
            r = tanh(v);
        else if (kind == 2)
            r = 1 / (1 + EXP(-v));
        else if (kind == 3)
            r = (v > 0 ? v + log(1 + EXP(-v)) : log(1 + EXP(v)));
        else if (kind == 4)
            r = v / (1 + EXP(-v));
        else if (kind == 5)
            r = (v > 0 ? v : 0);
        y[i] = r;
    }
}

// One rational-quadratic spline scalar (core RQSpline, forward direction) from its raw parameters.
DEVICE real bgSplineForward(GLOBAL const real* raw, int K, int circular, real bound, real minWidth, real minHeight,
                            real minDerivative, real x, mixed* logDet) {
    if (circular)
        x = bgWrapAngle(x);
    else if (x < -bound || x > bound)
        return x; // identity tails, log|det| 0
    real knotX[BG_MAX_BINS + 1], knotY[BG_MAX_BINS + 1], deriv[BG_MAX_BINS + 1];
    for (int part = 0; part < 2; part++) {
        GLOBAL const real* r = raw + part * K;
        real* knots = (part == 0 ? knotX : knotY);
        const real minSize = (part == 0 ? minWidth : minHeight);
        real m = r[0];
        for (int i = 1; i < K; i++)
            m = max(m, r[i]);
        real sum = 0;
        for (int i = 0; i < K; i++)
            sum += EXP(r[i] - m);
        const real scale = 1 - K * minSize;
        real cumulative = 0;
        knots[0] = -bound;
        for (int j = 1; j < K; j++) {
            cumulative += minSize + scale * (EXP(r[j - 1] - m) / sum);
            knots[j] = -bound + 2 * bound * cumulative;
        }
        knots[K] = bound;
    }
    const int firstKnot = (circular ? 0 : 1);
    const int numDeriv = (circular ? K : K - 1);
    for (int i = 0; i < numDeriv; i++) {
        const real r = raw[2 * K + i];
        deriv[firstKnot + i] = minDerivative + max(r, (real) 0) + log(1 + EXP(-fabs(r)));
    }
    if (circular)
        deriv[K] = deriv[0];
    else {
        deriv[0] = 1;
        deriv[K] = 1;
    }
    int k = 0;
    for (int j = 1; j < K; j++)
        k += (x >= knotX[j] ? 1 : 0);
    const real xk = knotX[k], w = knotX[k + 1] - xk;
    const real yk = knotY[k], h = knotY[k + 1] - yk;
    const real slope = h / w;
    const real xi = (x - xk) / w;
    const real d0 = deriv[k], d1 = deriv[k + 1];
    const real t = xi * (1 - xi);
    const real numerator = h * (slope * xi * xi + d0 * t);
    const real denominator = slope + (d0 + d1 - 2 * slope) * t;
    const real factor = d1 * xi * xi + 2 * slope * t + d0 * (1 - xi) * (1 - xi);
    *logDet += (mixed) log(slope * slope * factor / (denominator * denominator));
    return min(max(yk + numerator / denominator, yk), knotY[k + 1]);
}

// The transform of a spline coupling, one work item per sample: transformed dimensions real ones
// first, then circular ones, with raw parameters laid out the same way (rawSize per sample; with
// free parameters rawStride is 0, so every sample reads the row at rawOffset). logQ -= sum of log-dets.
KERNEL void bgSplineTransform(int numSamples, int dim, GLOBAL real* RESTRICT data, int numReal, int numCircular,
                              GLOBAL const int* RESTRICT transformedDims, GLOBAL const real* RESTRICT raw, int rawOffset,
                              int rawStride, int K, real bound, real minWidth, real minHeight, real minDerivative, int circularK,
                              real circularMinWidth, real circularMinHeight, real circularMinDerivative,
                              GLOBAL mixed* RESTRICT logQ) {
    const int realP = 3 * K - 1, circularP = 3 * circularK;
    for (int s = GLOBAL_ID; s < numSamples; s += GLOBAL_SIZE) {
        mixed logDet = 0;
        GLOBAL const real* r = raw + rawOffset + s * rawStride;
        for (int t = 0; t < numReal; t++) {
            const int d = transformedDims[t];
            data[s * dim + d] = bgSplineForward(r + t * realP, K, 0, bound, minWidth, minHeight, minDerivative,
                                                data[s * dim + d], &logDet);
        }
        for (int t = 0; t < numCircular; t++) {
            const int d = transformedDims[numReal + t];
            data[s * dim + d] = bgSplineForward(r + numReal * realP + t * circularP, circularK, 1, BG_PI,
                                                circularMinWidth, circularMinHeight, circularMinDerivative,
                                                data[s * dim + d], &logDet);
        }
        logQ[s] -= logDet;
    }
}

// Affine coupling, forward: y = x exp(s) + t with raw rows [s (numT), t (numT)].
KERNEL void bgAffineTransform(int numSamples, int dim, GLOBAL real* RESTRICT data, int numT,
                              GLOBAL const int* RESTRICT transformedDims, GLOBAL const real* RESTRICT raw, int rawOffset,
                              int rawStride, GLOBAL mixed* RESTRICT logQ) {
    for (int s = GLOBAL_ID; s < numSamples; s += GLOBAL_SIZE) {
        mixed logDet = 0;
        GLOBAL const real* r = raw + rawOffset + s * rawStride;
        for (int t = 0; t < numT; t++) {
            const int d = transformedDims[t];
            data[s * dim + d] = data[s * dim + d] * EXP(r[t]) + r[numT + t];
            logDet += (mixed) r[t];
        }
        logQ[s] -= logDet;
    }
}

// out[i] = in[order[i]] within each sample (Permutation, forward).
KERNEL void bgPermute(int numSamples, int dim, GLOBAL real* RESTRICT data, GLOBAL const int* RESTRICT order) {
    for (int s = GLOBAL_ID; s < numSamples; s += GLOBAL_SIZE) {
        real copy[BG_MAX_DIM];
        for (int d = 0; d < dim; d++)
            copy[d] = data[s * dim + d];
        for (int d = 0; d < dim; d++)
            data[s * dim + d] = copy[order[d]];
    }
}

// CircularShift, forward: wrap(wrap(x) + shift) for dimensions with a non-zero shift.
KERNEL void bgCircularShift(int numSamples, int dim, GLOBAL real* RESTRICT data, GLOBAL const real* RESTRICT shifts) {
    for (int index = GLOBAL_ID; index < numSamples * dim; index += GLOBAL_SIZE) {
        const real shift = shifts[index % dim];
        if (shift != 0)
            data[index] = bgWrapAngle(bgWrapAngle(data[index]) + shift);
    }
}

// Internal coordinates -> Cartesian (core InternalCoordinates: denormalize, then NeRF in the
// canonical frame), one work item per sample. rows[r] = (atom, bond, angle, dihedral partner).
// logQ -= log|det J| (the convention's reference-atom terms + sum over later atoms + logScaleSum).
// columnSource[c]: the flow dimension that fills internal column c, or -1 - k for the k-th condition
// column, whose model value is conditionModel[k] (a conditional map; the same for the whole block).
KERNEL void bgInternalToCartesian(int numSamples, int dim, GLOBAL const real* RESTRICT data, int numAtoms,
                                  GLOBAL const int4* RESTRICT rows, GLOBAL const real* RESTRICT shift,
                                  GLOBAL const real* RESTRICT scale, int fullJacobian, mixed logScaleSum,
                                  GLOBAL real* RESTRICT positions, GLOBAL mixed* RESTRICT logQ,
                                  GLOBAL const int* RESTRICT columnSource, GLOBAL const real* RESTRICT conditionModel,
                                  GLOBAL const int* RESTRICT dependentDihedral, real nanValue) {
    for (int s = GLOBAL_ID; s < numSamples; s += GLOBAL_SIZE) {
        GLOBAL real* x = positions + s * numAtoms * 3;
        GLOBAL const real* q = data + s * dim;
        mixed logDet = logScaleSum;
        // The principal domain (core InternalCoordinates::inPrincipalDomain): bonds > 0, angles in (0, pi),
        // dependent dihedrals within pi of their shift. Outside it the map is many-to-one: NaN positions and log q.
        int inside = 1;
#define BG_Q(c) ((columnSource[c] >= 0 ? q[columnSource[c]] : conditionModel[-1 - columnSource[c]]) * scale[c] + shift[c])
#define BG_LOAD(a) make_real3(x[3 * (a)], x[3 * (a) + 1], x[3 * (a) + 2])
#define BG_STORE(a, v) { real3 bgv = (v); x[3 * (a)] = bgv.x; x[3 * (a) + 1] = bgv.y; x[3 * (a) + 2] = bgv.z; }
        BG_STORE(rows[0].x, make_real3(0, 0, 0));
        const real b1 = BG_Q(0);
        BG_STORE(rows[1].x, make_real3(b1, 0, 0));
        const real b2 = BG_Q(1), theta2 = BG_Q(2);
        inside = inside && b1 > 0 && b2 > 0 && theta2 > 0 && theta2 < BG_PI;
        {
            const real3 b = BG_LOAD(rows[2].y), c = BG_LOAD(rows[2].z);
            const real3 e1 = bgNormalize(c - b);
            BG_STORE(rows[2].x, b + b2 * (cos(theta2) * e1 + sin(theta2) * make_real3(0, 1, 0)));
        }
        if (fullJacobian)
            logDet += (mixed) (2 * log(fabs(b1)) + 2 * log(fabs(b2)) + log(fabs(sin(theta2))));
        else
            logDet += (mixed) log(fabs(b2));
        for (int r = 3; r < numAtoms; r++) {
            const int4 row = rows[r];
            const real length = BG_Q(3 * r - 6), theta = BG_Q(3 * r - 5), phi = BG_Q(3 * r - 4);
            inside = inside && length > 0 && theta > 0 && theta < BG_PI &&
                     (!dependentDihedral[r] || fabs(phi - shift[3 * r - 4]) <= BG_PI);
            const real3 b = BG_LOAD(row.y), c = BG_LOAD(row.z), d = BG_LOAD(row.w);
            const real3 e1 = bgNormalize(b - c);
            const real3 n = bgNormalize(bgCross(c - d, e1));
            const real3 e2 = bgCross(n, e1);
            const real sinTheta = sin(theta);
            BG_STORE(row.x, b + length * (-cos(theta) * e1 + sinTheta * cos(phi) * e2 + sinTheta * sin(phi) * n));
            logDet += (mixed) (2 * log(fabs(length)) + log(fabs(sinTheta)));
        }
#undef BG_Q
#undef BG_LOAD
#undef BG_STORE
        if (inside)
            logQ[s] -= logDet;
        else {
            for (int i = 0; i < 3 * numAtoms; i++)
                x[i] = nanValue;
            logQ[s] = nanValue;
        }
    }
}

// The translation that puts proposal `index`'s centroid on the centroid of the current positions
// (internal maps): one work item, since a molecule has few atoms and this runs once per step.
// cellShift is the mean over atoms of posCellOffset . box: the Context's positions are posq minus it.
KERNEL void bgCentroidShift(int numAtoms, GLOBAL const real4* RESTRICT posq, GLOBAL const real4* RESTRICT posqCorrection,
                            GLOBAL const int* RESTRICT atomIndex, GLOBAL const real* RESTRICT positions, int index,
                            mixed cellShiftX, mixed cellShiftY, mixed cellShiftZ, GLOBAL mixed* RESTRICT translation) {
    if (GLOBAL_ID != 0)
        return;
    mixed current[3] = {0, 0, 0}, proposal[3] = {0, 0, 0};
    for (int i = 0; i < numAtoms; i++) {
        const real4 p = posq[i];
#ifdef USE_MIXED_PRECISION
        const real4 c = posqCorrection[i];
        current[0] += (mixed) p.x + (mixed) c.x;
        current[1] += (mixed) p.y + (mixed) c.y;
        current[2] += (mixed) p.z + (mixed) c.z;
#else
        current[0] += p.x;
        current[1] += p.y;
        current[2] += p.z;
#endif
        for (int a = 0; a < 3; a++)
            proposal[a] += positions[(index * numAtoms + i) * 3 + a];
    }
    translation[0] = (current[0] - proposal[0]) / numAtoms - cellShiftX;
    translation[1] = (current[1] - proposal[1]) / numAtoms - cellShiftY;
    translation[2] = (current[2] - proposal[2]) / numAtoms - cellShiftZ;
}

// Writes proposal `index` (internal map) into posq, slot by slot through the atom reordering.
KERNEL void bgLoadMolecule(int numAtoms, GLOBAL real4* RESTRICT posq, GLOBAL real4* RESTRICT posqCorrection,
                           GLOBAL const int* RESTRICT atomIndex, GLOBAL const real* RESTRICT positions, int index,
                           GLOBAL const mixed* RESTRICT translation) {
    for (int slot = GLOBAL_ID; slot < numAtoms; slot += GLOBAL_SIZE) {
        const int atom = atomIndex[slot];
        GLOBAL const real* p = positions + (index * numAtoms + atom) * 3;
        const mixed x = p[0] + translation[0], y = p[1] + translation[1], z = p[2] + translation[2];
        real4 value = posq[slot];
        value.x = (real) x;
        value.y = (real) y;
        value.z = (real) z;
        posq[slot] = value;
#ifdef USE_MIXED_PRECISION
        real4 correction = posqCorrection[slot];
        correction.x = (real) (x - (mixed) value.x);
        correction.y = (real) (y - (mixed) value.y);
        correction.z = (real) (z - (mixed) value.z);
        posqCorrection[slot] = correction;
#endif
    }
}

// Writes proposal `index` (Cartesian map) into its slots: slotOf[k] = (atom, axis) of flow output k.
KERNEL void bgLoadSlots(int numAtoms, GLOBAL real4* RESTRICT posq, GLOBAL real4* RESTRICT posqCorrection,
                        GLOBAL const int* RESTRICT atomIndex, GLOBAL const real* RESTRICT data, int dim, int index,
                        GLOBAL const int2* RESTRICT slots) {
    for (int slot = GLOBAL_ID; slot < numAtoms; slot += GLOBAL_SIZE) {
        const int atom = atomIndex[slot];
        real4 value = posq[slot];
#ifdef USE_MIXED_PRECISION
        real4 correction = posqCorrection[slot];
#endif
        for (int k = 0; k < dim; k++)
            if (slots[k].x == atom) {
                const real v = data[index * dim + k];
                if (slots[k].y == 0) {
                    value.x = v;
#ifdef USE_MIXED_PRECISION
                    correction.x = 0;
#endif
                }
                else if (slots[k].y == 1) {
                    value.y = v;
#ifdef USE_MIXED_PRECISION
                    correction.y = 0;
#endif
                }
                else {
                    value.z = v;
#ifdef USE_MIXED_PRECISION
                    correction.z = 0;
#endif
                }
            }
        posq[slot] = value;
#ifdef USE_MIXED_PRECISION
        posqCorrection[slot] = correction;
#endif
    }
}

// Restores saved positions when the atoms were reordered in between: savedSlotOfAtom[atom] is
// where the atom was when they were saved.
KERNEL void bgRestoreReordered(int numAtoms, GLOBAL real4* RESTRICT posq, GLOBAL real4* RESTRICT posqCorrection,
                               GLOBAL const int* RESTRICT atomIndex, GLOBAL const real4* RESTRICT savedPosq,
                               GLOBAL const real4* RESTRICT savedCorrection, GLOBAL const int* RESTRICT savedSlotOfAtom) {
    for (int slot = GLOBAL_ID; slot < numAtoms; slot += GLOBAL_SIZE) {
        const int from = savedSlotOfAtom[atomIndex[slot]];
        posq[slot] = savedPosq[from];
#ifdef USE_MIXED_PRECISION
        posqCorrection[slot] = savedCorrection[from];
#endif
    }
}
