#include "AlanineGeometry.h"
#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/Chirality.h"
#include "cgflow/coords/InternalCoordinates.h"
#include "cgflow/coords/ZMatrix.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

using cgflow::Error;
using cgflow::coords::ChiralCenter;
using cgflow::coords::Chirality;
using cgflow::coords::ChiralTorsionRange;
using cgflow::coords::InternalCoordinates;
using cgflow::coords::RigidMotion;
using cgflow::coords::ZMatrix;
using Eigen::Vector3d;

namespace {

const double pi = 3.14159265358979323846;

using cgflowtest::errorMessage;
using cgflowtest::alanineBonds;
using cgflowtest::alanineTleap;


std::vector<double> mirrored(const std::vector<double>& x) {
    std::vector<double> y = x;
    for (size_t i = 2; i < y.size(); i += 3)
        y[i] = -y[i];
    return y;
}

std::vector<double> moved(const std::vector<double>& x, const RigidMotion& motion) {
    std::vector<double> y(x.size());
    for (size_t a = 0; a < x.size() / 3; a++) {
        Vector3d p = motion.rotation * Vector3d(x[3 * a], x[3 * a + 1], x[3 * a + 2]) + motion.translation;
        for (int d = 0; d < 3; d++)
            y[3 * a + d] = p[d];
    }
    return y;
}

ChiralCenter withoutHydrogen(ChiralCenter center) {
    center.alphaHydrogen = -1;
    return center;
}

} // namespace

TEST(Chirality, BothEnantiomersOfAlanineDipeptide) {
    ChiralCenter center = ChiralCenter::alanineDipeptide();
    EXPECT_GT(cgflow::coords::chiralVolume(center, alanineTleap.data()), 0.0);
    EXPECT_EQ(cgflow::coords::chiralityOf(center, alanineTleap.data()), Chirality::L);
    EXPECT_EQ(cgflow::coords::chiralityOf(withoutHydrogen(center), alanineTleap.data()), Chirality::L);
    std::vector<double> image = mirrored(alanineTleap);
    EXPECT_EQ(cgflow::coords::chiralityOf(center, image.data()), Chirality::D);
    EXPECT_EQ(cgflow::coords::chiralityOf(withoutHydrogen(center), image.data()), Chirality::D);
    // Swapping two substituents (CB <-> HA) inverts the centre as well.
    std::vector<double> swapped = alanineTleap;
    for (int d = 0; d < 3; d++)
        std::swap(swapped[3 * 9 + d], swapped[3 * 10 + d]);
    EXPECT_EQ(cgflow::coords::chiralityOf(center, swapped.data()), Chirality::D);

    // A batch of rigidly moved copies of both enantiomers: handedness survives every proper rotation.
    std::vector<double> batch;
    std::vector<Chirality> expected;
    for (uint64_t k = 0; k < 10; k++) {
        RigidMotion motion = RigidMotion::randomRotation(17, k);
        motion.translation = Vector3d(k, -1.0 * k, 0.5);
        std::vector<double> x = moved(k % 2 == 0 ? alanineTleap : image, motion);
        batch.insert(batch.end(), x.begin(), x.end());
        expected.push_back(k % 2 == 0 ? Chirality::L : Chirality::D);
    }
    EXPECT_EQ(cgflow::coords::detectChirality(center, 22, 10, batch.data()), expected);
}

TEST(Chirality, DegenerateAndInvalidInput) {
    ChiralCenter center = ChiralCenter::alanineDipeptide();
    std::vector<double> flat = alanineTleap;
    for (size_t i = 2; i < flat.size(); i += 3)
        flat[i] = 0; // every atom in one plane
    EXPECT_EQ(cgflow::coords::chiralityOf(withoutHydrogen(center), flat.data()), Chirality::Undetermined);
    std::vector<double> broken = alanineTleap;
    broken[3 * 10] = std::numeric_limits<double>::quiet_NaN();
    EXPECT_EQ(cgflow::coords::chiralityOf(center, broken.data()), Chirality::Undetermined);

    ChiralCenter bad = center;
    bad.betaCarbon = 22;
    EXPECT_NE(errorMessage([&] { cgflow::coords::detectChirality(bad, 22, 1, alanineTleap.data()); })
                  .find("ChiralCenter.betaCarbon = 22 is outside [0, 22)"),
              std::string::npos);
    bad = center;
    bad.alphaHydrogen = 6;
    EXPECT_NE(errorMessage([&] { cgflow::coords::validateChiralCenter(bad, 22); }).find("alphaHydrogen = 6 repeats nitrogen"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { cgflow::coords::detectChirality(center, 22, -1, alanineTleap.data()); }).find("batch = -1"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { cgflow::coords::detectChirality(center, 22, 1, nullptr); }).find("cartesian is null"),
              std::string::npos);
}

TEST(Chirality, TorsionRangeOfBondGraphZMatrix) {
    // fromBonds places CB by the improper CB-CA-N-C: its sign alone is the handedness.
    ZMatrix z = ZMatrix::fromBonds(22, alanineBonds);
    ChiralCenter center = ChiralCenter::alanineDipeptide();
    ChiralTorsionRange range = cgflow::coords::findChiralTorsionRange(z, center);
    EXPECT_EQ(range.column, z.getDihedralColumn(z.getRowOfAtom(10)));
    EXPECT_EQ(range.referenceColumn, -1);
    EXPECT_FALSE(z.isCircularColumn(range.column));
    EXPECT_EQ(range.lower, -pi);
    EXPECT_EQ(range.upper, 0.0);
    InternalCoordinates ic(z);
    std::vector<double> q(60), qImage(60);
    std::vector<double> image = mirrored(alanineTleap);
    ic.toInternal(1, alanineTleap.data(), q.data());
    ic.toInternal(1, image.data(), qImage.data());
    EXPECT_TRUE(range.contains(q.data()));
    EXPECT_FALSE(range.contains(qImage.data()));

    // Over random values of that torsion (the rest of the molecule as in tleap), the range and the
    // Cartesian test agree sample by sample, and flipping its sign flips the handedness.
    std::mt19937_64 rng(8);
    std::uniform_real_distribution<double> uniform(-pi, pi);
    const int batch = 200;
    std::vector<double> qs;
    for (int s = 0; s < batch; s++) {
        std::vector<double> one = q;
        one[range.column] = uniform(rng);
        qs.insert(qs.end(), one.begin(), one.end());
    }
    std::vector<double> x(batch * 66);
    ic.toCartesian(batch, qs.data(), x.data());
    std::vector<Chirality> detected = cgflow::coords::detectChirality(withoutHydrogen(center), 22, batch, x.data());
    int numL = 0;
    for (int s = 0; s < batch; s++) {
        bool inRange = range.contains(qs.data() + 60 * s);
        EXPECT_EQ(detected[s], inRange ? Chirality::L : Chirality::D) << "torsion " << qs[60 * s + range.column];
        numL += inRange;
    }
    EXPECT_GT(numL, 60);
    EXPECT_LT(numL, 140);
}

TEST(Chirality, TorsionRangeOfFabZMatrix) {
    // FAB's CB torsion CB-CA-N-C(ACE) is circular and moves with phi: the handedness is its value
    // relative to phi (the dihedral that places C(ACE) from C, i.e. about the same CA-N axis).
    ZMatrix z = ZMatrix::alanineDipeptide();
    ChiralCenter center = ChiralCenter::alanineDipeptide();
    ChiralTorsionRange range = cgflow::coords::findChiralTorsionRange(z, center);
    EXPECT_EQ(range.column, z.getDihedralColumn(z.getRowOfAtom(10)));
    EXPECT_EQ(range.referenceColumn, z.getDihedralColumn(z.getRowOfAtom(4)));
    EXPECT_TRUE(z.isCircularColumn(range.column));
    EXPECT_TRUE(z.isCircularColumn(range.referenceColumn));

    InternalCoordinates ic(z);
    std::vector<double> q(60);
    ic.toInternal(1, alanineTleap.data(), q.data());
    EXPECT_TRUE(range.contains(q.data()));
    // Random phi, psi and CB torsions: the range (relative to phi) and the Cartesian test always agree.
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<double> uniform(-pi, pi);
    const int batch = 300;
    int psi = z.getDihedralColumn(z.getRowOfAtom(16));
    std::vector<double> qs;
    for (int s = 0; s < batch; s++) {
        std::vector<double> one = q;
        one[range.column] = uniform(rng);
        one[range.referenceColumn] = uniform(rng);
        one[psi] = uniform(rng);
        qs.insert(qs.end(), one.begin(), one.end());
    }
    std::vector<double> x(batch * 66);
    ic.toCartesian(batch, qs.data(), x.data());
    std::vector<Chirality> detected = cgflow::coords::detectChirality(withoutHydrogen(center), 22, batch, x.data());
    int numL = 0;
    for (int s = 0; s < batch; s++) {
        bool inRange = range.contains(qs.data() + 60 * s);
        EXPECT_EQ(detected[s], inRange ? Chirality::L : Chirality::D) << "sample " << s;
        numL += inRange;
    }
    EXPECT_GT(numL, 100);
    EXPECT_LT(numL, 200);
}

TEST(Chirality, TorsionRangeFromHydrogenAndMissingTorsion) {
    // A Z-matrix where HA (not CB) carries the improper: the range flips to (0, pi) for HA-CA-N-C.
    std::vector<cgflow::coords::ZMatrixRow> rows = {{1}, {0, 1}, {2, 1, 0}, {3, 1, 0, 2}, {4, 1, 0, 3}};
    ChiralCenter center;
    center.alphaCarbon = 1;
    center.nitrogen = 0;
    center.carbonylCarbon = 2;
    center.alphaHydrogen = 3;
    center.betaCarbon = 4; // placed from HA: not usable, so HA's row decides
    ChiralTorsionRange range = cgflow::coords::findChiralTorsionRange(ZMatrix(rows), center);
    EXPECT_EQ(range.column, 5);
    EXPECT_EQ(range.referenceColumn, -1);
    EXPECT_EQ(range.lower, 0.0);
    EXPECT_EQ(range.upper, pi);
    // HA at +2.1 rad about CA-N from C, CB at -2.1 rad (its own dihedral is measured from HA, so it is
    // -2.1 - 2.1 + 2 pi): the Cartesian test must say L.
    InternalCoordinates ic{ZMatrix(rows)};
    std::vector<double> q = {0.146, 0.152, 1.92, 0.109, 1.91, 2.1, 0.153, 1.91, 2 * pi - 4.2};
    std::vector<double> x(15);
    ic.toCartesian(1, q.data(), x.data());
    EXPECT_EQ(cgflow::coords::chiralityOf(center, x.data()), Chirality::L);
    EXPECT_TRUE(range.contains(q.data()));

    // No torsion about CA-N or CA-C places CB or HA: Error, pointing to detectChirality.
    std::vector<cgflow::coords::ZMatrixRow> other = {{0}, {1, 0}, {2, 1, 0}, {3, 2, 1, 0}, {4, 3, 1, 0}};
    ChiralCenter c2;
    c2.alphaCarbon = 1;
    c2.nitrogen = 0;
    c2.carbonylCarbon = 2;
    c2.betaCarbon = 4;
    EXPECT_NE(errorMessage([&] { cgflow::coords::findChiralTorsionRange(ZMatrix(other), c2); }).find("detectChirality"),
              std::string::npos);
}
