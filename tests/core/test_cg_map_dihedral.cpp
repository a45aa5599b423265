#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/CGMap.h"
#include "cgflow/coords/CGMapDihedral.h"
#include "cgflow/coords/Features.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::coords::DihedralCGMap;
using cgflow::coords::Feature;
using cgflow::coords::FeatureType;
using cgflow::coords::PeriodicBox;
using cgflow::coords::SliceMap;

namespace {

const double pi = 3.14159265358979323846;

using cgflowtest::errorMessage;

// Random, generic (non-collinear) configurations of numAtoms atoms, 0.3 nm spread.
std::vector<double> randomConfigurations(int batch, int numAtoms, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.3);
    std::vector<double> r(3 * static_cast<size_t>(batch) * numAtoms);
    for (double& x : r)
        x = normal(rng);
    return r;
}

double wrapAngle(double a) {
    return std::remainder(a, 2 * pi);
}

// A CG potential of (φ, ψ) with its derivatives.
double cgPotential(double phi, double psi, double* dPhi = nullptr, double* dPsi = nullptr) {
    if (dPhi)
        *dPhi = -3.0 * std::sin(phi - 0.4) - 0.8 * std::sin(phi + psi);
    if (dPsi)
        *dPsi = 3.0 * std::cos(2 * psi) - 0.8 * std::sin(phi + psi);
    return 3.0 * std::cos(phi - 0.4) + 1.5 * std::sin(2 * psi) + 0.8 * std::cos(phi + psi);
}

double atomisticEnergy(const DihedralCGMap& map, const std::vector<double>& positions) {
    std::vector<double> s = map.mapPositions(positions);
    return cgPotential(s[0], s[1]);
}

} // namespace

TEST(DihedralCGMap, KnownAnglesAndSignConvention) {
    // j at the origin, k on +z, i on +x: l at azimuth θ around z has φ = θ (IUPAC/OpenMM sign).
    DihedralCGMap map(4, {{0, 1, 2, 3}});
    for (double theta : {0.3, 1.0, -2.0, 3.0, -0.7}) {
        std::vector<double> r = {1, 0, 0, 0, 0, 0, 0, 0, 1, std::cos(theta), std::sin(theta), 1};
        EXPECT_NEAR(map.mapPositions(r)[0], theta, 1e-14) << theta;
    }
    std::vector<double> trans = {1, 0, 0, 0, 0, 0, 0, 0, 1, -1, 0, 1};
    EXPECT_NEAR(std::abs(map.mapPositions(trans)[0]), pi, 1e-14);
}

TEST(DihedralCGMap, AlanineDipeptidePhiPsiMatchFeatures) {
    DihedralCGMap map = DihedralCGMap::alanineDipeptidePhiPsi();
    EXPECT_EQ(map.getNumAtoms(), 22);
    ASSERT_EQ(map.getNumDihedrals(), 2);
    EXPECT_EQ(map.getDihedralAtoms(0), (std::array<int, 4>{4, 6, 8, 14}));
    EXPECT_EQ(map.getDihedralAtoms(1), (std::array<int, 4>{6, 8, 14, 16}));
    const int batch = 4;
    std::vector<double> r = randomConfigurations(batch, 22, 1);
    std::vector<double> s = map.mapPositions(r);
    ASSERT_EQ(s.size(), static_cast<size_t>(2 * batch));
    std::vector<Feature> features = {{FeatureType::Dihedral, {4, 6, 8, 14}}, {FeatureType::Dihedral, {6, 8, 14, 16}}};
    for (int item = 0; item < batch; item++) {
        double cs[4];
        cgflow::coords::computeFeatures(features, r.data() + 66 * item, PeriodicBox(), cs);
        EXPECT_NEAR(s[2 * item], std::atan2(cs[1], cs[0]), 1e-14);
        EXPECT_NEAR(s[2 * item + 1], std::atan2(cs[3], cs[2]), 1e-14);
        EXPECT_LE(std::abs(s[2 * item]), pi);
    }
}

TEST(DihedralCGMap, CoreBetaBeadsCarryPhiAndPsi) {
    // The Core Beta slice keeps exactly the atoms φ and ψ need: the dihedrals of beads
    // (0,1,2,4) and (1,2,4,5) of the 6-bead configuration are the all-atom φ and ψ.
    SliceMap core = SliceMap::alanineDipeptideCoreBeta();
    DihedralCGMap onBeads(6, {{0, 1, 2, 4}, {1, 2, 4, 5}});
    DihedralCGMap onAtoms = DihedralCGMap::alanineDipeptidePhiPsi();
    std::vector<double> r = randomConfigurations(3, 22, 2);
    std::vector<double> a = onAtoms.mapPositions(r), b = onBeads.mapPositions(core.mapPositions(r));
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); k++)
        EXPECT_EQ(a[k], b[k]);
}

TEST(DihedralCGMap, JacobianMatchesFiniteDifferences) {
    DihedralCGMap map = DihedralCGMap::alanineDipeptidePhiPsi();
    const int batch = 2;
    std::vector<double> r = randomConfigurations(batch, 22, 3);
    std::vector<double> jacobian = map.computeJacobian(r);
    ASSERT_EQ(jacobian.size(), static_cast<size_t>(batch * 2 * 66));
    const double h = 1e-6;
    for (int item = 0; item < batch; item++)
        for (int c = 0; c < 66; c++) {
            std::vector<double> plus(r.begin() + 66 * item, r.begin() + 66 * (item + 1)), minus = plus;
            plus[c] += h;
            minus[c] -= h;
            std::vector<double> sp = map.mapPositions(plus), sm = map.mapPositions(minus);
            for (int k = 0; k < 2; k++) {
                double numeric = wrapAngle(sp[k] - sm[k]) / (2 * h);
                EXPECT_NEAR(jacobian[(item * 2 + k) * 66 + c], numeric, 1e-6 * (1 + std::abs(numeric)))
                    << "item " << item << " dihedral " << k << " coordinate " << c;
            }
        }
}

TEST(DihedralCGMap, AtomForcesOfASingleDihedralPotential) {
    // U(r) = V(φ(r)) with V(φ) = 2 cos(3φ) + 0.7 sin φ.
    DihedralCGMap map(22, {{4, 6, 8, 14}});
    auto v = [](double phi) { return 2 * std::cos(3 * phi) + 0.7 * std::sin(phi); };
    auto dv = [](double phi) { return -6 * std::sin(3 * phi) + 0.7 * std::cos(phi); };
    std::vector<double> r = randomConfigurations(1, 22, 4);
    double phi = map.mapPositions(r)[0];
    double dVdPhi = dv(phi);
    std::vector<double> forces(66, 0.0);
    map.addAtomForces(1, r.data(), &dVdPhi, forces.data());
    std::vector<double> jacobian = map.computeJacobian(r);
    const double h = 1e-6;
    for (int c = 0; c < 66; c++) {
        std::vector<double> plus = r, minus = r;
        plus[c] += h;
        minus[c] -= h;
        double numeric = -(v(map.mapPositions(plus)[0]) - v(map.mapPositions(minus)[0])) / (2 * h);
        EXPECT_NEAR(forces[c], numeric, 1e-6 * (1 + std::abs(numeric))) << c;
        EXPECT_NEAR(forces[c], -dVdPhi * jacobian[c], 1e-13 * (1 + std::abs(forces[c]))) << c;
    }
}

TEST(DihedralCGMap, AtomForcesAccumulateAndMatchFiniteDifferences) {
    DihedralCGMap map = DihedralCGMap::alanineDipeptidePhiPsi();
    const int batch = 2;
    std::vector<double> r = randomConfigurations(batch, 22, 5);
    std::vector<double> s = map.mapPositions(r);
    std::vector<double> dVds(2 * batch);
    for (int item = 0; item < batch; item++)
        cgPotential(s[2 * item], s[2 * item + 1], &dVds[2 * item], &dVds[2 * item + 1]);
    // Start from non-zero forces: addAtomForces must add to them.
    std::vector<double> forces(r.size(), 0.25);
    map.addAtomForces(batch, r.data(), dVds.data(), forces.data());
    const double h = 1e-6;
    for (int item = 0; item < batch; item++) {
        std::vector<double> ri(r.begin() + 66 * item, r.begin() + 66 * (item + 1));
        for (int c = 0; c < 66; c++) {
            std::vector<double> plus = ri, minus = ri;
            plus[c] += h;
            minus[c] -= h;
            double numeric = -(atomisticEnergy(map, plus) - atomisticEnergy(map, minus)) / (2 * h);
            EXPECT_NEAR(forces[66 * item + c] - 0.25, numeric, 1e-6 * (1 + std::abs(numeric)))
                << "item " << item << " coordinate " << c;
        }
    }
}

TEST(DihedralCGMap, GeneralizedForcesOfADihedralPotentialAreExact) {
    // For U(r) = V(φ(r), ψ(r)) the mapped generalized forces must be -∂V/∂φ and -∂V/∂ψ exactly,
    // both with the preset side-group rotations and with the default single-atom ones.
    DihedralCGMap preset = DihedralCGMap::alanineDipeptidePhiPsi();
    DihedralCGMap defaults(22, {{4, 6, 8, 14}, {6, 8, 14, 16}});
    const int batch = 3;
    std::vector<double> r = randomConfigurations(batch, 22, 6);
    std::vector<double> s = preset.mapPositions(r);
    std::vector<double> dVds(2 * batch);
    for (int item = 0; item < batch; item++)
        cgPotential(s[2 * item], s[2 * item + 1], &dVds[2 * item], &dVds[2 * item + 1]);
    std::vector<double> forces(r.size(), 0.0);
    preset.addAtomForces(batch, r.data(), dVds.data(), forces.data());
    for (const DihedralCGMap* map : {&preset, &defaults}) {
        ASSERT_TRUE(map->canMapForces());
        std::vector<double> generalized = map->mapForces(r, forces);
        ASSERT_EQ(generalized.size(), dVds.size());
        for (size_t k = 0; k < dVds.size(); k++)
            EXPECT_NEAR(generalized[k], -dVds[k], 1e-11 * (1 + std::abs(dVds[k]))) << k;
    }

    // The same with atom forces from finite differences of U alone (no shared code path).
    std::vector<double> r0(r.begin(), r.begin() + 66), numericForces(66);
    const double h = 1e-6;
    for (int c = 0; c < 66; c++) {
        std::vector<double> plus = r0, minus = r0;
        plus[c] += h;
        minus[c] -= h;
        numericForces[c] = -(atomisticEnergy(preset, plus) - atomisticEnergy(preset, minus)) / (2 * h);
    }
    std::vector<double> generalized = preset.mapForces(r0, numericForces);
    EXPECT_NEAR(generalized[0], -dVds[0], 1e-5);
    EXPECT_NEAR(generalized[1], -dVds[1], 1e-5);
}

TEST(DihedralCGMap, ForceMapVectorsAreDualToTheGradientsAndDivergenceFree) {
    DihedralCGMap preset = DihedralCGMap::alanineDipeptidePhiPsi();
    DihedralCGMap defaults(22, {{4, 6, 8, 14}, {6, 8, 14, 16}});
    EXPECT_EQ(defaults.getRotatingAtoms(0), (std::vector<int>{4})); // l = 14 is in ψ, so the i end
    EXPECT_EQ(defaults.getRotatingAtoms(1), (std::vector<int>{16}));
    EXPECT_EQ(preset.getRotatingAtoms(0), (std::vector<int>{0, 1, 2, 3, 4, 5, 7}));
    EXPECT_EQ(preset.getRotatingAtoms(1), (std::vector<int>{15, 16, 17, 18, 19, 20, 21}));
    std::vector<double> r = randomConfigurations(1, 22, 7);
    std::vector<double> f = randomConfigurations(1, 22, 8);
    for (const DihedralCGMap* map : {&preset, &defaults}) {
        std::vector<double> jacobian = map->computeJacobian(r);
        std::vector<double> b(2 * 66);
        map->computeForceMapVectors(1, r.data(), b.data());
        // b_k · ∇s_m = δ_km (Ciccotti et al.'s condition).
        for (int k = 0; k < 2; k++)
            for (int m = 0; m < 2; m++) {
                double dot = 0;
                for (int c = 0; c < 66; c++)
                    dot += b[k * 66 + c] * jacobian[m * 66 + c];
                EXPECT_NEAR(dot, k == m ? 1.0 : 0.0, 1e-12) << k << " " << m;
            }
        // ∇·b_k = 0, so no k_BT ∇·b correction is needed in the mean force.
        const double h = 1e-5;
        for (int k = 0; k < 2; k++) {
            double divergence = 0;
            for (int c = 0; c < 66; c++) {
                std::vector<double> plus = r, minus = r, bp(2 * 66), bm(2 * 66);
                plus[c] += h;
                minus[c] -= h;
                map->computeForceMapVectors(1, plus.data(), bp.data());
                map->computeForceMapVectors(1, minus.data(), bm.data());
                divergence += (bp[k * 66 + c] - bm[k * 66 + c]) / (2 * h);
            }
            EXPECT_NEAR(divergence, 0.0, 1e-8) << k;
        }
        // mapForces is b·f.
        std::vector<double> generalized = map->mapForces(r, f);
        for (int k = 0; k < 2; k++) {
            double dot = 0;
            for (int c = 0; c < 66; c++)
                dot += b[k * 66 + c] * f[c];
            EXPECT_NEAR(generalized[k], dot, 1e-13 * (1 + std::abs(dot))) << k;
        }
    }
}

TEST(DihedralCGMap, PeriodicImagesDoNotChangeAnglesOrForces) {
    DihedralCGMap map = DihedralCGMap::alanineDipeptidePhiPsi();
    PeriodicBox box;
    box.periodic = true;
    box.a = {3.0, 0, 0};
    box.b = {0.4, 3.2, 0};
    box.c = {-0.3, 0.5, 2.9};
    std::vector<double> r = randomConfigurations(1, 22, 9), f = randomConfigurations(1, 22, 10);
    std::vector<double> moved = r;
    // Move an axis atom, an end atom and a rotating-set atom to other images.
    for (int d = 0; d < 3; d++) {
        moved[3 * 8 + d] += box.a[d] - box.c[d];
        moved[3 * 4 + d] += box.b[d];
        moved[3 * 19 + d] -= 2 * box.c[d];
    }
    std::vector<double> s = map.mapPositions(r, box), sMoved = map.mapPositions(moved, box);
    std::vector<double> g = map.mapForces(r, f, box), gMoved = map.mapForces(moved, f, box);
    for (int k = 0; k < 2; k++) {
        EXPECT_NEAR(sMoved[k], s[k], 1e-12);
        EXPECT_NEAR(gMoved[k], g[k], 1e-12 * (1 + std::abs(g[k])));
    }
    // Without the box the moved copy is a different molecule: the test can fail.
    EXPECT_GT(std::abs(wrapAngle(map.mapPositions(moved)[0] - s[0])), 1e-6);
}

TEST(DihedralCGMap, BatchesMatchSingleConfigurations) {
    DihedralCGMap map = DihedralCGMap::alanineDipeptidePhiPsi();
    const int batch = 3;
    std::vector<double> r = randomConfigurations(batch, 22, 11), f = randomConfigurations(batch, 22, 12);
    std::vector<double> s = map.mapPositions(r), g = map.mapForces(r, f), j = map.computeJacobian(r);
    for (int item = 0; item < batch; item++) {
        std::vector<double> ri(r.begin() + 66 * item, r.begin() + 66 * (item + 1));
        std::vector<double> fi(f.begin() + 66 * item, f.begin() + 66 * (item + 1));
        std::vector<double> si = map.mapPositions(ri), gi = map.mapForces(ri, fi), ji = map.computeJacobian(ri);
        for (int k = 0; k < 2; k++) {
            EXPECT_EQ(s[2 * item + k], si[k]);
            EXPECT_EQ(g[2 * item + k], gi[k]);
        }
        for (int c = 0; c < 132; c++)
            EXPECT_EQ(j[132 * item + c], ji[c]);
    }
    EXPECT_NE(errorMessage([&] { map.mapPositions(std::vector<double>(65)); }).find("positions must hold"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { map.mapForces(r, std::vector<double>(66)); }).find("forces must have the size"),
              std::string::npos);
}

// A zero-length central bond is a degenerate geometry (no rotation axis): 0, not NaN. A NaN position
// is not: the Jacobian, atom forces, force-map vectors and generalized forces are NaN, as the angle is.
TEST(DihedralCGMap, DegenerateAxisGivesZeroButNaNPositionsGiveNaN) {
    DihedralCGMap map(4, {{0, 1, 2, 3}});
    const std::vector<double> ones(12, 1.0);
    std::vector<double> degenerate = {0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1};  // atoms 1 and 2 coincide
    for (double v : map.computeJacobian(degenerate))
        EXPECT_EQ(v, 0.0);
    EXPECT_EQ(map.mapForces(degenerate, ones)[0], 0.0);
    std::vector<double> vectors(12, 7.0);
    map.computeForceMapVectors(1, degenerate.data(), vectors.data());
    for (double v : vectors)
        EXPECT_EQ(v, 0.0);

    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int atom = 0; atom < 4; atom++) {
        std::vector<double> x = randomConfigurations(1, 4, 30);
        for (int c = 0; c < 3; c++)
            x[3 * atom + c] = nan;
        EXPECT_TRUE(std::isnan(map.mapPositions(x)[0]));
        for (double v : map.computeJacobian(x))
            EXPECT_TRUE(std::isnan(v)) << "Jacobian, NaN atom " << atom;
        std::vector<double> forces(12, 0.0);
        const double dVds = 1.0;
        map.addAtomForces(1, x.data(), &dVds, forces.data());
        for (double v : forces)
            EXPECT_TRUE(std::isnan(v)) << "atom forces, NaN atom " << atom;
        // The force map rotates the set {3} about the axis 1-2: it reads atoms 1, 2 and 3 only.
        ASSERT_EQ(map.getRotatingAtoms(0), std::vector<int>{3});
        if (atom == 0)
            continue;
        map.computeForceMapVectors(1, x.data(), vectors.data());
        for (int c = 0; c < 3; c++)
            EXPECT_TRUE(std::isnan(vectors[3 * 3 + c])) << "force-map vector, NaN atom " << atom;
        EXPECT_TRUE(std::isnan(map.mapForces(x, ones)[0])) << "generalized force, NaN atom " << atom;
    }
}

TEST(DihedralCGMap, ErrorsNameTheProblem) {
    std::string message = errorMessage([] { DihedralCGMap map(22, {}); });
    EXPECT_NE(message.find("at least one dihedral"), std::string::npos) << message;
    message = errorMessage([] { DihedralCGMap map(22, {{4, 6, 8, 14}, {6, 8, 8, 16}}); });
    EXPECT_NE(message.find("dihedrals[1]"), std::string::npos) << message;
    message = errorMessage([] { DihedralCGMap map(10, {{4, 6, 8, 14}}); });
    EXPECT_NE(message.find("dihedrals[0]: particle index 14 out of range"), std::string::npos) << message;
    message = errorMessage([] { DihedralCGMap map(22, {{4, 6, 8, 14}}, {{4}, {16}}); });
    EXPECT_NE(message.find("rotatingAtoms must be empty or hold one set per dihedral"), std::string::npos) << message;

    const std::vector<std::array<int, 4>> phiPsi = {{4, 6, 8, 14}, {6, 8, 14, 16}};
    message = errorMessage([&] { DihedralCGMap map(22, phiPsi, {{4, 6}, {}}); });
    EXPECT_NE(message.find("rotatingAtoms[0]"), std::string::npos) << message;
    EXPECT_NE(message.find("central-bond atom"), std::string::npos) << message;
    message = errorMessage([&] { DihedralCGMap map(22, phiPsi, {{0, 1}, {}}); });
    EXPECT_NE(message.find("exactly one of the end atoms 4 and 14"), std::string::npos) << message;
    message = errorMessage([&] { DihedralCGMap map(22, phiPsi, {{}, {15, 16, 4}}); });
    EXPECT_NE(message.find("rotatingAtoms[1]"), std::string::npos) << message;
    EXPECT_NE(message.find("would change dihedrals[0]"), std::string::npos) << message;
    message = errorMessage([&] { DihedralCGMap map(22, phiPsi, {{4, 22}, {}}); });
    EXPECT_NE(message.find("atom index 22 out of range [0, 22)"), std::string::npos) << message;
    message = errorMessage([&] { DihedralCGMap map(22, phiPsi, {{4, 5, 4}, {}}); });
    EXPECT_NE(message.find("atom 4 is listed twice"), std::string::npos) << message;

    // Both ends of each dihedral are used by the other one: no default rotation exists, the map
    // still gives angles and atom forces, but refuses generalized forces.
    DihedralCGMap crossed(6, {{0, 1, 2, 3}, {3, 4, 5, 0}});
    EXPECT_FALSE(crossed.canMapForces());
    EXPECT_TRUE(crossed.getRotatingAtoms(0).empty());
    std::vector<double> r = randomConfigurations(1, 6, 13);
    EXPECT_EQ(crossed.mapPositions(r).size(), 2u);
    message = errorMessage([&] { crossed.mapForces(r, r); });
    EXPECT_NE(message.find("rotatingAtoms"), std::string::npos) << message;
    message = errorMessage([&] { crossed.getDihedralAtoms(2); });
    EXPECT_NE(message.find("dihedral index 2 out of range"), std::string::npos) << message;
}
