#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/Features.h"

#include <Eigen/Geometry>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::coords::Feature;
using cgflow::coords::FeatureType;
using cgflow::coords::PeriodicBox;
using Eigen::Vector3d;

namespace {

const double pi = 3.14159265358979323846;

using cgflowtest::errorMessage;

Feature distance(int i, int j) {
    return {FeatureType::Distance, {i, j}};
}
Feature angle(int i, int j, int k) {
    return {FeatureType::Angle, {i, j, k}};
}
Feature dihedral(int i, int j, int k, int l) {
    return {FeatureType::Dihedral, {i, j, k, l}};
}
Feature coordinate(int i, int axis, double period = 0) {
    Feature f{FeatureType::Coordinate, {i}};
    f.axis = axis;
    f.period = period;
    return f;
}

std::vector<double> flatten(const std::vector<Vector3d>& points) {
    std::vector<double> out;
    for (const Vector3d& p : points)
        out.insert(out.end(), {p[0], p[1], p[2]});
    return out;
}

std::vector<double> compute(const std::vector<Feature>& features, const std::vector<double>& positions,
                            const PeriodicBox& box = PeriodicBox()) {
    std::vector<double> out(cgflow::coords::totalWidth(features));
    cgflow::coords::computeFeatures(features, positions.data(), box, out.data());
    return out;
}

double single(const Feature& f, const std::vector<Vector3d>& points) {
    return compute({f}, flatten(points))[0];
}

PeriodicBox rectangularBox(double x, double y, double z) {
    PeriodicBox box;
    box.periodic = true;
    box.a = Vector3d(x, 0, 0);
    box.b = Vector3d(0, y, 0);
    box.c = Vector3d(0, 0, z);
    return box;
}

PeriodicBox triclinicBox() {
    PeriodicBox box;
    box.periodic = true;
    box.a = Vector3d(3.0, 0, 0);
    box.b = Vector3d(0.8, 2.9, 0);
    box.c = Vector3d(-0.6, 0.7, 3.1);
    return box;
}

// Compares backpropFeatures() with central differences of L = sum_i w_i f_i.
void checkGradient(const std::vector<Feature>& features, const std::vector<double>& positions, const PeriodicBox& box,
                   uint64_t seed, double h = 1e-6, double tolerance = 1e-7) {
    const int width = cgflow::coords::totalWidth(features);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> weights(width);
    for (double& w : weights)
        w = normal(rng);
    auto loss = [&](const std::vector<double>& x) {
        std::vector<double> f = compute(features, x, box);
        double sum = 0;
        for (int i = 0; i < width; i++)
            sum += weights[i] * f[i];
        return sum;
    };
    // Pre-filled so that the test also checks that the gradient accumulates.
    std::vector<double> grad(positions.size(), 0.5);
    cgflow::coords::backpropFeatures(features, positions.data(), box, weights.data(), grad.data());
    for (size_t i = 0; i < positions.size(); i++) {
        std::vector<double> plus = positions, minus = positions;
        plus[i] += h;
        minus[i] -= h;
        double fd = (loss(plus) - loss(minus)) / (2 * h);
        EXPECT_NEAR(grad[i] - 0.5, fd, tolerance * std::max(1.0, std::abs(fd))) << "coordinate " << i;
    }
}

std::vector<double> randomPositions(int numParticles, double low, double high, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> uniform(low, high);
    std::vector<double> positions(3 * numParticles);
    for (double& x : positions)
        x = uniform(rng);
    return positions;
}

std::vector<Feature> allKindsOfFeatures() {
    return {distance(0, 1),   distance(2, 5),      angle(0, 1, 2),        angle(3, 4, 5),       angle(5, 0, 3),
            dihedral(0, 1, 2, 3), dihedral(2, 3, 4, 5), dihedral(5, 1, 3, 0), coordinate(4, 0),     coordinate(2, 2),
            coordinate(1, 1, 2.5)};
}

} // namespace

TEST(Features, Widths) {
    EXPECT_EQ(distance(0, 1).getWidth(), 1);
    EXPECT_EQ(angle(0, 1, 2).getWidth(), 1);
    EXPECT_EQ(dihedral(0, 1, 2, 3).getWidth(), 2);
    EXPECT_EQ(coordinate(0, 1).getWidth(), 1);
    EXPECT_EQ(coordinate(0, 1, 3.0).getWidth(), 2);
    EXPECT_EQ(cgflow::coords::totalWidth(allKindsOfFeatures()), 2 + 3 + 6 + 2 + 2);
    EXPECT_EQ(cgflow::coords::totalWidth({}), 0);
}

TEST(Features, DisplacementNonPeriodicAndRectangular) {
    Vector3d from(0.1, 0.2, 0.3), to(1.9, -2.8, 7.3);
    EXPECT_TRUE(cgflow::coords::displacement(from, to, PeriodicBox()).isApprox(to - from));
    PeriodicBox box = rectangularBox(2.0, 3.0, 4.0);
    Vector3d d = cgflow::coords::displacement(from, to, box);
    EXPECT_NEAR(d[0], -0.2, 1e-12);
    EXPECT_NEAR(d[1], 0.0, 1e-12);
    EXPECT_NEAR(d[2], -1.0, 1e-12);
    // Ties at exactly half a box round up, as floor(x + 0.5) does in OpenMM's Reference platform.
    EXPECT_EQ(cgflow::coords::displacement(Vector3d::Zero(), Vector3d(1.0, 0, 0), box)[0], -1.0);
    EXPECT_EQ(cgflow::coords::displacement(Vector3d::Zero(), Vector3d(-1.0, 0, 0), box)[0], -1.0);
    // A box that is not periodic is ignored.
    box.periodic = false;
    EXPECT_TRUE(cgflow::coords::displacement(from, to, box).isApprox(to - from));
}

TEST(Features, DisplacementTriclinic) {
    PeriodicBox box;
    box.periodic = true;
    box.a = Vector3d(3, 0, 0);
    box.b = Vector3d(1, 3, 0);
    box.c = Vector3d(1, 1, 4);
    EXPECT_TRUE(cgflow::coords::displacement(Vector3d::Zero(), Vector3d(0.5, 0.5, 3.5), box)
                    .isApprox(Vector3d(-0.5, -0.5, -0.5)));
    EXPECT_TRUE(cgflow::coords::displacement(Vector3d::Zero(), Vector3d(2.9, 2.0, 0.1), box)
                    .isApprox(Vector3d(-1.1, -1.0, 0.1)));

    box = triclinicBox();
    std::vector<double> p = randomPositions(200, -10, 10, 4);
    for (int n = 0; n + 1 < 200; n += 2) {
        Vector3d from(p[3 * n], p[3 * n + 1], p[3 * n + 2]), to(p[3 * n + 3], p[3 * n + 4], p[3 * n + 5]);
        Vector3d d = cgflow::coords::displacement(from, to, box);
        EXPECT_LE(std::abs(d[2]), 0.5 * box.c[2] + 1e-12);
        EXPECT_LE(std::abs(d[1]), 0.5 * box.b[1] + 1e-12);
        EXPECT_LE(std::abs(d[0]), 0.5 * box.a[0] + 1e-12);
        // The shift is a whole lattice vector.
        Vector3d shift = (to - from) - d;
        double nc = shift[2] / box.c[2];
        double nb = (shift[1] - nc * box.c[1]) / box.b[1];
        double na = (shift[0] - nc * box.c[0] - nb * box.b[0]) / box.a[0];
        EXPECT_NEAR(nc, std::round(nc), 1e-9);
        EXPECT_NEAR(nb, std::round(nb), 1e-9);
        EXPECT_NEAR(na, std::round(na), 1e-9);
    }
}

TEST(Features, DistanceValues) {
    EXPECT_DOUBLE_EQ(single(distance(0, 1), {Vector3d(1, 1, 1), Vector3d(4, 5, 1)}), 5.0);
    std::vector<double> x = flatten({Vector3d(0.1, 0, 0), Vector3d(1.9, 0, 0)});
    EXPECT_NEAR(compute({distance(0, 1)}, x, rectangularBox(2, 2, 2))[0], 0.2, 1e-12);
    EXPECT_NEAR(compute({distance(0, 1)}, x)[0], 1.8, 1e-12);
}

TEST(Features, AngleValues) {
    EXPECT_DOUBLE_EQ(single(angle(0, 1, 2), {Vector3d(1, 0, 0), Vector3d(0, 0, 0), Vector3d(0, 2, 0)}), pi / 2);
    EXPECT_DOUBLE_EQ(single(angle(0, 1, 2), {Vector3d(-1, 0, 0), Vector3d(0, 0, 0), Vector3d(3, 0, 0)}), pi);
    EXPECT_DOUBLE_EQ(single(angle(0, 1, 2), {Vector3d(2, 0, 0), Vector3d(0, 0, 0), Vector3d(5, 0, 0)}), 0.0);
    EXPECT_NEAR(single(angle(0, 1, 2), {Vector3d(1, 0, 0), Vector3d(0, 0, 0), Vector3d(0.5, std::sqrt(0.75), 0)}),
                pi / 3, 1e-15);
    // The angle sits at the middle particle.
    EXPECT_NEAR(single(angle(1, 0, 2), {Vector3d(0, 0, 0), Vector3d(1, 0, 0), Vector3d(1, 1, 0)}), pi / 4, 1e-15);
    // Near-collinear angles keep full accuracy (acos would lose half the digits).
    for (double eps : {1e-3, 1e-6}) {
        Vector3d j(0.3, -0.2, 0.5);
        EXPECT_NEAR(single(angle(0, 1, 2), {j + Vector3d(1, 0, 0), j, j + 1.3 * Vector3d(-std::cos(eps), std::sin(eps), 0)}),
                    pi - eps, 1e-14);
        EXPECT_NEAR(single(angle(0, 1, 2), {j + Vector3d(1, 0, 0), j, j + 1.3 * Vector3d(std::cos(eps), std::sin(eps), 0)}),
                    eps, 1e-14 * eps + 1e-17);
    }
    // Minimum image: with a 2-wide box, (1.8,0,0) from j is really (-0.2,0,0).
    std::vector<double> x = flatten({Vector3d(0.9, 0, 0), Vector3d(0, 0, 0), Vector3d(1.8, 0.2, 0)});
    EXPECT_NEAR(compute({angle(0, 1, 2)}, x, rectangularBox(2, 2, 2))[0], 3 * pi / 4, 1e-12);
}

TEST(Features, DihedralValues) {
    Vector3d i(1, 0, 0), j(0, 0, 0), k(0, 0, 1);
    auto phiOf = [&](const Vector3d& l) {
        std::vector<double> f = compute({dihedral(0, 1, 2, 3)}, flatten({i, j, k, l}));
        return std::atan2(f[1], f[0]);
    };
    auto at = [&](double degrees) {
        double r = degrees * pi / 180;
        return Vector3d(std::cos(r), std::sin(r), 1.0);
    };
    // cis = 0, trans = 180; IUPAC sign: clockwise rotation of the front bond onto the back bond,
    // looking from j to k, is positive.
    std::vector<double> cis = compute({dihedral(0, 1, 2, 3)}, flatten({i, j, k, at(0)}));
    EXPECT_NEAR(cis[0], 1.0, 1e-15);
    EXPECT_NEAR(cis[1], 0.0, 1e-15);
    std::vector<double> trans = compute({dihedral(0, 1, 2, 3)}, flatten({i, j, k, at(180)}));
    EXPECT_NEAR(trans[0], -1.0, 1e-15);
    EXPECT_NEAR(trans[1], 0.0, 1e-15);
    std::vector<double> plus60 = compute({dihedral(0, 1, 2, 3)}, flatten({i, j, k, at(60)}));
    EXPECT_NEAR(plus60[0], 0.5, 1e-15);
    EXPECT_NEAR(plus60[1], std::sqrt(3.0) / 2, 1e-15);
    std::vector<double> minus60 = compute({dihedral(0, 1, 2, 3)}, flatten({i, j, k, at(-60)}));
    EXPECT_NEAR(minus60[0], 0.5, 1e-15);
    EXPECT_NEAR(minus60[1], -std::sqrt(3.0) / 2, 1e-15);
    EXPECT_NEAR(phiOf(at(-120)), -2 * pi / 3, 1e-14);
    // Butane-like geometry with bond angles: the dihedral ignores the positions along the axis.
    EXPECT_NEAR(phiOf(Vector3d(std::cos(1.0), std::sin(1.0), 2.7)), 1.0, 1e-14);
    i = Vector3d(1, 0, -0.4);
    EXPECT_NEAR(phiOf(Vector3d(std::cos(1.0), std::sin(1.0), 2.7)), 1.0, 1e-14);
    // Reversing the order of the particles leaves the dihedral unchanged.
    std::vector<double> forward = compute({dihedral(0, 1, 2, 3)}, flatten({i, j, k, at(77)}));
    std::vector<double> backward = compute({dihedral(3, 2, 1, 0)}, flatten({i, j, k, at(77)}));
    EXPECT_NEAR(forward[0], backward[0], 1e-15);
    EXPECT_NEAR(forward[1], backward[1], 1e-15);
}

TEST(Features, InvariantUnderRigidMotion) {
    std::vector<Feature> features = {distance(0, 3), angle(0, 1, 2), dihedral(0, 1, 2, 3), dihedral(1, 3, 0, 2)};
    std::vector<double> x = randomPositions(4, -1, 1, 12);
    Eigen::Matrix3d rotation =
        (Eigen::AngleAxisd(0.7, Vector3d(1, 2, 3).normalized()) * Eigen::AngleAxisd(-2.1, Vector3d::UnitZ()))
            .toRotationMatrix();
    std::vector<double> moved(x.size());
    for (int n = 0; n < 4; n++) {
        Vector3d p = rotation * Vector3d(x[3 * n], x[3 * n + 1], x[3 * n + 2]) + Vector3d(5, -3, 2);
        for (int d = 0; d < 3; d++)
            moved[3 * n + d] = p[d];
    }
    std::vector<double> a = compute(features, x), b = compute(features, moved);
    for (size_t n = 0; n < a.size(); n++)
        EXPECT_NEAR(a[n], b[n], 1e-13);
    // A mirror image flips the dihedral's sign.
    std::vector<double> mirrored = x;
    for (int n = 0; n < 4; n++)
        mirrored[3 * n + 2] = -mirrored[3 * n + 2];
    std::vector<double> m = compute({dihedral(0, 1, 2, 3)}, mirrored), o = compute({dihedral(0, 1, 2, 3)}, x);
    EXPECT_NEAR(m[0], o[0], 1e-14);
    EXPECT_NEAR(m[1], -o[1], 1e-14);
}

TEST(Features, CoordinateValues) {
    std::vector<double> x = flatten({Vector3d(1.0, 2.0, 7.3), Vector3d(0.625, -4.0, 0.0)});
    std::vector<double> f = compute({coordinate(0, 2), coordinate(1, 1), coordinate(1, 0, 2.5), coordinate(0, 0, 4.0)}, x,
                                    rectangularBox(3, 3, 3));
    ASSERT_EQ(f.size(), 6u);
    EXPECT_EQ(f[0], 7.3); // raw, not wrapped into the box
    EXPECT_EQ(f[1], -4.0);
    EXPECT_NEAR(f[2], 0.0, 1e-15); // x = P/4
    EXPECT_NEAR(f[3], 1.0, 1e-15);
    EXPECT_NEAR(f[4], 0.0, 1e-15); // x = P/4
    EXPECT_NEAR(f[5], 1.0, 1e-15);
    // The periodic encoding does not see whole periods.
    std::vector<double> shifted = flatten({Vector3d(1.0 + 3 * 4.0, 0, 0)});
    std::vector<double> g = compute({coordinate(0, 0, 4.0)}, shifted);
    EXPECT_NEAR(g[0], 0.0, 1e-14);
    EXPECT_NEAR(g[1], 1.0, 1e-14);
    std::vector<double> half = compute({coordinate(0, 1, 3.0)}, flatten({Vector3d(0, 1.5, 0)}));
    EXPECT_NEAR(half[0], -1.0, 1e-15);
    EXPECT_NEAR(half[1], 0.0, 1e-15);
}

TEST(Features, GradientsNonPeriodic) {
    for (uint64_t seed = 0; seed < 5; seed++)
        checkGradient(allKindsOfFeatures(), randomPositions(6, -1.5, 1.5, 100 + seed), PeriodicBox(), seed);
}

TEST(Features, GradientsRectangularBox) {
    for (uint64_t seed = 0; seed < 5; seed++)
        checkGradient(allKindsOfFeatures(), randomPositions(6, -4, 8, 200 + seed), rectangularBox(2.7, 3.1, 2.9),
                      seed);
}

TEST(Features, GradientsTriclinicBox) {
    for (uint64_t seed = 0; seed < 5; seed++)
        checkGradient(allKindsOfFeatures(), randomPositions(6, -6, 6, 300 + seed), triclinicBox(), seed);
}

TEST(Features, GradientsNearCollinearAngles) {
    for (double eps : {1e-2, 1e-3}) {
        Vector3d j(0.3, -0.2, 0.5);
        Vector3d u = Vector3d(1.0, 0.2, -0.1);
        Vector3d side = u.cross(Vector3d(0.3, 1, 0.2)).normalized();
        Vector3d dir = u.normalized();
        for (double sign : {-1.0, 1.0}) {
            Vector3d k = j + 1.3 * (sign * std::cos(eps) * dir + std::sin(eps) * side);
            std::vector<double> x = flatten({j + u, j, k});
            checkGradient({angle(0, 1, 2)}, x, PeriodicBox(), 1, 1e-8, 1e-6);
            // |dθ/dp_i| = 1/|u|, perpendicular to u, whatever the angle.
            std::vector<double> grad(9, 0.0);
            double one = 1.0;
            cgflow::coords::backpropFeatures({angle(0, 1, 2)}, x.data(), PeriodicBox(), &one, grad.data());
            Vector3d gi(grad[0], grad[1], grad[2]);
            EXPECT_NEAR(gi.norm() * u.norm(), 1.0, 1e-12);
            EXPECT_NEAR(gi.dot(u), 0.0, 1e-12);
            Vector3d gk(grad[6], grad[7], grad[8]);
            EXPECT_NEAR(gk.norm() * 1.3, 1.0, 1e-12);
        }
    }
}

TEST(Features, GradientsAreTranslationAndRotationInvariant) {
    std::vector<Feature> features = {distance(0, 1), angle(0, 1, 2), dihedral(0, 1, 2, 3), dihedral(3, 1, 0, 2)};
    std::vector<double> x = randomPositions(4, -1, 1, 55);
    std::vector<double> weights = {0.3, -1.2, 0.8, 0.5, -0.4, 1.1};
    std::vector<double> grad(12, 0.0);
    cgflow::coords::backpropFeatures(features, x.data(), PeriodicBox(), weights.data(), grad.data());
    Vector3d force = Vector3d::Zero(), torque = Vector3d::Zero();
    for (int n = 0; n < 4; n++) {
        Vector3d g(grad[3 * n], grad[3 * n + 1], grad[3 * n + 2]);
        force += g;
        torque += Vector3d(x[3 * n], x[3 * n + 1], x[3 * n + 2]).cross(g);
    }
    EXPECT_LT(force.norm(), 1e-12);
    EXPECT_LT(torque.norm(), 1e-12);
}

TEST(Features, DegenerateGeometriesGiveZeroGradientNotNaN) {
    std::vector<double> x = flatten({Vector3d(0, 0, 0), Vector3d(0, 0, 0), Vector3d(1, 0, 0), Vector3d(2, 0, 0)});
    std::vector<Feature> features = {distance(0, 1), angle(1, 2, 3), dihedral(0, 2, 3, 1)};
    std::vector<double> f = compute(features, x);
    for (double v : f)
        EXPECT_TRUE(std::isfinite(v));
    std::vector<double> weights(cgflow::coords::totalWidth(features), 1.0), grad(12, 0.0);
    cgflow::coords::backpropFeatures(features, x.data(), PeriodicBox(), weights.data(), grad.data());
    for (double g : grad)
        EXPECT_EQ(g, 0.0);
}

// A NaN position is not a degenerate geometry: its gradient is NaN (so a PMFForce's forces are NaN,
// like its energy), not the 0 that the coincident/collinear guards above give.
TEST(Features, NaNPositionsGiveNaNGradient) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<Feature> kinds = {distance(0, 1), angle(0, 1, 2), dihedral(0, 1, 2, 3)};
    for (const Feature& feature : kinds)
        for (int particle : feature.particles) {
            std::vector<double> x = flatten({Vector3d(0, 0, 0), Vector3d(1, 0, 0), Vector3d(1, 1, 0), Vector3d(1, 1, 1)});
            x[3 * particle + 1] = nan;
            const std::vector<Feature> one = {feature};
            std::vector<double> weights(cgflow::coords::totalWidth(one), 1.0), grad(12, 0.0);
            cgflow::coords::backpropFeatures(one, x.data(), PeriodicBox(), weights.data(), grad.data());
            for (int p : feature.particles)
                for (int a = 0; a < 3; a++)
                    EXPECT_TRUE(std::isnan(grad[3 * p + a]))
                        << cgflow::coords::featureTypeName(feature.type) << ": NaN in particle " << particle
                        << ", gradient of particle " << p << " axis " << a << " is " << grad[3 * p + a];
            // The jvp rows are backpropFeatures() of unit vectors: NaN as well.
            std::vector<double> tangent(12, 1.0), jvp(cgflow::coords::totalWidth(one), 0.0);
            cgflow::coords::jvpFeatures(one, x.data(), PeriodicBox(), tangent.data(), jvp.data());
            for (double v : jvp)
                EXPECT_TRUE(std::isnan(v));
        }
}

namespace {

// jvpFeatures() against central differences of the features along a random tangent t, and
// against backpropFeatures() through the adjoint identity <J t, w> = <t, J^T w>.
void checkJacobianVectorProduct(const std::vector<Feature>& features, const std::vector<double>& positions,
                                const PeriodicBox& box, uint64_t seed) {
    const int width = cgflow::coords::totalWidth(features);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> tangent(positions.size()), weights(width);
    for (double& t : tangent)
        t = normal(rng);
    for (double& w : weights)
        w = normal(rng);
    // Pre-filled: jvpFeatures() overwrites, unlike backpropFeatures().
    std::vector<double> jvp(width, 7.0);
    cgflow::coords::jvpFeatures(features, positions.data(), box, tangent.data(), jvp.data());
    const double h = 1e-6;
    std::vector<double> plus = positions, minus = positions;
    for (size_t i = 0; i < positions.size(); i++) {
        plus[i] += h * tangent[i];
        minus[i] -= h * tangent[i];
    }
    std::vector<double> up = compute(features, plus, box), down = compute(features, minus, box);
    for (int k = 0; k < width; k++) {
        double fd = (up[k] - down[k]) / (2 * h);
        EXPECT_NEAR(jvp[k], fd, 1e-7 * std::max(1.0, std::abs(fd))) << "feature input " << k;
    }
    std::vector<double> grad(positions.size(), 0.0);
    cgflow::coords::backpropFeatures(features, positions.data(), box, weights.data(), grad.data());
    double forward = 0, adjoint = 0, scale = 0;
    for (int k = 0; k < width; k++) {
        forward += jvp[k] * weights[k];
        scale += std::abs(jvp[k] * weights[k]);
    }
    for (size_t i = 0; i < positions.size(); i++)
        adjoint += tangent[i] * grad[i];
    EXPECT_NEAR(forward, adjoint, 1e-13 * std::max(1.0, scale));
}

} // namespace

TEST(Features, JacobianVectorProductsNonPeriodic) {
    for (uint64_t seed = 0; seed < 5; seed++)
        checkJacobianVectorProduct(allKindsOfFeatures(), randomPositions(6, -1.5, 1.5, 400 + seed), PeriodicBox(), seed);
}

TEST(Features, JacobianVectorProductsPeriodicBoxes) {
    for (uint64_t seed = 0; seed < 5; seed++) {
        checkJacobianVectorProduct(allKindsOfFeatures(), randomPositions(6, -4, 8, 500 + seed),
                                   rectangularBox(2.7, 3.1, 2.9), seed);
        checkJacobianVectorProduct(allKindsOfFeatures(), randomPositions(6, -6, 6, 600 + seed), triclinicBox(), seed);
    }
}

TEST(Features, JacobianVectorProductIsZeroWhereNotDifferentiable) {
    std::vector<double> x = flatten({Vector3d(0, 0, 0), Vector3d(0, 0, 0), Vector3d(1, 0, 0), Vector3d(2, 0, 0)});
    std::vector<Feature> features = {distance(0, 1), angle(1, 2, 3), dihedral(0, 2, 3, 1)};
    std::vector<double> tangent(12, 1.0), out(cgflow::coords::totalWidth(features), 3.0);
    cgflow::coords::jvpFeatures(features, x.data(), PeriodicBox(), tangent.data(), out.data());
    for (double v : out)
        EXPECT_EQ(v, 0.0);
}

TEST(Features, ValidateFeature) {
    using cgflow::coords::validateFeature;
    EXPECT_NO_THROW(validateFeature(distance(0, 4), 5, "f"));
    EXPECT_NO_THROW(validateFeature(coordinate(2, 2, 3.0), 5, "f"));
    Feature ignoredAxis = angle(0, 1, 2);
    ignoredAxis.axis = 7;
    EXPECT_NO_THROW(validateFeature(ignoredAxis, 3, "f"));

    auto expectError = [](const Feature& f, int n, const std::string& expected) {
        std::string message = errorMessage([&] { validateFeature(f, n, "feature 3"); });
        EXPECT_EQ(message.rfind("feature 3: ", 0), 0u) << message;
        EXPECT_NE(message.find(expected), std::string::npos) << "expected '" << expected << "' in: " << message;
    };
    expectError(Feature{FeatureType::Distance, {0}}, 5, "needs 2 particles, got 1");
    expectError(Feature{FeatureType::Angle, {0, 1, 2, 3}}, 5, "needs 3 particles, got 4");
    expectError(Feature{FeatureType::Dihedral, {0, 1, 2}}, 5, "needs 4 particles, got 3");
    expectError(Feature{FeatureType::Coordinate, {}}, 5, "needs 1 particle, got 0");
    expectError(distance(0, 5), 5, "particle index 5 out of range [0, 5)");
    expectError(angle(0, -1, 2), 5, "particle index -1 out of range");
    expectError(distance(2, 2), 5, "particle 2 appears twice");
    expectError(angle(0, 1, 0), 5, "appears twice");
    expectError(dihedral(0, 1, 2, 1), 5, "appears twice");
    expectError(coordinate(0, 3), 5, "axis");
    expectError(coordinate(0, -1), 5, "axis");
    expectError(coordinate(0, 0, -2.0), 5, "period");
    expectError(coordinate(0, 0, std::numeric_limits<double>::quiet_NaN()), 5, "period");
    expectError(coordinate(0, 0, std::numeric_limits<double>::infinity()), 5, "period");
}
