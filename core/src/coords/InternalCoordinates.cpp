#include "cgflow/coords/InternalCoordinates.h"

#include "cgflow/Error.h"
#include "cgflow/util/Parallel.h"

#include <Eigen/Geometry>
#include <Random123/philox.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <exception>
#include <string>
#include <thread>

namespace cgflow::coords {

using Eigen::Vector3d;

namespace {

constexpr double pi = 3.14159265358979323846;
constexpr double twoPi = 2 * pi;

/** To [-pi, pi); the guards catch the rounding of a - 2*pi*k at the ends of the interval. */
double wrapAngle(double a) {
    double r = a - twoPi * std::floor((a + pi) / twoPi);
    if (r >= pi)
        r -= twoPi;
    if (r < -pi)
        r += twoPi;
    return r;
}

Vector3d load(const double* x, int atom) {
    return Vector3d(x[3 * atom], x[3 * atom + 1], x[3 * atom + 2]);
}

void store(double* x, int atom, const Vector3d& v) {
    x[3 * atom] = v[0];
    x[3 * atom + 1] = v[1];
    x[3 * atom + 2] = v[2];
}

void accumulate(double* g, int atom, const Vector3d& v) {
    g[3 * atom] += v[0];
    g[3 * atom + 1] += v[1];
    g[3 * atom + 2] += v[2];
}

/** The NeRF frame at the bond partner b, from the angle partner c and the dihedral partner d. */
struct NerfFrame {
    Vector3d e1, e2, n;  // e1 = unit(b - c), n = unit((c - d) x e1), e2 = n x e1
    Vector3d w, nn;      // c - d and the unnormalized n, kept for the backward pass
    double lengthV, lengthN;

    NerfFrame(const Vector3d& b, const Vector3d& c, const Vector3d& d) {
        Vector3d v = b - c;
        lengthV = v.norm();
        e1 = v / lengthV;
        w = c - d;
        nn = w.cross(e1);
        lengthN = nn.norm();
        n = nn / lengthN;
        e2 = n.cross(e1);
    }
};

/** Uniform double in [0, 1) from 53 of the 64 random bits. */
double unitInterval(uint32_t high, uint32_t low) {
    return ((high >> 5) * 67108864.0 + (low >> 6)) * (1.0 / 9007199254740992.0);
}

// Philox counter word that keeps rotation draws apart from other users of the same seed ("ROTN").
constexpr uint32_t rotationStream = 0x524F544E;

} // namespace

RigidMotion RigidMotion::randomRotation(uint64_t seed, uint64_t index) {
    r123::Philox4x32 philox;
    r123::Philox4x32::key_type key = {{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
    double u[4];
    for (uint32_t block = 0; block < 2; block++) {
        r123::Philox4x32::ctr_type counter = {
            {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), rotationStream, block}};
        r123::Philox4x32::ctr_type r = philox(counter, key);
        u[2 * block] = unitInterval(r[0], r[1]);
        u[2 * block + 1] = unitInterval(r[2], r[3]);
    }
    // Shoemake (1992): a uniform unit quaternion from three uniforms.
    double s1 = std::sqrt(1 - u[0]), s2 = std::sqrt(u[0]);
    double a1 = twoPi * u[1], a2 = twoPi * u[2];
    Eigen::Quaterniond quaternion(s2 * std::cos(a2), s1 * std::sin(a1), s1 * std::cos(a1), s2 * std::sin(a2));
    RigidMotion motion;
    motion.rotation = quaternion.normalized().toRotationMatrix();
    return motion;
}

std::vector<RigidMotion> RigidMotion::randomRotations(uint64_t seed, int count, uint64_t firstIndex) {
    if (count < 0)
        throw Error("RigidMotion::randomRotations: count = " + std::to_string(count) + " must be >= 0");
    std::vector<RigidMotion> motions;
    motions.reserve(count);
    for (int s = 0; s < count; s++)
        motions.push_back(randomRotation(seed, firstIndex + static_cast<uint64_t>(s)));
    return motions;
}

InternalCoordinates::InternalCoordinates(ZMatrix zMatrixIn) : zMatrix(std::move(zMatrixIn)) {
    for (const ZMatrixRow& row : zMatrix.getRows())
        rows.push_back({row.atom, row.bondPartner, row.anglePartner, row.dihedralPartner});
    int m = getNumInternal();
    isDihedral.resize(m);
    for (int c = 0; c < m; c++)
        isDihedral[c] = zMatrix.getColumnType(c) == InternalCoordinateType::Dihedral;
    clearNormalization();
}

void InternalCoordinates::setNumThreads(int n) {
    if (n < 0)
        throw Error("InternalCoordinates::setNumThreads: numThreads = " + std::to_string(n) +
                    " must be >= 1, or 0 for the hardware concurrency");
    numThreads = n > 0 ? n : std::max(1u, std::thread::hardware_concurrency());
}

void InternalCoordinates::clearNormalization() {
    normalized = false;
    shift.assign(getNumInternal(), 0.0);
    scale.assign(getNumInternal(), 1.0);
    logScaleSum = 0;
}

void InternalCoordinates::setNormalization(std::vector<double> newShift, std::vector<double> newScale) {
    int m = getNumInternal();
    if (static_cast<int>(newShift.size()) != m || static_cast<int>(newScale.size()) != m)
        throw Error("InternalCoordinates::setNormalization: shift has " + std::to_string(newShift.size()) +
                    " and scale " + std::to_string(newScale.size()) + " values; expected getNumInternal() = " +
                    std::to_string(m) + " each");
    double sum = 0;
    for (int c = 0; c < m; c++) {
        if (!std::isfinite(newShift[c]))
            throw Error("InternalCoordinates::setNormalization: shift[" + std::to_string(c) + "] (" +
                        zMatrix.describeColumn(c) + ") is not finite");
        if (!std::isfinite(newScale[c]) || newScale[c] <= 0)
            throw Error("InternalCoordinates::setNormalization: scale[" + std::to_string(c) + "] = " +
                        std::to_string(newScale[c]) + " (" + zMatrix.describeColumn(c) + ") must be finite and > 0");
        if (zMatrix.isCircularColumn(c) && newScale[c] != 1.0)
            throw Error("InternalCoordinates::setNormalization: scale[" + std::to_string(c) + "] = " +
                        std::to_string(newScale[c]) + " but " + zMatrix.describeColumn(c) +
                        " must keep scale 1 (it lives on [-pi, pi))");
        sum += std::log(newScale[c]);
    }
    shift = std::move(newShift);
    scale = std::move(newScale);
    logScaleSum = sum;
    normalized = true;
}

void InternalCoordinates::setNormalization(const double* referenceCartesian, const NormalizationScales& scales) {
    if (referenceCartesian == nullptr)
        throw Error("InternalCoordinates::setNormalization: referenceCartesian is null; expected 3N = " +
                    std::to_string(getNumCartesian()) + " values");
    const double values[3] = {scales.bond, scales.angle, scales.dihedral};
    const char* names[3] = {"bond", "angle", "dihedral"};
    for (int k = 0; k < 3; k++)
        if (!std::isfinite(values[k]) || values[k] <= 0)
            throw Error(std::string("InternalCoordinates::setNormalization: scales.") + names[k] + " = " +
                        std::to_string(values[k]) + " must be finite and > 0");
    int m = getNumInternal();
    std::vector<double> q(m), s(m);
    toInternalRaw(referenceCartesian, q.data());
    for (int c = 0; c < m; c++) {
        InternalCoordinateType type = zMatrix.getColumnType(c);
        bool degenerate = !std::isfinite(q[c]) || (type == InternalCoordinateType::Bond && q[c] <= 0) ||
                          (type == InternalCoordinateType::Angle && std::sin(q[c]) <= 0);
        if (degenerate)
            throw Error("InternalCoordinates::setNormalization: the reference structure gives a degenerate " +
                        zMatrix.describeColumn(c) + " = " + std::to_string(q[c]) + " (coincident or collinear atoms?)");
        s[c] = zMatrix.isCircularColumn(c) ? 1.0 : values[static_cast<int>(zMatrix.getColumnType(c))];
    }
    setNormalization(std::move(q), std::move(s));
}

void InternalCoordinates::normalize(int batch, const double* raw, double* out) const {
    checkBatch(batch, raw, "raw", getNumInternal(), out, "normalized", getNumInternal(), "normalize");
    int m = getNumInternal();
    for (long long i = 0; i < static_cast<long long>(batch) * m; i++) {
        int c = static_cast<int>(i % m);
        double d = raw[i] - shift[c];
        out[i] = (normalized && isDihedral[c] ? wrapAngle(d) : d) / scale[c];
    }
}

void InternalCoordinates::denormalize(int batch, const double* in, double* raw) const {
    checkBatch(batch, in, "normalized", getNumInternal(), raw, "raw", getNumInternal(), "denormalize");
    int m = getNumInternal();
    for (long long i = 0; i < static_cast<long long>(batch) * m; i++) {
        int c = static_cast<int>(i % m);
        raw[i] = in[i] * scale[c] + shift[c];
    }
}

void InternalCoordinates::checkBatch(int batch, const void* in, const char* inName, int inDim, const void* out,
                                     const char* outName, int outDim, const char* function) const {
    std::string where = std::string("InternalCoordinates::") + function + ": ";
    if (batch < 0)
        throw Error(where + "batch = " + std::to_string(batch) + " must be >= 0");
    // A one-atom molecule has no internal coordinates: an empty (null) array is then fine.
    if (batch > 0 && inDim > 0 && in == nullptr)
        throw Error(where + inName + " is null");
    if (batch > 0 && outDim > 0 && out == nullptr)
        throw Error(where + outName + " is null");
}

void InternalCoordinates::toInternalRaw(const double* x, double* q) const {
    int n = static_cast<int>(rows.size());
    for (int r = 1; r < n; r++) {
        const Row& row = rows[r];
        Vector3d a = load(x, row.atom), b = load(x, row.bond);
        q[zMatrix.getBondColumn(r)] = (a - b).norm();
        if (r < 2)
            continue;
        Vector3d c = load(x, row.angle);
        Vector3d u = a - b, v = c - b;
        q[zMatrix.getAngleColumn(r)] = std::atan2(u.cross(v).norm(), u.dot(v));
        if (r < 3)
            continue;
        Vector3d d = load(x, row.dihedral);
        Vector3d b1 = b - a, b2 = c - b, b3 = d - c;
        Vector3d m1 = b1.cross(b2), m2 = b2.cross(b3);
        q[3 * r - 4] = std::atan2(b2.norm() * b1.dot(m2), m1.dot(m2));
    }
}

double InternalCoordinates::logDetRaw(const double* q) const {
    int n = static_cast<int>(rows.size());
    double sum = 0;
    if (convention == JacobianConvention::Full) {
        if (n >= 2)
            sum += 2 * std::log(std::abs(q[0]));
        if (n >= 3)
            sum += 2 * std::log(std::abs(q[1])) + std::log(std::abs(std::sin(q[2])));
    } else if (n >= 3) {
        sum += std::log(std::abs(q[1]));
    }
    for (int r = 3; r < n; r++)
        sum += 2 * std::log(std::abs(q[3 * r - 6])) + std::log(std::abs(std::sin(q[3 * r - 5])));
    return sum;
}

void InternalCoordinates::logDetGradientRaw(const double* q, double weight, double* grad) const {
    int n = static_cast<int>(rows.size());
    if (convention == JacobianConvention::Full) {
        if (n >= 2)
            grad[0] += 2 * weight / q[0];
        if (n >= 3) {
            grad[1] += 2 * weight / q[1];
            grad[2] += weight * std::cos(q[2]) / std::sin(q[2]);
        }
    } else if (n >= 3) {
        grad[1] += weight / q[1];
    }
    for (int r = 3; r < n; r++) {
        grad[3 * r - 6] += 2 * weight / q[3 * r - 6];
        grad[3 * r - 5] += weight * std::cos(q[3 * r - 5]) / std::sin(q[3 * r - 5]);
    }
}

void InternalCoordinates::toInternal(int batch, const double* cartesian, double* internal, double* logDetJ) const {
    checkBatch(batch, cartesian, "cartesian", getNumCartesian(), internal, "internal", getNumInternal(), "toInternal");
    int m = getNumInternal(), dim = getNumCartesian();
    util::parallelFor(batch, numThreads, [&](int begin, int end) {
        for (int s = begin; s < end; s++) {
            double* q = internal + static_cast<long long>(s) * m;
            toInternalRaw(cartesian + static_cast<long long>(s) * dim, q);
            if (logDetJ != nullptr)
                logDetJ[s] = logDetRaw(q) + logScaleSum;
            if (normalized)
                normalize(1, q, q);
        }
    });
}

void InternalCoordinates::placeRaw(const double* q, double* x) const {
    int n = getNumAtoms();
    if (n >= 1)
        store(x, rows[0].atom, Vector3d::Zero());
    if (n >= 2)
        store(x, rows[1].atom, Vector3d(q[0], 0, 0));
    if (n >= 3) {
        // Rows 0 and 1 lie on the x axis, so e1 = +-x and y is a perpendicular in-plane direction.
        Vector3d b = load(x, rows[2].bond), c = load(x, rows[2].angle);
        Vector3d e1 = (c - b).normalized();
        store(x, rows[2].atom, b + q[1] * (std::cos(q[2]) * e1 + std::sin(q[2]) * Vector3d::UnitY()));
    }
    for (int r = 3; r < n; r++) {
        const Row& row = rows[r];
        double length = q[3 * r - 6], theta = q[3 * r - 5], phi = q[3 * r - 4];
        Vector3d b = load(x, row.bond);
        NerfFrame f(b, load(x, row.angle), load(x, row.dihedral));
        double sinTheta = std::sin(theta);
        store(x, row.atom,
              b + length * (-std::cos(theta) * f.e1 + sinTheta * std::cos(phi) * f.e2 + sinTheta * std::sin(phi) * f.n));
    }
}

bool InternalCoordinates::inPrincipalDomain(const double* raw) const {
    const int n = getNumAtoms();
    auto angleInside = [](double theta) { return theta > 0 && theta < M_PI; };
    if (n >= 2 && !(raw[0] > 0))
        return false;
    if (n >= 3 && !(raw[1] > 0 && angleInside(raw[2])))
        return false;
    for (int r = 3; r < n; r++) {
        if (!(raw[3 * r - 6] > 0 && angleInside(raw[3 * r - 5])))
            return false;
        // A dependent dihedral is a real number within pi of its reference (the normalization's shift, else 0).
        const double offset = raw[3 * r - 4] - (normalized ? shift[3 * r - 4] : 0.0);
        if (!zMatrix.isCircularColumn(3 * r - 4) && !(offset >= -M_PI && offset <= M_PI))
            return false;
    }
    return true;
}

void InternalCoordinates::toCartesian(int batch, const double* internal, double* cartesian, double* logDetJ,
                                      const RigidMotion* motions) const {
    checkBatch(batch, internal, "internal", getNumInternal(), cartesian, "cartesian", getNumCartesian(), "toCartesian");
    int m = getNumInternal(), dim = getNumCartesian(), n = getNumAtoms();
    util::parallelFor(batch, numThreads, [&](int begin, int end) {
        std::vector<double> q(m);
        for (int s = begin; s < end; s++) {
            denormalize(1, internal + static_cast<long long>(s) * m, q.data());
            double* x = cartesian + static_cast<long long>(s) * dim;
            if (!inPrincipalDomain(q.data())) {
                std::fill(x, x + dim, std::numeric_limits<double>::quiet_NaN());
                if (logDetJ != nullptr)
                    logDetJ[s] = std::numeric_limits<double>::quiet_NaN();
                continue;
            }
            placeRaw(q.data(), x);
            if (logDetJ != nullptr)
                logDetJ[s] = logDetRaw(q.data()) + logScaleSum;
            if (motions != nullptr)
                for (int a = 0; a < n; a++)
                    store(x, a, motions[s].rotation * load(x, a) + motions[s].translation);
        }
    });
}

void InternalCoordinates::toCartesianBackward(int batch, const double* internal, const double* dLdCartesian,
                                              const double* dLdLogDetJ, double* dLdInternal,
                                              const RigidMotion* motions) const {
    checkBatch(batch, internal, "internal", getNumInternal(), dLdInternal, "dLdInternal", getNumInternal(), "toCartesianBackward");
    int m = getNumInternal(), dim = getNumCartesian(), n = getNumAtoms();
    util::parallelFor(batch, numThreads, [&](int begin, int end) {
        std::vector<double> q(m), x(dim), g(dim);
        for (int s = begin; s < end; s++) {
            const double* z = internal + static_cast<long long>(s) * m;
            double* gq = dLdInternal + static_cast<long long>(s) * m;
            // Recompute the canonical-frame positions: the adjoint sweep needs every frame.
            denormalize(1, z, q.data());
            placeRaw(q.data(), x.data());
            std::fill(gq, gq + m, 0.0);
            if (dLdCartesian != nullptr) {
                const double* gx = dLdCartesian + static_cast<long long>(s) * dim;
                for (int a = 0; a < n; a++)
                    store(g.data(), a, motions != nullptr ? Vector3d(motions[s].rotation.transpose() * load(gx, a))
                                                          : load(gx, a));
            } else {
                std::fill(g.begin(), g.end(), 0.0);
            }
            for (int r = n - 1; r >= 3; r--) {
                const Row& row = rows[r];
                double length = q[3 * r - 6], theta = q[3 * r - 5], phi = q[3 * r - 4];
                Vector3d gA = load(g.data(), row.atom);
                NerfFrame f(load(x.data(), row.bond), load(x.data(), row.angle), load(x.data(), row.dihedral));
                double sinT = std::sin(theta), cosT = std::cos(theta), sinP = std::sin(phi), cosP = std::cos(phi);
                double d0 = -length * cosT, d1 = length * sinT * cosP, d2 = length * sinT * sinP;
                double g0 = gA.dot(f.e1), g1 = gA.dot(f.e2), g2 = gA.dot(f.n);
                gq[3 * r - 6] += -cosT * g0 + sinT * cosP * g1 + sinT * sinP * g2;
                gq[3 * r - 5] += length * (sinT * g0 + cosT * cosP * g1 + cosT * sinP * g2);
                gq[3 * r - 4] += length * sinT * (-sinP * g1 + cosP * g2);
                // out = b + d0 e1 + d1 e2 + d2 n with e2 = n x e1, n = unit(w x e1), w = c - d, e1 = unit(b - c).
                Vector3d gE1 = d0 * gA, gE2 = d1 * gA, gN = d2 * gA;
                gN += f.e1.cross(gE2);
                gE1 += gE2.cross(f.n);
                Vector3d gNN = (gN - f.n * f.n.dot(gN)) / f.lengthN;
                Vector3d gW = f.e1.cross(gNN);
                gE1 += gNN.cross(f.w);
                Vector3d gV = (gE1 - f.e1 * f.e1.dot(gE1)) / f.lengthV;
                accumulate(g.data(), row.bond, gA + gV);
                accumulate(g.data(), row.angle, gW - gV);
                accumulate(g.data(), row.dihedral, -gW);
            }
            if (n >= 3) {
                const Row& row = rows[2];
                Vector3d gA = load(g.data(), row.atom);
                Vector3d b = load(x.data(), row.bond), v = load(x.data(), row.angle) - b;
                double lengthV = v.norm();
                Vector3d e1 = v / lengthV;
                double cosT = std::cos(q[2]), sinT = std::sin(q[2]);
                gq[1] += gA.dot(cosT * e1 + sinT * Vector3d::UnitY());
                gq[2] += q[1] * gA.dot(-sinT * e1 + cosT * Vector3d::UnitY());
                Vector3d gE1 = q[1] * cosT * gA;
                Vector3d gV = (gE1 - e1 * e1.dot(gE1)) / lengthV;
                accumulate(g.data(), row.bond, gA - gV);
                accumulate(g.data(), row.angle, gV);
            }
            if (n >= 2)
                gq[0] += g[3 * rows[1].atom]; // row 1 sits at (q0, 0, 0)
            if (dLdLogDetJ != nullptr)
                logDetGradientRaw(q.data(), dLdLogDetJ[s], gq);
            for (int c = 0; c < m; c++)
                gq[c] *= scale[c];
        }
    });
}

void InternalCoordinates::toInternalBackward(int batch, const double* cartesian, const double* dLdInternal,
                                             const double* dLdLogDetJ, double* dLdCartesian) const {
    checkBatch(batch, cartesian, "cartesian", getNumCartesian(), dLdCartesian, "dLdCartesian", getNumCartesian(), "toInternalBackward");
    int m = getNumInternal(), dim = getNumCartesian(), n = getNumAtoms();
    util::parallelFor(batch, numThreads, [&](int begin, int end) {
        std::vector<double> q(m), gq(m);
        for (int s = begin; s < end; s++) {
            const double* x = cartesian + static_cast<long long>(s) * dim;
            double* g = dLdCartesian + static_cast<long long>(s) * dim;
            for (int c = 0; c < m; c++)
                gq[c] = dLdInternal != nullptr ? dLdInternal[static_cast<long long>(s) * m + c] / scale[c] : 0.0;
            if (dLdLogDetJ != nullptr) {
                toInternalRaw(x, q.data());
                logDetGradientRaw(q.data(), dLdLogDetJ[s], gq.data());
            }
            std::fill(g, g + dim, 0.0);
            for (int r = 1; r < n; r++) {
                const Row& row = rows[r];
                Vector3d a = load(x, row.atom), b = load(x, row.bond);
                Vector3d u = a - b;
                Vector3d gBond = gq[zMatrix.getBondColumn(r)] * u / u.norm();
                accumulate(g, row.atom, gBond);
                accumulate(g, row.bond, -gBond);
                if (r < 2)
                    continue;
                // d(theta)/du = (u x k) / (|u|^2 |k|), d(theta)/dv = (k x v) / (|v|^2 |k|), k = u x v.
                Vector3d c = load(x, row.angle), v = c - b, k = u.cross(v);
                double lengthK = k.norm(), gTheta = gq[zMatrix.getAngleColumn(r)];
                Vector3d gU = gTheta * u.cross(k) / (u.squaredNorm() * lengthK);
                Vector3d gV = gTheta * k.cross(v) / (v.squaredNorm() * lengthK);
                accumulate(g, row.atom, gU);
                accumulate(g, row.angle, gV);
                accumulate(g, row.bond, -gU - gV);
                if (r < 3)
                    continue;
                // Dihedral (i, j, k, l) = (atom, bond, angle, dihedral): the classic closed form.
                Vector3d d = load(x, row.dihedral);
                Vector3d b1 = b - a, b2 = c - b, b3 = d - c;
                Vector3d m1 = b1.cross(b2), m2 = b2.cross(b3);
                double b2Squared = b2.squaredNorm(), b2Length = std::sqrt(b2Squared), gPhi = gq[3 * r - 4];
                Vector3d gI = -gPhi * b2Length / m1.squaredNorm() * m1;
                Vector3d gL = gPhi * b2Length / m2.squaredNorm() * m2;
                double p = b1.dot(b2) / b2Squared, t = b3.dot(b2) / b2Squared;
                accumulate(g, row.atom, gI);
                accumulate(g, row.bond, t * gL - (1 + p) * gI);
                accumulate(g, row.angle, p * gI - (1 + t) * gL);
                accumulate(g, row.dihedral, gL);
            }
        }
    });
}

void InternalCoordinates::toCanonicalFrame(int batch, const double* cartesian, double* canonical) const {
    checkBatch(batch, cartesian, "cartesian", getNumCartesian(), canonical, "canonical", getNumCartesian(), "toCanonicalFrame");
    int dim = getNumCartesian(), n = getNumAtoms();
    if (n == 0)
        return;
    util::parallelFor(batch, numThreads, [&](int begin, int end) {
        for (int s = begin; s < end; s++) {
            const double* x = cartesian + static_cast<long long>(s) * dim;
            double* out = canonical + static_cast<long long>(s) * dim;
            Vector3d origin = load(x, rows[0].atom);
            Eigen::Matrix3d rotation = Eigen::Matrix3d::Identity();
            if (n == 2) {
                rotation = Eigen::Quaterniond::FromTwoVectors(load(x, rows[1].atom) - origin, Vector3d::UnitX())
                               .toRotationMatrix();
            } else if (n >= 3) {
                Vector3d e1 = (load(x, rows[1].atom) - origin).normalized();
                Vector3d w = load(x, rows[2].atom) - origin;
                Vector3d e2 = (w - e1 * e1.dot(w)).normalized();
                rotation.row(0) = e1;
                rotation.row(1) = e2;
                rotation.row(2) = e1.cross(e2);
            }
            for (int a = 0; a < n; a++)
                store(out, a, rotation * (load(x, a) - origin));
        }
    });
}

namespace {

void checkColumns(const BatchMatrix& matrix, int expected, const char* name, const char* function) {
    if (matrix.cols() != expected)
        throw Error(std::string("InternalCoordinates::") + function + ": " + name + " has " +
                    std::to_string(matrix.cols()) + " columns; expected " + std::to_string(expected));
}

void checkLength(long long actual, long long expected, const char* name, const char* function) {
    if (actual != expected)
        throw Error(std::string("InternalCoordinates::") + function + ": " + name + " has " + std::to_string(actual) +
                    " entries; expected one per sample (" + std::to_string(expected) + ")");
}

} // namespace

BatchMatrix InternalCoordinates::toInternal(const BatchMatrix& cartesian, Eigen::VectorXd* logDetJ) const {
    checkColumns(cartesian, getNumCartesian(), "cartesian", "toInternal");
    int batch = static_cast<int>(cartesian.rows());
    BatchMatrix internal(batch, getNumInternal());
    if (logDetJ != nullptr)
        logDetJ->resize(batch);
    toInternal(batch, cartesian.data(), internal.data(), logDetJ != nullptr ? logDetJ->data() : nullptr);
    return internal;
}

BatchMatrix InternalCoordinates::toCartesian(const BatchMatrix& internal, Eigen::VectorXd* logDetJ,
                                             const std::vector<RigidMotion>* motions) const {
    checkColumns(internal, getNumInternal(), "internal", "toCartesian");
    int batch = static_cast<int>(internal.rows());
    if (motions != nullptr)
        checkLength(static_cast<long long>(motions->size()), batch, "motions", "toCartesian");
    BatchMatrix cartesian(batch, getNumCartesian());
    if (logDetJ != nullptr)
        logDetJ->resize(batch);
    toCartesian(batch, internal.data(), cartesian.data(), logDetJ != nullptr ? logDetJ->data() : nullptr,
                motions != nullptr ? motions->data() : nullptr);
    return cartesian;
}

BatchMatrix InternalCoordinates::toCartesianBackward(const BatchMatrix& internal, const BatchMatrix& dLdCartesian,
                                                     const Eigen::VectorXd* dLdLogDetJ,
                                                     const std::vector<RigidMotion>* motions) const {
    checkColumns(internal, getNumInternal(), "internal", "toCartesianBackward");
    checkColumns(dLdCartesian, getNumCartesian(), "dLdCartesian", "toCartesianBackward");
    int batch = static_cast<int>(internal.rows());
    checkLength(dLdCartesian.rows(), batch, "dLdCartesian", "toCartesianBackward");
    if (dLdLogDetJ != nullptr)
        checkLength(dLdLogDetJ->size(), batch, "dLdLogDetJ", "toCartesianBackward");
    if (motions != nullptr)
        checkLength(static_cast<long long>(motions->size()), batch, "motions", "toCartesianBackward");
    BatchMatrix dLdInternal(batch, getNumInternal());
    toCartesianBackward(batch, internal.data(), dLdCartesian.data(),
                        dLdLogDetJ != nullptr ? dLdLogDetJ->data() : nullptr, dLdInternal.data(),
                        motions != nullptr ? motions->data() : nullptr);
    return dLdInternal;
}

BatchMatrix InternalCoordinates::toInternalBackward(const BatchMatrix& cartesian, const BatchMatrix& dLdInternal,
                                                    const Eigen::VectorXd* dLdLogDetJ) const {
    checkColumns(cartesian, getNumCartesian(), "cartesian", "toInternalBackward");
    checkColumns(dLdInternal, getNumInternal(), "dLdInternal", "toInternalBackward");
    int batch = static_cast<int>(cartesian.rows());
    checkLength(dLdInternal.rows(), batch, "dLdInternal", "toInternalBackward");
    if (dLdLogDetJ != nullptr)
        checkLength(dLdLogDetJ->size(), batch, "dLdLogDetJ", "toInternalBackward");
    BatchMatrix dLdCartesian(batch, getNumCartesian());
    toInternalBackward(batch, cartesian.data(), dLdInternal.data(),
                       dLdLogDetJ != nullptr ? dLdLogDetJ->data() : nullptr, dLdCartesian.data());
    return dLdCartesian;
}

BatchMatrix InternalCoordinates::toCanonicalFrame(const BatchMatrix& cartesian) const {
    checkColumns(cartesian, getNumCartesian(), "cartesian", "toCanonicalFrame");
    BatchMatrix canonical(cartesian.rows(), getNumCartesian());
    toCanonicalFrame(static_cast<int>(cartesian.rows()), cartesian.data(), canonical.data());
    return canonical;
}

} // namespace cgflow::coords
