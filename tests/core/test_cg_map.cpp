#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/CGMap.h"

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::coords::ForceMapType;
using cgflow::coords::LinearMap;
using cgflow::coords::SliceMap;
using Eigen::MatrixXd;

namespace {

using cgflowtest::errorMessage;

std::vector<double> randomVector(size_t n, unsigned seed, double scale = 1.0) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, scale);
    std::vector<double> v(n);
    for (double& x : v)
        x = normal(rng);
    return v;
}

// A smooth, genuinely many-body CG potential V(R) of the beads (pairwise anharmonic springs plus
// an external field), with its gradient written out by hand, so that U(r) = V(Ξ(r)) is a toy
// all-atom potential whose mean force is known exactly: -∇V(R).
double cgPotential(const std::vector<double>& R, std::vector<double>* gradient = nullptr) {
    const size_t n = R.size() / 3;
    if (gradient)
        gradient->assign(R.size(), 0.0);
    double v = 0;
    for (size_t a = 0; a < n; a++) {
        for (int d = 0; d < 3; d++) {
            double x = R[3 * a + d];
            v += 0.3 * std::sin(1.3 * x + d) + 0.05 * x * x * x * x;
            if (gradient)
                (*gradient)[3 * a + d] += 0.39 * std::cos(1.3 * x + d) + 0.2 * x * x * x;
        }
        for (size_t b = a + 1; b < n; b++) {
            double r2 = 0;
            for (int d = 0; d < 3; d++)
                r2 += (R[3 * a + d] - R[3 * b + d]) * (R[3 * a + d] - R[3 * b + d]);
            double k = 0.7 + 0.1 * a + 0.05 * b;
            v += k * (r2 - 0.5) * (r2 - 0.5);
            if (gradient)
                for (int d = 0; d < 3; d++) {
                    double g = 4 * k * (r2 - 0.5) * (R[3 * a + d] - R[3 * b + d]);
                    (*gradient)[3 * a + d] += g;
                    (*gradient)[3 * b + d] -= g;
                }
        }
    }
    return v;
}

// All-atom forces of U(r) = V(c r) by the chain rule with the dense coefficient matrix,
// independently of LinearMap's own sparse code.
std::vector<double> atomForcesOfCGPotential(const MatrixXd& c, const std::vector<double>& positions) {
    const int numBeads = static_cast<int>(c.rows()), numAtoms = static_cast<int>(c.cols());
    std::vector<double> R(3 * numBeads, 0.0);
    for (int I = 0; I < numBeads; I++)
        for (int j = 0; j < numAtoms; j++)
            for (int d = 0; d < 3; d++)
                R[3 * I + d] += c(I, j) * positions[3 * j + d];
    std::vector<double> gradient;
    cgPotential(R, &gradient);
    std::vector<double> f(3 * numAtoms, 0.0);
    for (int I = 0; I < numBeads; I++)
        for (int j = 0; j < numAtoms; j++)
            for (int d = 0; d < 3; d++)
                f[3 * j + d] -= c(I, j) * gradient[3 * I + d];
    return f;
}

void expectConsistent(const LinearMap& map, double tolerance = 1e-12) {
    MatrixXd product = map.getForceCoefficients() * map.getCoefficients().transpose();
    MatrixXd identity = MatrixXd::Identity(map.getNumBeads(), map.getNumBeads());
    EXPECT_LE((product - identity).cwiseAbs().maxCoeff(), tolerance) << product;
}

// The defining property of a force map: if U depends on r only through R = Ξ(r), the mapped
// all-atom forces are exactly -∇V(R), configuration by configuration.
void expectMeanForceOfCGPotential(const LinearMap& map, unsigned seed) {
    std::vector<double> positions = randomVector(3 * map.getNumAtoms(), seed, 0.6);
    std::vector<double> forces = atomForcesOfCGPotential(map.getCoefficients(), positions);
    std::vector<double> R = map.mapPositions(positions);
    std::vector<double> gradient;
    cgPotential(R, &gradient);
    std::vector<double> mapped = map.mapForces(forces);
    ASSERT_EQ(mapped.size(), gradient.size());
    for (size_t k = 0; k < mapped.size(); k++)
        EXPECT_NEAR(mapped[k], -gradient[k], 1e-11 * (1 + std::abs(gradient[k]))) << "component " << k;
}

const std::vector<double> fourMasses = {12.011, 1.008, 15.999, 14.007};

} // namespace

TEST(CGMap, SlicePositionsAreTheKeptAtomsInOrder) {
    SliceMap map(5, {3, 0, 4});
    EXPECT_EQ(map.getNumAtoms(), 5);
    EXPECT_EQ(map.getNumBeads(), 3);
    EXPECT_EQ(map.getAtoms(), (std::vector<int>{3, 0, 4}));
    EXPECT_EQ(map.getForceMapType(), ForceMapType::Aggregate);
    std::vector<double> r = randomVector(15, 1);
    std::vector<double> R = map.mapPositions(r);
    ASSERT_EQ(R.size(), 9u);
    const int kept[3] = {3, 0, 4};
    for (int I = 0; I < 3; I++)
        for (int d = 0; d < 3; d++) {
            EXPECT_EQ(R[3 * I + d], r[3 * kept[I] + d]);
        }
    // The slice's force map is the slice itself: b = c.
    EXPECT_EQ(map.getForceCoefficients(), map.getCoefficients());
    std::vector<double> f = randomVector(15, 2);
    std::vector<double> F = map.mapForces(f);
    for (int I = 0; I < 3; I++)
        for (int d = 0; d < 3; d++)
            EXPECT_EQ(F[3 * I + d], f[3 * kept[I] + d]);
}

TEST(CGMap, CenterOfMassPositionsByHand) {
    // Atoms 0..3 with C, H, O, N masses; beads {0,1} and {3,2} (order within a group is irrelevant).
    LinearMap map = LinearMap::centerOfMass({{0, 1}, {3, 2}}, fourMasses);
    EXPECT_EQ(map.getNumAtoms(), 4);
    EXPECT_EQ(map.getNumBeads(), 2);
    EXPECT_EQ(map.getBeadAtoms(1), (std::vector<int>{2, 3}));
    EXPECT_EQ(map.getForceMapType(), ForceMapType::Aggregate);
    std::vector<double> r = {0.0, 0.0, 0.0, 0.1, 0.0, 0.0, 1.0, 2.0, 3.0, 1.5, 2.0, 2.5};
    std::vector<double> R = map.mapPositions(r);
    double m0 = 12.011, m1 = 1.008, m2 = 15.999, m3 = 14.007;
    EXPECT_NEAR(R[0], 0.1 * m1 / (m0 + m1), 1e-15);
    EXPECT_NEAR(R[1], 0.0, 1e-15);
    EXPECT_NEAR(R[2], 0.0, 1e-15);
    EXPECT_NEAR(R[3], (1.0 * m2 + 1.5 * m3) / (m2 + m3), 1e-15);
    EXPECT_NEAR(R[4], 2.0, 1e-15);
    EXPECT_NEAR(R[5], (3.0 * m2 + 2.5 * m3) / (m2 + m3), 1e-15);

    LinearMap geometric = LinearMap::centerOfGeometry(4, {{0, 1, 2}});
    std::vector<double> G = geometric.mapPositions(r);
    EXPECT_NEAR(G[0], (0.0 + 0.1 + 1.0) / 3, 1e-15);
    EXPECT_NEAR(G[1], 2.0 / 3, 1e-15);
    EXPECT_NEAR(G[2], 1.0, 1e-15);
}

TEST(CGMap, ExplicitMatrixPositionsByHand) {
    MatrixXd c(2, 3);
    c << 0.25, 0.75, 0.0, -0.5, 0.5, 1.0; // negative weights are legal as long as rows sum to 1
    LinearMap map(c);
    EXPECT_EQ(map.getCoefficients(), c);
    std::vector<double> r = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    std::vector<double> R = map.mapPositions(r);
    std::vector<double> expected = {0.25 * 1 + 0.75 * 4, 0.25 * 2 + 0.75 * 5, 0.25 * 3 + 0.75 * 6,
                                    -0.5 * 1 + 0.5 * 4 + 7, -0.5 * 2 + 0.5 * 5 + 8, -0.5 * 3 + 0.5 * 6 + 9};
    for (size_t k = 0; k < R.size(); k++)
        EXPECT_NEAR(R[k], expected[k], 1e-14);
    // Atom 1 is shared, so the force map is the minimum-norm one; it must still be consistent.
    EXPECT_EQ(map.getForceMapType(), ForceMapType::MinimumNorm);
    expectConsistent(map);
}

TEST(CGMap, ForceMapsSatisfyTheConsistencyIdentity) {
    expectConsistent(SliceMap(6, {5, 1, 2}));
    expectConsistent(LinearMap::centerOfMass({{0, 1}, {2, 3}}, fourMasses));
    // Overlapping centre-of-mass groups (atom 1 in both): minimum-norm weights on own atoms.
    LinearMap overlapping = LinearMap::centerOfMass({{0, 1}, {1, 2, 3}}, fourMasses);
    EXPECT_EQ(overlapping.getForceMapType(), ForceMapType::MinimumNorm);
    expectConsistent(overlapping);
    MatrixXd b = overlapping.getForceCoefficients();
    // Locality: a bead's force weights stay on its own atoms.
    EXPECT_EQ(b(0, 2), 0.0);
    EXPECT_EQ(b(0, 3), 0.0);
    EXPECT_EQ(b(1, 0), 0.0);
    // Aggregate weights are exactly 1 on the bead's atoms.
    MatrixXd aggregate = LinearMap::centerOfMass({{0, 1}, {2, 3}}, fourMasses).getForceCoefficients();
    MatrixXd expected(2, 4);
    expected << 1, 1, 0, 0, 0, 0, 1, 1;
    EXPECT_EQ(aggregate, expected);
}

TEST(CGMap, MinimumNormForceMapIsTheSmallestLocalOne) {
    // Bead 0 = atoms {0,1} (c = 1/2, 1/2), bead 1 = atoms {1,2} (c = 1/2, 1/2). For bead 0 the
    // constraints are b00/2 + b01/2 = 1 and b01/2 = 0 (bead 1's weight on shared atom 1), so b0 = (2, 0).
    MatrixXd c(2, 3);
    c << 0.5, 0.5, 0, 0, 0.5, 0.5;
    LinearMap map(c);
    MatrixXd expected(2, 3);
    expected << 2, 0, 0, 0, 0, 2;
    EXPECT_LE((map.getForceCoefficients() - expected).cwiseAbs().maxCoeff(), 1e-12);

    // With a third atom in bead 0 the solution is underdetermined; the minimum norm splits the
    // weight evenly between the two unshared atoms: b0 = (1.5, 0, 1.5, 0).
    MatrixXd c2(2, 4);
    c2 << 1.0 / 3, 1.0 / 3, 1.0 / 3, 0, 0, 0.5, 0, 0.5;
    LinearMap map2(c2);
    EXPECT_NEAR(map2.getForceCoefficients()(0, 0), 1.5, 1e-12);
    EXPECT_NEAR(map2.getForceCoefficients()(0, 1), 0.0, 1e-12);
    EXPECT_NEAR(map2.getForceCoefficients()(0, 2), 1.5, 1e-12);
    expectConsistent(map2);
}

TEST(CGMap, MappedForcesOfACGPotentialAreItsExactGradient) {
    // 7 atoms; a slice, disjoint COM beads (one atom unmapped), overlapping COM beads and an
    // explicit valid force map: all must return -∇V(R) for U(r) = V(Ξ(r)).
    std::vector<double> masses = {12.011, 1.008, 1.008, 15.999, 14.007, 1.008, 32.06};
    expectMeanForceOfCGPotential(SliceMap(7, {6, 2, 3, 0}), 11);
    expectMeanForceOfCGPotential(LinearMap::centerOfMass({{0, 1, 2}, {3}, {4, 5}}, masses), 12);
    expectMeanForceOfCGPotential(LinearMap::centerOfMass({{0, 1, 2, 3}, {3, 4, 5}, {5, 6}}, masses), 13);

    // Explicit b for two disjoint COM beads: instead of aggregating, put each bead's force on
    // its heaviest atom scaled by 1/c (a legal but different force map).
    LinearMap com = LinearMap::centerOfMass({{0, 1, 2}, {3, 4}}, masses);
    MatrixXd c = com.getCoefficients();
    MatrixXd b = MatrixXd::Zero(2, 7);
    b(0, 0) = 1 / c(0, 0);
    b(1, 3) = 1 / c(1, 3);
    LinearMap explicitMap(c, b);
    EXPECT_EQ(explicitMap.getForceMapType(), ForceMapType::Explicit);
    expectConsistent(explicitMap);
    expectMeanForceOfCGPotential(explicitMap, 14);
}

TEST(CGMap, DistributedForcesMatchFiniteDifferencesOfTheCGPotential) {
    std::vector<double> masses = {12.011, 1.008, 1.008, 15.999, 14.007};
    LinearMap map = LinearMap::centerOfMass({{0, 1, 2}, {2, 3}, {4}}, masses);
    std::vector<double> r = randomVector(15, 21, 0.6);
    std::vector<double> gradient;
    cgPotential(map.mapPositions(r), &gradient);
    for (double& g : gradient)
        g = -g;
    std::vector<double> f = map.distributeForces(gradient);
    const double h = 1e-5;
    for (size_t k = 0; k < r.size(); k++) {
        std::vector<double> plus = r, minus = r;
        plus[k] += h;
        minus[k] -= h;
        double numeric = -(cgPotential(map.mapPositions(plus)) - cgPotential(map.mapPositions(minus))) / (2 * h);
        EXPECT_NEAR(f[k], numeric, 1e-7 * (1 + std::abs(numeric))) << "coordinate " << k;
    }
}

TEST(CGMap, TranslationsAndUniformForces) {
    std::vector<double> masses = {12.011, 1.008, 1.008, 15.999, 14.007, 1.008};
    // Groups partition all six atoms: 3, 2 and 1 atoms.
    LinearMap com = LinearMap::centerOfMass({{0, 1, 2}, {3, 4}, {5}}, masses);
    SliceMap slice(6, {4, 1});
    const double shift[3] = {0.3, -1.2, 2.5};
    const double g[3] = {1.5, -0.25, 4.0};
    std::vector<double> r = randomVector(18, 31);
    std::vector<double> shifted = r, uniform(18);
    for (int j = 0; j < 6; j++)
        for (int d = 0; d < 3; d++) {
            shifted[3 * j + d] += shift[d];
            uniform[3 * j + d] = g[d];
        }
    for (const LinearMap* map : {static_cast<const LinearMap*>(&com), static_cast<const LinearMap*>(&slice)}) {
        std::vector<double> R = map->mapPositions(r), Rs = map->mapPositions(shifted);
        for (size_t k = 0; k < R.size(); k++)
            EXPECT_NEAR(Rs[k] - R[k], shift[k % 3], 1e-14);
    }
    // A uniform force g on every atom: each COM bead gets n_I g (the total force on its atoms), so
    // the total force N g is conserved; each slice bead gets g.
    std::vector<double> F = com.mapForces(uniform);
    const int sizes[3] = {3, 2, 1};
    double total[3] = {0, 0, 0};
    for (int I = 0; I < 3; I++)
        for (int d = 0; d < 3; d++) {
            EXPECT_NEAR(F[3 * I + d], sizes[I] * g[d], 1e-14);
            total[d] += F[3 * I + d];
        }
    for (int d = 0; d < 3; d++)
        EXPECT_NEAR(total[d], 6 * g[d], 1e-13);
    std::vector<double> Fs = slice.mapForces(uniform);
    for (size_t k = 0; k < Fs.size(); k++)
        EXPECT_EQ(Fs[k], g[k % 3]);
}

TEST(CGMap, BatchesMatchSingleConfigurations) {
    LinearMap map = LinearMap::centerOfMass({{0, 1}, {1, 2, 3}}, fourMasses);
    const int batch = 3;
    std::vector<double> r = randomVector(batch * 12, 41), f = randomVector(batch * 12, 42);
    std::vector<double> R(batch * 6), F(batch * 6);
    map.mapPositions(batch, r.data(), R.data());
    map.mapForces(batch, f.data(), F.data());
    for (int item = 0; item < batch; item++) {
        std::vector<double> ri(r.begin() + 12 * item, r.begin() + 12 * (item + 1));
        std::vector<double> fi(f.begin() + 12 * item, f.begin() + 12 * (item + 1));
        std::vector<double> Ri = map.mapPositions(ri), Fi = map.mapForces(fi);
        for (int k = 0; k < 6; k++) {
            EXPECT_EQ(R[6 * item + k], Ri[k]);
            EXPECT_EQ(F[6 * item + k], Fi[k]);
        }
    }
    EXPECT_EQ(map.mapPositions(r).size(), static_cast<size_t>(batch * 6));
    EXPECT_TRUE(map.mapPositions(std::vector<double>()).empty());
    EXPECT_NE(errorMessage([&] { map.mapPositions(std::vector<double>(13)); }).find("positions must hold"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { map.mapForces(std::vector<double>(11)); }).find("forces must hold"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { map.distributeForces(std::vector<double>(5)); }).find("cgForces"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { map.mapPositions(-1, r.data(), R.data()); }).find("batchSize"), std::string::npos);
}

TEST(CGMap, LinearMapErrorsNameTheProblem) {
    MatrixXd c(2, 3);
    c << 0.5, 0.5, 0, 0, 0.4, 0.5;
    std::string message = errorMessage([&] { LinearMap map(c); });
    EXPECT_NE(message.find("bead 1"), std::string::npos) << message;
    EXPECT_NE(message.find("sum to 1"), std::string::npos) << message;
    EXPECT_NE(message.find("0.9"), std::string::npos) << message;

    MatrixXd zeroRow(2, 3);
    zeroRow << 0, 0, 0, 0, 0, 1;
    message = errorMessage([&] { LinearMap map(zeroRow); });
    EXPECT_NE(message.find("bead 0"), std::string::npos) << message;

    MatrixXd nonFinite(1, 2);
    nonFinite << std::nan(""), 1;
    message = errorMessage([&] { LinearMap map(nonFinite); });
    EXPECT_NE(message.find("coefficients(0, 0) is not finite"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap map(MatrixXd(0, 3)); });
    EXPECT_NE(message.find("at least one row"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap::centerOfMass({{0, 1}, {}}, fourMasses); });
    EXPECT_NE(message.find("groups[1]"), std::string::npos) << message;
    EXPECT_NE(message.find("empty"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap::centerOfMass({{0, 4}}, fourMasses); });
    EXPECT_NE(message.find("groups[0]"), std::string::npos) << message;
    EXPECT_NE(message.find("atom index 4 out of range [0, 4)"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap::centerOfMass({{0, -1}}, fourMasses); });
    EXPECT_NE(message.find("out of range"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap::centerOfMass({{2, 1, 2}}, fourMasses); });
    EXPECT_NE(message.find("atom 2 is listed twice"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap::centerOfMass({{0, 1}}, {12.0, 0.0, 1.0}); });
    EXPECT_NE(message.find("masses[1]"), std::string::npos) << message;

    message = errorMessage([&] { LinearMap::centerOfMass({{0}}, {}); });
    EXPECT_NE(message.find("masses"), std::string::npos) << message;

    // Bead 0's atoms are a subset of bead 1's with proportional coefficients: no local force map.
    message = errorMessage([&] { LinearMap::centerOfMass({{0, 1}, {0, 1, 2}}, fourMasses); });
    EXPECT_NE(message.find("bead 0 shares atoms with bead(s) 1"), std::string::npos) << message;

    // Explicit force maps: wrong shape, and inconsistent weights (the aggregate map of bead 0 is
    // applied to a centre-of-mass bead that overlaps bead 1).
    MatrixXd com = LinearMap::centerOfMass({{0, 1}, {1, 2}}, fourMasses).getCoefficients();
    message = errorMessage([&] { LinearMap map(com, MatrixXd::Zero(2, 3)); });
    EXPECT_NE(message.find("forceCoefficients must have the shape"), std::string::npos) << message;
    MatrixXd b(2, 4);
    b << 1, 1, 0, 0, 0, 1, 1, 0;
    message = errorMessage([&] { LinearMap map(com, b); });
    EXPECT_NE(message.find("I = 0, J = 1"), std::string::npos) << message;
    EXPECT_NE(message.find("δ_IJ"), std::string::npos) << message;

    LinearMap ok = LinearMap::centerOfMass({{0, 1}}, fourMasses);
    message = errorMessage([&] { ok.getBeadAtoms(1); });
    EXPECT_NE(message.find("bead index 1 out of range"), std::string::npos) << message;
}

TEST(CGMap, SliceMapErrors) {
    std::string message = errorMessage([] { SliceMap map(4, {}); });
    EXPECT_NE(message.find("atoms"), std::string::npos) << message;
    message = errorMessage([] { SliceMap map(4, {0, 4}); });
    EXPECT_NE(message.find("atoms[1]: atom index 4 out of range [0, 4)"), std::string::npos) << message;
    message = errorMessage([] { SliceMap map(4, {2, 1, 2}); });
    EXPECT_NE(message.find("atoms[2]: atom 2 is listed twice"), std::string::npos) << message;
    message = errorMessage([] { SliceMap map(0, {0}); });
    EXPECT_NE(message.find("numAtoms"), std::string::npos) << message;
}

TEST(CGMap, AlanineDipeptideMappings) {
    SliceMap heavy = SliceMap::alanineDipeptideHeavyAtom();
    EXPECT_EQ(heavy.getNumAtoms(), 22);
    EXPECT_EQ(heavy.getNumBeads(), 10);
    // CH3(ACE) C O N CA CB C O N CH3(NME): every atom that is not a hydrogen.
    EXPECT_EQ(heavy.getAtoms(), (std::vector<int>{1, 4, 5, 6, 8, 10, 14, 15, 16, 18}));
    const std::vector<int> hydrogens = {0, 2, 3, 7, 9, 11, 12, 13, 17, 19, 20, 21};
    for (int h : hydrogens)
        EXPECT_EQ(std::count(heavy.getAtoms().begin(), heavy.getAtoms().end(), h), 0) << h;
    EXPECT_EQ(heavy.getAtoms().size() + hydrogens.size(), 22u);

    SliceMap core = SliceMap::alanineDipeptideCoreBeta();
    EXPECT_EQ(core.getNumAtoms(), 22);
    EXPECT_EQ(core.getNumBeads(), 6);
    // C(ACE) N CA CB C N(NME): the φ (4-6-8-14) and ψ (6-8-14-16) atoms plus Cβ (10).
    EXPECT_EQ(core.getAtoms(), (std::vector<int>{4, 6, 8, 10, 14, 16}));

    for (const SliceMap* map : {&heavy, &core}) {
        EXPECT_EQ(map->getForceMapType(), ForceMapType::Aggregate);
        expectConsistent(*map);
    }
    EXPECT_EQ(SliceMap::alanineDipeptide("heavy_atom").getAtoms(), heavy.getAtoms());
    EXPECT_EQ(SliceMap::alanineDipeptide("core_beta").getAtoms(), core.getAtoms());
    std::string message = errorMessage([] { SliceMap::alanineDipeptide("core"); });
    EXPECT_NE(message.find("\"core\""), std::string::npos) << message;
    EXPECT_NE(message.find("core_beta"), std::string::npos) << message;
}
