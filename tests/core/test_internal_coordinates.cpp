#include "AlanineGeometry.h"
#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/Features.h"
#include "cgflow/coords/InternalCoordinates.h"
#include "cgflow/coords/ZMatrix.h"

#include <Eigen/Geometry>
#include <Eigen/LU>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

using cgflow::Error;
using cgflow::coords::BatchMatrix;
using cgflow::coords::InternalCoordinates;
using cgflow::coords::InternalCoordinateType;
using cgflow::coords::RigidMotion;
using cgflow::coords::ZMatrix;
using Eigen::Vector3d;
using Convention = InternalCoordinates::JacobianConvention;

namespace {

const double pi = 3.14159265358979323846;

using cgflowtest::errorMessage;
using cgflowtest::alanineBonds;
using cgflowtest::alanineTleap;

using Bonds = std::vector<std::pair<int, int>>;


struct Molecule {
    int numAtoms = 0;
    Bonds bonds;
};

/**
 * A random connected graph: a tree (each atom bonded to an earlier one with fewer than 4 bonds) plus
 * `rings` extra bonds that close cycles.
 */
Molecule randomMolecule(std::mt19937_64& rng, int numAtoms, int rings) {
    Molecule m;
    m.numAtoms = numAtoms;
    std::vector<int> degree(numAtoms, 0);
    for (int i = 1; i < numAtoms; i++) {
        int parent;
        do
            parent = std::uniform_int_distribution<int>(0, i - 1)(rng);
        while (degree[parent] >= 4);
        m.bonds.push_back({parent, i});
        degree[parent]++;
        degree[i]++;
    }
    for (int k = 0; k < rings && numAtoms > 4; k++) {
        int a = std::uniform_int_distribution<int>(0, numAtoms - 1)(rng);
        int b = std::uniform_int_distribution<int>(0, numAtoms - 1)(rng);
        bool exists = a == b;
        for (auto [i, j] : m.bonds)
            exists = exists || (i == a && j == b) || (i == b && j == a);
        if (!exists)
            m.bonds.push_back({a, b});
    }
    return m;
}

Vector3d at(const std::vector<double>& x, int atom, long long offset = 0) {
    return Vector3d(x[offset + 3 * atom], x[offset + 3 * atom + 1], x[offset + 3 * atom + 2]);
}

/**
 * Positions built here (not by the library) by a random walk over the tree bonds: bond lengths in
 * [0.09, 0.16] nm and every angle at the parent in [0.5, pi - 0.5], then a random rigid motion.
 */
std::vector<double> randomPositions(std::mt19937_64& rng, const Molecule& m) {
    std::uniform_real_distribution<double> uniform(0, 1);
    std::normal_distribution<double> normal;
    std::vector<double> x(3 * m.numAtoms);
    std::vector<std::vector<int>> placedNeighbours(m.numAtoms);
    for (size_t k = 0; k < m.bonds.size() && k + 1 < static_cast<size_t>(m.numAtoms); k++) {
        auto [parent, child] = m.bonds[k]; // tree bonds come first, parent < child
        Vector3d dir;
        for (int attempt = 0; attempt < 1000; attempt++) {
            dir = Vector3d(normal(rng), normal(rng), normal(rng)).normalized();
            bool ok = true;
            for (int other : placedNeighbours[parent]) {
                double angle = std::acos(dir.dot((at(x, other) - at(x, parent)).normalized()));
                ok = ok && angle > 0.5 && angle < pi - 0.5;
            }
            if (ok)
                break;
        }
        Vector3d p = at(x, parent) + (0.09 + 0.07 * uniform(rng)) * dir;
        for (int d = 0; d < 3; d++)
            x[3 * child + d] = p[d];
        placedNeighbours[parent].push_back(child);
        placedNeighbours[child].push_back(parent);
    }
    RigidMotion motion = RigidMotion::randomRotation(rng(), 0);
    for (int a = 0; a < m.numAtoms; a++) {
        Vector3d p = motion.rotation * at(x, a) + Vector3d(uniform(rng), uniform(rng), uniform(rng));
        for (int d = 0; d < 3; d++)
            x[3 * a + d] = p[d];
    }
    return x;
}

/** Random raw internal coordinates: bonds in [0.09, 0.16] nm, angles in [0.5, pi-0.5], dihedrals in (-pi, pi). */
std::vector<double> randomInternal(std::mt19937_64& rng, const ZMatrix& z, int batch) {
    std::uniform_real_distribution<double> uniform(0, 1);
    int m = z.getNumInternal();
    std::vector<double> q(static_cast<size_t>(batch) * m);
    for (int s = 0; s < batch; s++)
        for (int c = 0; c < m; c++) {
            double u = uniform(rng);
            switch (z.getColumnType(c)) {
            case InternalCoordinateType::Bond: q[s * m + c] = 0.09 + 0.07 * u; break;
            case InternalCoordinateType::Angle: q[s * m + c] = 0.5 + (pi - 1) * u; break;
            case InternalCoordinateType::Dihedral: q[s * m + c] = pi * (2 * u - 1); break;
            }
        }
    return q;
}

/** The canonical frame computed independently of the library: Gram-Schmidt on the first three rows' atoms. */
std::vector<double> canonicalFrame(const ZMatrix& z, const std::vector<double>& x, long long offset) {
    int n = z.getNumAtoms();
    Vector3d origin = at(x, z.getRow(0).atom, offset);
    Vector3d e1 = (at(x, z.getRow(1).atom, offset) - origin).normalized();
    Vector3d w = at(x, z.getRow(2).atom, offset) - origin;
    Vector3d e2 = (w - w.dot(e1) * e1).normalized();
    Vector3d e3 = e1.cross(e2);
    std::vector<double> out(3 * n);
    for (int a = 0; a < n; a++) {
        Vector3d p = at(x, a, offset) - origin;
        out[3 * a] = p.dot(e1);
        out[3 * a + 1] = p.dot(e2);
        out[3 * a + 2] = p.dot(e3);
    }
    return out;
}

double maxPairDistanceError(const std::vector<double>& x, long long ox, const std::vector<double>& y, long long oy,
                            int n) {
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            worst = std::max(worst, std::abs((at(x, i, ox) - at(x, j, ox)).norm() - (at(y, i, oy) - at(y, j, oy)).norm()));
    return worst;
}

double angleDifference(double a, double b) {
    double d = std::fmod(a - b, 2 * pi);
    if (d > pi)
        d -= 2 * pi;
    if (d < -pi)
        d += 2 * pi;
    return d;
}

/** Every column of a raw batch equal to the reference, dihedrals modulo 2 pi. */
void expectInternalEqual(const ZMatrix& z, const std::vector<double>& a, const std::vector<double>& b, double tol) {
    ASSERT_EQ(a.size(), b.size());
    int m = z.getNumInternal();
    for (size_t i = 0; i < a.size(); i++) {
        int c = static_cast<int>(i % m);
        double d = z.getColumnType(c) == InternalCoordinateType::Dihedral ? angleDifference(a[i], b[i]) : a[i] - b[i];
        ASSERT_NEAR(d, 0.0, tol) << "sample " << i / m << ", " << z.describeColumn(c);
    }
}

std::vector<double> toInternal(const InternalCoordinates& ic, const std::vector<double>& x,
                               std::vector<double>* logDet = nullptr) {
    int batch = static_cast<int>(x.size()) / ic.getNumCartesian();
    std::vector<double> q(static_cast<size_t>(batch) * ic.getNumInternal());
    if (logDet != nullptr)
        logDet->resize(batch);
    ic.toInternal(batch, x.data(), q.data(), logDet != nullptr ? logDet->data() : nullptr);
    return q;
}

std::vector<double> toCartesian(const InternalCoordinates& ic, const std::vector<double>& q,
                                std::vector<double>* logDet = nullptr, const RigidMotion* motions = nullptr) {
    int batch = ic.getNumInternal() > 0 ? static_cast<int>(q.size()) / ic.getNumInternal() : 1;
    std::vector<double> x(static_cast<size_t>(batch) * ic.getNumCartesian());
    if (logDet != nullptr)
        logDet->resize(batch);
    ic.toCartesian(batch, q.data(), x.data(), logDet != nullptr ? logDet->data() : nullptr, motions);
    return x;
}

/** The zero-centred internal coordinates of a molecule near the reference: z ~ N(0, 0.5^2) per column. */
std::vector<double> randomNormalized(std::mt19937_64& rng, const InternalCoordinates& ic, int batch) {
    std::normal_distribution<double> normal(0, 0.5);
    std::vector<double> z(static_cast<size_t>(batch) * ic.getNumInternal());
    for (double& v : z)
        v = normal(rng);
    return z;
}

/**
 * Alanine dipeptide built from ZMatrix::alanineDipeptide() with standard bond lengths (nm) and
 * angles (109.47 deg at sp3 carbons, 120 deg at the sp2 C and N) and the dihedrals of the tleap
 * structure.
 */
std::vector<double> alanineStandardGeometry() {
    ZMatrix z = ZMatrix::alanineDipeptide();
    InternalCoordinates ic(z);
    std::vector<double> q = toInternal(ic, alanineTleap);
    const std::vector<char> element = {'H', 'C', 'H', 'H', 'C', 'O', 'N', 'H', 'C', 'H', 'C',
                                       'H', 'H', 'H', 'C', 'O', 'N', 'H', 'C', 'H', 'H', 'H'};
    const std::vector<bool> sp2 = {false, false, false, false, true,  false, true,  false, false, false, false,
                                   false, false, false, true,  false, true,  false, false, false, false, false};
    for (int c = 0; c < z.getNumInternal(); c++) {
        std::vector<int> atoms = z.getColumnAtoms(c);
        if (z.getColumnType(c) == InternalCoordinateType::Bond) {
            char a = element[atoms[0]], b = element[atoms[1]];
            if (a == 'H' || b == 'H')
                q[c] = (a == 'N' || b == 'N') ? 0.101 : 0.109;
            else if (a == 'O' || b == 'O')
                q[c] = 0.123;
            else if (a == 'N' || b == 'N')
                q[c] = (sp2[atoms[0]] && sp2[atoms[1]]) ? 0.1335 : 0.1449;
            else
                q[c] = 0.1522;
        } else if (z.getColumnType(c) == InternalCoordinateType::Angle) {
            q[c] = sp2[atoms[1]] ? 2 * pi / 3 : std::acos(-1.0 / 3);
        }
    }
    return toCartesian(ic, q);
}

} // namespace

TEST(InternalCoordinates, ValuesMatchFeatures) {
    // toInternal against the independent implementation in Features.
    std::mt19937_64 rng(11);
    Molecule m = randomMolecule(rng, 12, 1);
    ZMatrix z = ZMatrix::fromBonds(m.numAtoms, m.bonds);
    InternalCoordinates ic(z);
    std::vector<double> x = randomPositions(rng, m);
    std::vector<double> q = toInternal(ic, x);
    using cgflow::coords::Feature;
    using cgflow::coords::FeatureType;
    for (int c = 0; c < z.getNumInternal(); c++) {
        std::vector<int> atoms = z.getColumnAtoms(c);
        Feature f{atoms.size() == 2 ? FeatureType::Distance : atoms.size() == 3 ? FeatureType::Angle : FeatureType::Dihedral,
                  atoms};
        double value[2];
        cgflow::coords::computeFeatures({f}, x.data(), cgflow::coords::PeriodicBox(), value);
        double expected = f.type == FeatureType::Dihedral ? std::atan2(value[1], value[0]) : value[0];
        EXPECT_NEAR(q[c], expected, 1e-12) << z.describeColumn(c);
    }
}

TEST(InternalCoordinates, CartesianRoundTripRandomMolecules) {
    std::mt19937_64 rng(1);
    for (int trial = 0; trial < 6; trial++) {
        Molecule m = randomMolecule(rng, 4 + 5 * trial, trial % 3);
        ZMatrix z = ZMatrix::fromBonds(m.numAtoms, m.bonds);
        InternalCoordinates ic(z);
        const int batch = 5;
        std::vector<double> x;
        for (int s = 0; s < batch; s++) {
            std::vector<double> one = randomPositions(rng, m);
            x.insert(x.end(), one.begin(), one.end());
        }
        std::vector<double> back = toCartesian(ic, toInternal(ic, x));
        std::vector<double> canonical(x.size());
        ic.toCanonicalFrame(batch, x.data(), canonical.data());
        int dim = 3 * m.numAtoms;
        for (int s = 0; s < batch; s++) {
            std::vector<double> expected = canonicalFrame(z, x, static_cast<long long>(s) * dim);
            for (int i = 0; i < dim; i++) {
                ASSERT_NEAR(back[s * dim + i], expected[i], 1e-10) << "trial " << trial << " sample " << s;
                ASSERT_NEAR(canonical[s * dim + i], expected[i], 1e-10) << "trial " << trial << " sample " << s;
            }
            EXPECT_LT(maxPairDistanceError(back, s * dim, x, s * dim, m.numAtoms), 1e-10);
        }
    }
}

TEST(InternalCoordinates, CartesianRoundTripAlanineDipeptide) {
    std::vector<double> standard = alanineStandardGeometry();
    for (const ZMatrix& z : {ZMatrix::alanineDipeptide(), ZMatrix::fromBonds(22, alanineBonds)}) {
        InternalCoordinates ic(z);
        for (const std::vector<double>* geometry : std::vector<const std::vector<double>*>{&alanineTleap, &standard}) {
            // The structure and four random rigid motions of it.
            std::vector<double> x = *geometry;
            for (uint64_t k = 0; k < 4; k++) {
                RigidMotion motion = RigidMotion::randomRotation(5, k);
                motion.translation = Vector3d(0.3 * k, -0.2, 1.0);
                for (int a = 0; a < 22; a++) {
                    Vector3d p = motion.rotation * at(*geometry, a) + motion.translation;
                    x.insert(x.end(), {p[0], p[1], p[2]});
                }
            }
            std::vector<double> back = toCartesian(ic, toInternal(ic, x));
            for (int s = 0; s < 5; s++) {
                std::vector<double> expected = canonicalFrame(z, x, 66LL * s);
                for (int i = 0; i < 66; i++)
                    ASSERT_NEAR(back[66 * s + i], expected[i], 1e-10);
                EXPECT_LT(maxPairDistanceError(back, 66LL * s, *geometry, 0, 22), 1e-10);
            }
        }
    }
    // The standard geometry has the standard bonds and no clashes.
    for (auto [i, j] : alanineBonds) {
        double d = (at(standard, i) - at(standard, j)).norm();
        EXPECT_GT(d, 0.100);
        EXPECT_LT(d, 0.153);
    }
    for (int i = 0; i < 22; i++)
        for (int j = i + 1; j < 22; j++)
            EXPECT_GT((at(standard, i) - at(standard, j)).norm(), 0.09);
}

TEST(InternalCoordinates, InternalRoundTrip) {
    std::mt19937_64 rng(2);
    std::vector<ZMatrix> zs = {ZMatrix::alanineDipeptide(), ZMatrix::fromBonds(22, alanineBonds)};
    for (int trial = 0; trial < 4; trial++) {
        Molecule m = randomMolecule(rng, 5 + 6 * trial, trial % 2);
        zs.push_back(ZMatrix::fromBonds(m.numAtoms, m.bonds));
    }
    for (const ZMatrix& z : zs) {
        InternalCoordinates ic(z);
        std::vector<double> q = randomInternal(rng, z, 7);
        expectInternalEqual(z, toInternal(ic, toCartesian(ic, q)), q, 1e-10);
        // With a random rigid motion applied after the placement, too.
        std::vector<RigidMotion> motions = RigidMotion::randomRotations(3, 7);
        expectInternalEqual(z, toInternal(ic, toCartesian(ic, q, nullptr, motions.data())), q, 1e-10);
    }
}

TEST(InternalCoordinates, TinyMolecules) {
    // An empty Z-matrix is a valid (if useless) molecule: nothing to do, nothing to crash on.
    InternalCoordinates empty{ZMatrix()};
    std::vector<double> none;
    empty.toCanonicalFrame(3, nullptr, nullptr);
    EXPECT_EQ(toCartesian(empty, none).size(), 0u);

    for (int n = 1; n <= 3; n++) {
        Bonds bonds;
        for (int i = 1; i < n; i++)
            bonds.push_back({0, i});
        InternalCoordinates ic(ZMatrix::fromBonds(n, bonds));
        std::vector<double> q = {0.1, 0.12, 1.9};
        q.resize(ic.getNumInternal());
        std::vector<double> logDet;
        std::vector<double> x = toCartesian(ic, q, &logDet);
        EXPECT_EQ(static_cast<int>(x.size()), 3 * n);
        expectInternalEqual(ic.getZMatrix(), toInternal(ic, x), q, 1e-14);
        double expected = n == 1 ? 0 : n == 2 ? 2 * std::log(0.1) : 2 * std::log(0.1 * 0.12) + std::log(std::sin(1.9));
        EXPECT_NEAR(logDet[0], expected, 1e-14);
    }
}

/**
 * Frame convention: toCartesian builds the molecule in the canonical frame, where row 0's atom is
 * fixed at the origin, row 1's atom has only its x free and row 2's atom only x and y. Those 3N-6
 * Cartesian coordinates and the 3N-6 internal coordinates are both complete descriptions of a
 * molecule in that frame, so the map between them is square: we difference toCartesian column by
 * column (central differences) and take log|det| of the resulting (3N-6) x (3N-6) matrix.
 */
double logDetFrameNumerical(const InternalCoordinates& ic, const std::vector<double>& q0) {
    const ZMatrix& z = ic.getZMatrix();
    int m = ic.getNumInternal();
    std::vector<int> free;
    for (int r = 1; r < z.getNumAtoms(); r++)
        for (int d = 0; d < std::min(r, 3); d++)
            free.push_back(3 * z.getRow(r).atom + d);
    EXPECT_EQ(static_cast<int>(free.size()), m);
    Eigen::MatrixXd jacobian(m, m);
    const double h = 1e-6;
    for (int c = 0; c < m; c++) {
        std::vector<double> plus = q0, minus = q0;
        plus[c] += h;
        minus[c] -= h;
        std::vector<double> xp = toCartesian(ic, plus), xm = toCartesian(ic, minus);
        for (int i = 0; i < m; i++)
            jacobian(i, c) = (xp[free[i]] - xm[free[i]]) / (2 * h);
    }
    return std::log(std::abs(jacobian.fullPivLu().determinant()));
}

/**
 * Full convention: add the six rigid-body parameters, x = R(omega) x_canonical(q) + t with R the
 * exponential map of omega, so (q, t, omega) -> x is square (3N x 3N); at omega = 0 the Haar
 * measure has unit density in omega, and log|det| of this Jacobian is the log-density factor between
 * Cartesian space and internal coordinates with the rigid motions integrated out.
 */
double logDetFullNumerical(const InternalCoordinates& ic, const std::vector<double>& q0) {
    int m = ic.getNumInternal(), dim = ic.getNumCartesian();
    auto place = [&](const std::vector<double>& q, const Vector3d& t, const Vector3d& omega) {
        RigidMotion motion;
        if (omega.norm() > 0)
            motion.rotation = Eigen::AngleAxisd(omega.norm(), omega.normalized()).toRotationMatrix();
        motion.translation = t;
        return toCartesian(ic, q, nullptr, &motion);
    };
    Eigen::MatrixXd jacobian(dim, dim);
    const double h = 1e-6;
    for (int c = 0; c < m + 6; c++) {
        std::vector<double> qp = q0, qm = q0;
        Vector3d tp = Vector3d::Zero(), tm = Vector3d::Zero(), op = Vector3d::Zero(), om = Vector3d::Zero();
        if (c < m) {
            qp[c] += h;
            qm[c] -= h;
        } else if (c < m + 3) {
            tp[c - m] = h;
            tm[c - m] = -h;
        } else {
            op[c - m - 3] = h;
            om[c - m - 3] = -h;
        }
        std::vector<double> xp = place(qp, tp, op), xm = place(qm, tm, om);
        for (int i = 0; i < dim; i++)
            jacobian(i, c) = (xp[i] - xm[i]) / (2 * h);
    }
    return std::log(std::abs(jacobian.fullPivLu().determinant()));
}

TEST(InternalCoordinates, LogDetMatchesNumericalJacobian) {
    std::mt19937_64 rng(3);
    Molecule m = randomMolecule(rng, 9, 1);
    std::vector<double> randomReference = randomPositions(rng, m);
    std::vector<ZMatrix> zs = {ZMatrix::alanineDipeptide(), ZMatrix::fromBonds(m.numAtoms, m.bonds)};
    for (const ZMatrix& z : zs) {
        for (bool normalized : {false, true}) {
            InternalCoordinates ic(z);
            std::vector<double> q;
            if (normalized) {
                ic.setNormalization(z.getNumAtoms() == 22 ? alanineTleap.data() : randomReference.data());
                q = randomNormalized(rng, ic, 1);
            } else {
                q = randomInternal(rng, z, 1);
            }
            for (Convention convention : {Convention::Frame, Convention::Full}) {
                ic.setJacobianConvention(convention);
                std::vector<double> logDet;
                toCartesian(ic, q, &logDet);
                double numerical = convention == Convention::Frame ? logDetFrameNumerical(ic, q) : logDetFullNumerical(ic, q);
                EXPECT_NEAR(logDet[0], numerical, 1e-6)
                    << (convention == Convention::Frame ? "Frame" : "Full") << (normalized ? " normalized" : " raw")
                    << " atoms " << z.getNumAtoms();
                // toInternal reports the same quantity at the same point.
                std::vector<double> logDetBack;
                toInternal(ic, toCartesian(ic, q), &logDetBack);
                EXPECT_NEAR(logDetBack[0], logDet[0], 1e-9);
            }
        }
    }
}

TEST(InternalCoordinates, JacobianConventionsDifferByTheReferenceTerm) {
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    std::vector<double> q = toInternal(ic, alanineTleap);
    std::vector<double> full, frame;
    toCartesian(ic, q, &full);
    ic.setJacobianConvention(Convention::Frame);
    toCartesian(ic, q, &frame);
    EXPECT_NEAR(full[0] - frame[0], std::log(q[0] * q[0] * q[1] * std::sin(q[2])), 1e-12);
}

TEST(InternalCoordinates, ToCartesianBackwardMatchesFiniteDifferences) {
    std::mt19937_64 rng(4);
    std::normal_distribution<double> normal;
    Molecule mol = randomMolecule(rng, 10, 1);
    for (const ZMatrix& z : {ZMatrix::alanineDipeptide(), ZMatrix::fromBonds(mol.numAtoms, mol.bonds)}) {
        for (int variant = 0; variant < 3; variant++) {
            // variant 0: raw, Full; 1: normalized, Frame, with rigid motions; 2: normalized, Full, motions.
            InternalCoordinates ic(z);
            ic.setJacobianConvention(variant == 1 ? Convention::Frame : Convention::Full);
            const int batch = 3;
            std::vector<double> q;
            if (variant == 0) {
                q = randomInternal(rng, z, batch);
            } else {
                ic.setNormalization(toCartesian(InternalCoordinates(z), randomInternal(rng, z, 1)).data());
                q = randomNormalized(rng, ic, batch);
            }
            std::vector<RigidMotion> motions = RigidMotion::randomRotations(9, batch);
            for (RigidMotion& motion : motions)
                motion.translation = Vector3d(normal(rng), normal(rng), normal(rng));
            const RigidMotion* moves = variant == 0 ? nullptr : motions.data();
            int m = ic.getNumInternal(), dim = ic.getNumCartesian();
            std::vector<double> gx(static_cast<size_t>(batch) * dim), gLogDet(batch);
            for (double& v : gx)
                v = normal(rng);
            for (double& v : gLogDet)
                v = normal(rng);
            // L = sum_s gx_s . x_s + gLogDet_s * logDetJ_s
            auto loss = [&](const std::vector<double>& qq, int s) {
                std::vector<double> logDet;
                std::vector<double> x = toCartesian(ic, qq, &logDet, moves);
                double sum = 0;
                for (int i = 0; i < dim; i++)
                    sum += gx[s * dim + i] * x[s * dim + i];
                return sum + gLogDet[s] * logDet[s];
            };
            std::vector<double> grad(static_cast<size_t>(batch) * m);
            ic.toCartesianBackward(batch, q.data(), gx.data(), gLogDet.data(), grad.data(), moves);
            std::vector<double> gradLogDetOnly(static_cast<size_t>(batch) * m), ones(batch, 1.0);
            ic.toCartesianBackward(batch, q.data(), nullptr, ones.data(), gradLogDetOnly.data(), moves);
            const double h = 1e-6;
            for (int s = 0; s < batch; s++)
                for (int c = 0; c < m; c++) {
                    std::vector<double> plus = q, minus = q;
                    plus[s * m + c] += h;
                    minus[s * m + c] -= h;
                    double numerical = (loss(plus, s) - loss(minus, s)) / (2 * h);
                    ASSERT_NEAR(grad[s * m + c], numerical, 1e-6 * std::max(1.0, std::abs(numerical)))
                        << "variant " << variant << " sample " << s << " " << z.describeColumn(c);
                    std::vector<double> lp, lm;
                    toCartesian(ic, plus, &lp);
                    toCartesian(ic, minus, &lm);
                    double numericalLogDet = (lp[s] - lm[s]) / (2 * h);
                    ASSERT_NEAR(gradLogDetOnly[s * m + c], numericalLogDet, 1e-6 * std::max(1.0, std::abs(numericalLogDet)))
                        << "variant " << variant << " " << z.describeColumn(c);
                }
        }
    }
}

TEST(InternalCoordinates, ToInternalBackwardMatchesFiniteDifferences) {
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal;
    Molecule mol = randomMolecule(rng, 10, 1);
    for (bool alanine : {true, false}) {
        ZMatrix z = alanine ? ZMatrix::alanineDipeptide() : ZMatrix::fromBonds(mol.numAtoms, mol.bonds);
        for (bool normalized : {false, true}) {
            InternalCoordinates ic(z);
            const int batch = 2;
            std::vector<double> x;
            if (alanine) {
                // tleap's structure is planar in places (dihedrals of exactly pi, where atan2 jumps by
                // 2 pi): perturb it so the finite differences see a smooth function.
                x = alanineTleap;
                std::vector<double> second = alanineStandardGeometry();
                x.insert(x.end(), second.begin(), second.end());
                for (double& v : x)
                    v += 0.005 * normal(rng);
            } else {
                for (int s = 0; s < batch; s++) {
                    std::vector<double> one = randomPositions(rng, mol);
                    x.insert(x.end(), one.begin(), one.end());
                }
            }
            if (normalized)
                ic.setNormalization(x.data() + ic.getNumCartesian()); // the other sample as reference
            int m = ic.getNumInternal(), dim = ic.getNumCartesian();
            std::vector<double> gq(static_cast<size_t>(batch) * m), gLogDet(batch);
            for (double& v : gq)
                v = normal(rng);
            for (double& v : gLogDet)
                v = normal(rng);
            auto loss = [&](const std::vector<double>& xx, int s) {
                std::vector<double> logDet;
                std::vector<double> q = toInternal(ic, xx, &logDet);
                double sum = 0;
                for (int c = 0; c < m; c++)
                    sum += gq[s * m + c] * q[s * m + c];
                return sum + gLogDet[s] * logDet[s];
            };
            std::vector<double> grad(x.size());
            ic.toInternalBackward(batch, x.data(), gq.data(), gLogDet.data(), grad.data());
            const double h = 1e-7;
            for (int s = 0; s < batch; s++) {
                for (int i = 0; i < dim; i++) {
                    std::vector<double> plus = x, minus = x;
                    plus[s * dim + i] += h;
                    minus[s * dim + i] -= h;
                    double numerical = (loss(plus, s) - loss(minus, s)) / (2 * h);
                    ASSERT_NEAR(grad[s * dim + i], numerical, 1e-5 * std::max(1.0, std::abs(numerical)))
                        << (alanine ? "alanine" : "random") << (normalized ? " normalized" : " raw") << " sample " << s
                        << " coordinate " << i;
                }
                // Internal coordinates do not see rigid motions: no net force, no net torque.
                Vector3d force = Vector3d::Zero(), torque = Vector3d::Zero();
                for (int a = 0; a < dim / 3; a++) {
                    force += at(grad, a, static_cast<long long>(s) * dim);
                    torque += at(x, a, static_cast<long long>(s) * dim).cross(at(grad, a, static_cast<long long>(s) * dim));
                }
                EXPECT_LT(force.norm(), 1e-8);
                EXPECT_LT(torque.norm(), 1e-8);
            }
        }
    }
}

TEST(InternalCoordinates, Normalization) {
    ZMatrix z = ZMatrix::alanineDipeptide();
    InternalCoordinates ic(z);
    EXPECT_FALSE(ic.isNormalized());
    EXPECT_EQ(ic.getLogScaleSum(), 0.0);
    std::vector<double> raw = toInternal(ic, alanineTleap);
    std::vector<double> rawLogDet;
    toCartesian(ic, raw, &rawLogDet);

    ic.setNormalization(alanineTleap.data());
    EXPECT_TRUE(ic.isNormalized());
    // The constant: 21 bonds at 0.005 nm, 20 angles at 0.15 rad, 7 dependent dihedrals at 0.2 rad,
    // 12 circular dihedrals unscaled.
    double expectedConstant = 21 * std::log(0.005) + 20 * std::log(0.15) + 7 * std::log(0.2);
    EXPECT_NEAR(ic.getLogScaleSum(), expectedConstant, 1e-12);
    double sum = 0;
    for (int c = 0; c < 60; c++) {
        double expectedScale = z.isCircularColumn(c) ? 1.0
                               : z.getColumnType(c) == InternalCoordinateType::Bond  ? 0.005
                               : z.getColumnType(c) == InternalCoordinateType::Angle ? 0.15
                                                                                     : 0.2;
        EXPECT_EQ(ic.getScale()[c], expectedScale) << z.describeColumn(c);
        EXPECT_NEAR(ic.getShift()[c], raw[c], 1e-15);
        sum += std::log(ic.getScale()[c]);
    }
    EXPECT_NEAR(ic.getLogScaleSum(), sum, 1e-12);

    // The reference maps to zero, and the constant enters log|det J|.
    std::vector<double> logDet;
    std::vector<double> zRef = toInternal(ic, alanineTleap, &logDet);
    for (double v : zRef)
        EXPECT_NEAR(v, 0.0, 1e-12);
    EXPECT_NEAR(logDet[0], rawLogDet[0] + expectedConstant, 1e-10);

    // Round trips both ways; circular columns are wrapped into [-pi, pi).
    std::mt19937_64 rng(6);
    std::vector<double> zs = randomNormalized(rng, ic, 6);
    for (int c : z.getCircularColumns())
        for (int s = 0; s < 6; s++)
            zs[s * 60 + c] = pi * (2 * std::uniform_real_distribution<double>(0, 1)(rng) - 1);
    std::vector<double> x = toCartesian(ic, zs);
    std::vector<double> zBack = toInternal(ic, x);
    for (size_t i = 0; i < zs.size(); i++)
        ASSERT_NEAR(zBack[i], zs[i], 1e-9) << z.describeColumn(static_cast<int>(i % 60));
    std::vector<double> xBack = toCartesian(ic, zBack);
    for (size_t i = 0; i < x.size(); i++)
        ASSERT_NEAR(xBack[i], x[i], 1e-10);
    // A circular dihedral given outside [-pi, pi) comes back wrapped.
    std::vector<double> shifted = zs;
    int circular = z.getCircularColumns()[0];
    shifted[circular] += 4 * pi;
    std::vector<double> wrapped = toInternal(ic, toCartesian(ic, shifted));
    EXPECT_NEAR(wrapped[circular], zs[circular], 1e-9);
    for (int c : z.getCircularColumns())
        for (int s = 0; s < 6; s++) {
            EXPECT_GE(zBack[s * 60 + c], -pi);
            EXPECT_LT(zBack[s * 60 + c], pi);
        }

    // normalize/denormalize are inverse to each other and to the transforms.
    std::vector<double> rawBack(zs.size()), zAgain(zs.size());
    ic.denormalize(6, zs.data(), rawBack.data());
    ic.normalize(6, rawBack.data(), zAgain.data());
    for (size_t i = 0; i < zs.size(); i++)
        ASSERT_NEAR(zAgain[i], zs[i], 1e-9);
    InternalCoordinates plain(z);
    expectInternalEqual(z, toInternal(plain, x), rawBack, 1e-10);

    // Explicit normalization and its checks.
    std::vector<double> shift(60, 0.0), scale(60, 1.0);
    scale[0] = 0.01;
    ic.setNormalization(shift, scale);
    EXPECT_NEAR(ic.getLogScaleSum(), std::log(0.01), 1e-15);
    scale[circular] = 0.5;
    EXPECT_NE(errorMessage([&] { ic.setNormalization(shift, scale); }).find("must keep scale 1"), std::string::npos);
    scale[circular] = 1.0;
    scale[3] = 0;
    EXPECT_NE(errorMessage([&] { ic.setNormalization(shift, scale); }).find("scale[3]"), std::string::npos);
    EXPECT_NE(errorMessage([&] { ic.setNormalization(std::vector<double>(59), std::vector<double>(60, 1.0)); })
                  .find("expected getNumInternal() = 60"),
              std::string::npos);
    InternalCoordinates::NormalizationScales bad;
    bad.angle = -1;
    EXPECT_NE(errorMessage([&] { ic.setNormalization(alanineTleap.data(), bad); }).find("scales.angle"),
              std::string::npos);
    std::vector<double> collapsed(66, 0.0);
    EXPECT_NE(errorMessage([&] { ic.setNormalization(collapsed.data()); }).find("degenerate bond(6,8) = 0"),
              std::string::npos);
    ic.clearNormalization();
    EXPECT_FALSE(ic.isNormalized());
    EXPECT_EQ(ic.getLogScaleSum(), 0.0);
}

TEST(InternalCoordinates, RigidMotions) {
    RigidMotion a = RigidMotion::randomRotation(42, 7), b = RigidMotion::randomRotation(42, 7);
    RigidMotion c = RigidMotion::randomRotation(42, 8), d = RigidMotion::randomRotation(43, 7);
    EXPECT_EQ(a.rotation, b.rotation);
    EXPECT_GT((a.rotation - c.rotation).norm(), 1e-3);
    EXPECT_GT((a.rotation - d.rotation).norm(), 1e-3);
    EXPECT_NEAR((a.rotation * a.rotation.transpose() - Eigen::Matrix3d::Identity()).norm(), 0.0, 1e-14);
    EXPECT_NEAR(a.rotation.determinant(), 1.0, 1e-14);
    std::vector<RigidMotion> batch = RigidMotion::randomRotations(42, 3, 6);
    EXPECT_EQ(batch[1].rotation, a.rotation);
    // Uniform rotations: the mean of R e_z over many draws is near zero, and its second moment is I/3.
    Vector3d mean = Vector3d::Zero();
    Eigen::Matrix3d second = Eigen::Matrix3d::Zero();
    const int draws = 20000;
    for (const RigidMotion& r : RigidMotion::randomRotations(1, draws)) {
        Vector3d v = r.rotation * Vector3d::UnitZ();
        mean += v / draws;
        second += v * v.transpose() / draws;
    }
    EXPECT_LT(mean.norm(), 0.03);
    EXPECT_LT((second - Eigen::Matrix3d::Identity() / 3).norm(), 0.03);

    // toCartesian applies the motion after placing the molecule in the canonical frame.
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    std::vector<double> q = toInternal(ic, alanineTleap);
    RigidMotion motion = RigidMotion::randomRotation(3, 1);
    motion.translation = Vector3d(1, 2, 3);
    std::vector<double> canonical = toCartesian(ic, q), moved = toCartesian(ic, q, nullptr, &motion);
    for (int atom = 0; atom < 22; atom++)
        EXPECT_LT((at(moved, atom) - (motion.rotation * at(canonical, atom) + motion.translation)).norm(), 1e-14);
    EXPECT_EQ(at(canonical, 8), Vector3d::Zero());          // CA at the origin
    EXPECT_EQ(at(canonical, 6)[1], 0.0);                    // N on the x axis
    EXPECT_EQ(at(canonical, 6)[2], 0.0);
    EXPECT_GT(at(canonical, 6)[0], 0.0);
    EXPECT_EQ(at(canonical, 14)[2], 0.0);                   // C in the xy-plane, y > 0
    EXPECT_GT(at(canonical, 14)[1], 0.0);
    EXPECT_NE(errorMessage([] { RigidMotion::randomRotations(1, -1); }).find("count = -1"), std::string::npos);
}

TEST(InternalCoordinates, ThreadCountDoesNotChangeResults) {
    ZMatrix z = ZMatrix::alanineDipeptide();
    std::mt19937_64 rng(7);
    const int batch = 37;
    InternalCoordinates reference(z);
    reference.setNormalization(alanineTleap.data());
    std::vector<double> q = randomNormalized(rng, reference, batch);
    std::vector<RigidMotion> motions = RigidMotion::randomRotations(5, batch);
    std::vector<double> gx(static_cast<size_t>(batch) * 66), gq(static_cast<size_t>(batch) * 60), gl(batch);
    std::normal_distribution<double> normal;
    for (double& v : gx)
        v = normal(rng);
    for (double& v : gq)
        v = normal(rng);
    for (double& v : gl)
        v = normal(rng);
    struct Results {
        std::vector<double> x, logDet, qBack, logDetBack, gradQ, gradX, canonical;
    };
    auto run = [&](int threads) {
        InternalCoordinates ic(z);
        ic.setNormalization(alanineTleap.data());
        ic.setNumThreads(threads);
        Results r;
        r.x = toCartesian(ic, q, &r.logDet, motions.data());
        r.qBack = toInternal(ic, r.x, &r.logDetBack);
        r.gradQ.resize(q.size());
        ic.toCartesianBackward(batch, q.data(), gx.data(), gl.data(), r.gradQ.data(), motions.data());
        r.gradX.resize(r.x.size());
        ic.toInternalBackward(batch, r.x.data(), gq.data(), gl.data(), r.gradX.data());
        r.canonical.resize(r.x.size());
        ic.toCanonicalFrame(batch, r.x.data(), r.canonical.data());
        return r;
    };
    Results one = run(1);
    for (int threads : {2, 3, 8, 64}) {
        Results many = run(threads);
        EXPECT_EQ(many.x, one.x) << threads;
        EXPECT_EQ(many.logDet, one.logDet) << threads;
        EXPECT_EQ(many.qBack, one.qBack) << threads;
        EXPECT_EQ(many.logDetBack, one.logDetBack) << threads;
        EXPECT_EQ(many.gradQ, one.gradQ) << threads;
        EXPECT_EQ(many.gradX, one.gradX) << threads;
        EXPECT_EQ(many.canonical, one.canonical) << threads;
    }
    InternalCoordinates ic(z);
    ic.setNumThreads(0);
    EXPECT_GE(ic.getNumThreads(), 1);
    EXPECT_NE(errorMessage([&] { ic.setNumThreads(-2); }).find("numThreads = -2"), std::string::npos);
}

TEST(InternalCoordinates, EigenInterfaceAndErrors) {
    ZMatrix z = ZMatrix::alanineDipeptide();
    InternalCoordinates ic(z);
    BatchMatrix x(2, 66);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 66; i++)
            x(s, i) = alanineTleap[i] + (s == 1 ? 0.001 * std::sin(i) : 0.0);
    Eigen::VectorXd logDet;
    BatchMatrix q = ic.toInternal(x, &logDet);
    EXPECT_EQ(q.rows(), 2);
    EXPECT_EQ(q.cols(), 60);
    std::vector<double> flat(120), flatLogDet(2);
    ic.toInternal(2, x.data(), flat.data(), flatLogDet.data());
    for (int i = 0; i < 120; i++)
        EXPECT_EQ(q.data()[i], flat[i]);
    EXPECT_EQ(logDet[1], flatLogDet[1]);
    BatchMatrix back = ic.toCartesian(q);
    BatchMatrix canonical = ic.toCanonicalFrame(x);
    EXPECT_LT((back - canonical).cwiseAbs().maxCoeff(), 1e-10);
    BatchMatrix gx = BatchMatrix::Ones(2, 66);
    BatchMatrix gq = ic.toCartesianBackward(q, gx);
    EXPECT_EQ(gq.cols(), 60);
    BatchMatrix gxBack = ic.toInternalBackward(x, BatchMatrix::Ones(2, 60));
    EXPECT_EQ(gxBack.cols(), 66);

    EXPECT_NE(errorMessage([&] { ic.toInternal(BatchMatrix(2, 65)); }).find("cartesian has 65 columns; expected 66"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { ic.toCartesian(BatchMatrix(2, 66)); }).find("internal has 66 columns; expected 60"),
              std::string::npos);
    std::vector<RigidMotion> one(1);
    EXPECT_NE(errorMessage([&] { ic.toCartesian(q, nullptr, &one); }).find("motions has 1 entries"), std::string::npos);
    EXPECT_NE(errorMessage([&] { ic.toCartesianBackward(q, BatchMatrix::Ones(3, 66)); }).find("dLdCartesian has 3"),
              std::string::npos);
    Eigen::VectorXd wrong(3);
    EXPECT_NE(errorMessage([&] { ic.toInternalBackward(x, BatchMatrix::Ones(2, 60), &wrong); }).find("dLdLogDetJ"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { ic.toInternal(1, nullptr, flat.data()); }).find("cartesian is null"), std::string::npos);
    EXPECT_NE(errorMessage([&] { ic.toCartesian(-1, flat.data(), flat.data()); }).find("batch = -1"), std::string::npos);
    // Degenerate geometry is data: non-finite values for that sample, no exception.
    std::vector<double> collapsed(66, 0.0), out(60), outLogDet(1);
    ic.toInternal(1, collapsed.data(), out.data(), outLogDet.data());
    EXPECT_FALSE(std::isfinite(outLogDet[0]));
}

TEST(InternalCoordinates, OutsideThePrincipalDomainGivesNaNForThatSampleOnly) {
    // Bond <= 0, angle outside (0, pi), a dependent dihedral more than pi from its reference: the map to
    // Cartesians is many-to-one there, so those samples get NaN positions and log|det J|.
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    ic.setNormalization(alanineTleap.data());
    const ZMatrix& z = ic.getZMatrix();
    const int m = ic.getNumInternal();
    int dependent = -1;
    for (int r = 3; r < z.getNumAtoms() && dependent < 0; r++)
        if (!z.isCircularColumn(3 * r - 4))
            dependent = 3 * r - 4;
    ASSERT_GE(dependent, 0);
    const std::vector<double>& scale = ic.getScale();
    std::vector<double> q(static_cast<size_t>(6) * m, 0.0);   // sample 0: the reference itself (z = 0)
    q[1 * m + 0] = -1.01 * ic.getShift()[0] / scale[0];          // sample 1: the first bond just below 0
    q[2 * m + 2] = (M_PI + 0.01 - ic.getShift()[2]) / scale[2];  // sample 2: the first angle above pi
    q[3 * m + 4] = (-0.01 - ic.getShift()[4]) / scale[4];        // sample 3: a later angle below 0
    q[4 * m + dependent] = (M_PI + 0.01) / scale[dependent];     // sample 4: a dependent dihedral beyond pi
    q[5 * m + dependent] = (M_PI - 0.01) / scale[dependent];     // sample 5: ... just inside
    std::vector<double> x(static_cast<size_t>(6) * ic.getNumCartesian()), logDet(6);
    ic.toCartesian(6, q.data(), x.data(), logDet.data());
    std::vector<double> raw(m);
    for (int s = 0; s < 6; s++) {
        const bool inside = s == 0 || s == 5;
        ic.denormalize(1, &q[static_cast<size_t>(s) * m], raw.data());
        EXPECT_EQ(ic.inPrincipalDomain(raw.data()), inside) << s;
        EXPECT_EQ(std::isfinite(logDet[s]), inside) << s;
        for (int i = 0; i < ic.getNumCartesian(); i++)
            ASSERT_EQ(std::isfinite(x[static_cast<size_t>(s) * ic.getNumCartesian() + i]), inside) << s;
    }
}
