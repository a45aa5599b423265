// The weights engine, part 5 (cgflow/stats/Structure.h): radius of gyration, Kabsch RMSD (proper
// rotations only), bond score and diversity score, on constructed configurations.
#include "CoreTestUtils.h"
#include "cgflow/stats/Structure.h"

#include <gtest/gtest.h>

#include <Eigen/Geometry>
#include <cmath>
#include <random>

using namespace cgflow::stats;
using cgflowtest::errorMessage;

namespace {

std::vector<double> randomCloud(int numAtoms, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    std::vector<double> cloud(3 * numAtoms);
    for (double& v : cloud)
        v = u(rng);
    return cloud;
}

std::vector<double> transformed(const std::vector<double>& x, const Eigen::Matrix3d& m, const Eigen::Vector3d& shift) {
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size() / 3; i++) {
        const Eigen::Vector3d r = m * Eigen::Vector3d(x[3 * i], x[3 * i + 1], x[3 * i + 2]) + shift;
        for (int a = 0; a < 3; a++)
            out[3 * i + a] = r[a];
    }
    return out;
}

/** A dimer along x with the given length, centred at `centre` (its RMSD to another is |a - b| / 2). */
std::vector<double> dimer(double length, double centre = 0) {
    return {centre - length / 2, 0, 0, centre + length / 2, 0, 0};
}

std::vector<double> concat(std::initializer_list<std::vector<double>> parts) {
    std::vector<double> out;
    for (const auto& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

} // namespace

TEST(StatsStructure, RadiusOfGyration) {
    // Two atoms 0.4 nm apart: Rg = 0.2 with equal masses; with masses 1 and 3 the COM is 0.1 from
    // the heavy atom: Rg^2 = (1 * 0.3^2 + 3 * 0.1^2) / 4 = 0.03.
    const std::vector<double> pair = {0, 0, 0, 0.4, 0, 0};
    EXPECT_NEAR(radiusOfGyration(2, pair)[0], 0.2, 1e-15);
    EXPECT_NEAR(radiusOfGyration(2, pair, {1, 3})[0], std::sqrt(0.03), 1e-15);
    // Invariant under rotation and translation; a batch gives one value per sample.
    const std::vector<double> cloud = randomCloud(9, 3);
    const Eigen::Matrix3d rotation = Eigen::AngleAxisd(2.3, Eigen::Vector3d(0.2, -1, 0.7).normalized()).toRotationMatrix();
    const std::vector<double> masses = {1, 12, 14, 16, 1, 1, 12, 32, 1};
    const std::vector<double> batch = concat({cloud, transformed(cloud, rotation, {5, -2, 1})});
    const std::vector<double> rg = radiusOfGyration(9, batch, masses);
    ASSERT_EQ(rg.size(), 2u);
    EXPECT_NEAR(rg[0], rg[1], 1e-14);
    EXPECT_NE(radiusOfGyration(9, cloud)[0], rg[0]); // the masses matter
    EXPECT_NE(errorMessage([] { radiusOfGyration(2, {0, 0, 0, 1, 1, 1}, {1}); }).find("masses has 1 values"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { radiusOfGyration(2, {0, 0, 0, 1, 1, 1}, {1, 0}); }).find("masses[1] must be finite and > 0"),
              std::string::npos);
}

TEST(StatsStructure, RmsdOfRotatedAndTranslatedCopiesIsZero) {
    const std::vector<double> cloud = randomCloud(7, 2);
    const Eigen::Matrix3d rotation = Eigen::AngleAxisd(1.1, Eigen::Vector3d(1, 2, -0.5).normalized()).toRotationMatrix();
    const std::vector<double> moved = transformed(cloud, rotation, {3, -1, 2});
    EXPECT_NEAR(rmsdPair(7, moved.data(), cloud.data()), 0.0, 1e-12);
    // A batch against one reference; symmetric in its two arguments.
    std::vector<double> shifted = cloud;
    shifted[0] += 0.3;
    const std::vector<double> r = rmsd(7, concat({moved, shifted}), cloud);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_NEAR(r[0], 0.0, 1e-12);
    // One atom displaced by 0.3: positive, and at most the unaligned 0.3 / sqrt(7).
    EXPECT_GT(r[1], 0);
    EXPECT_LE(r[1], 0.3 / std::sqrt(7.0) + 1e-12);
    EXPECT_NEAR(rmsdPair(7, cloud.data(), shifted.data()), r[1], 1e-14);
    EXPECT_NE(errorMessage([] { rmsd(2, {0, 0, 0, 1, 1}, {0, 0, 0, 1, 1, 1}); }).find("not a multiple of 3 * numAtoms"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { rmsd(2, {0, 0, 0, 1, 1, 1}, {0, 0, 0}); }).find("reference has 3 values"), std::string::npos);
}

TEST(StatsStructure, RmsdUsesTheBestProperRotationNeverAReflection) {
    // A chiral cloud and its mirror image: no proper rotation superposes them, so the RMSD stays
    // positive, and it is the best over proper rotations: none of 20000 random ones does better.
    const std::vector<double> cloud = randomCloud(7, 5);
    Eigen::Matrix3d mirror = Eigen::Matrix3d::Identity();
    mirror(0, 0) = -1;
    const std::vector<double> image = transformed(cloud, mirror, {0.4, 0, -0.2});
    const double best = rmsdPair(7, image.data(), cloud.data());
    EXPECT_GT(best, 0.05);
    auto centred = [](std::vector<double> x) {
        Eigen::Vector3d c = Eigen::Vector3d::Zero();
        for (size_t i = 0; i < x.size() / 3; i++)
            c += Eigen::Vector3d(x[3 * i], x[3 * i + 1], x[3 * i + 2]) / (x.size() / 3);
        for (size_t i = 0; i < x.size() / 3; i++)
            for (int a = 0; a < 3; a++)
                x[3 * i + a] -= c[a];
        return x;
    };
    const std::vector<double> a = centred(image), b = centred(cloud);
    std::mt19937_64 rng(9);
    std::normal_distribution<double> normal;
    double found = 1e9;
    for (int trial = 0; trial < 20000; trial++) {
        const Eigen::Quaterniond q(normal(rng), normal(rng), normal(rng), normal(rng));
        const std::vector<double> turned = transformed(a, q.normalized().toRotationMatrix(), Eigen::Vector3d::Zero());
        double sum = 0;
        for (size_t i = 0; i < turned.size(); i++)
            sum += (turned[i] - b[i]) * (turned[i] - b[i]);
        found = std::min(found, std::sqrt(sum / 7));
    }
    EXPECT_LE(best, found + 1e-12);
    EXPECT_LT(found - best, 0.05 * best) << "the random search comes close, so `best` is attainable";
    // A planar configuration's mirror image is a proper rotation of it (by pi about an in-plane axis).
    std::vector<double> planar = randomCloud(6, 8);
    for (int i = 0; i < 6; i++)
        planar[3 * i + 2] = 0;
    const std::vector<double> flipped = transformed(planar, mirror, {1, 1, 1});
    EXPECT_NEAR(rmsdPair(6, flipped.data(), planar.data()), 0.0, 1e-12);
}

TEST(StatsStructure, BondScoreIsTheFractionOfBondsWithinTolerance) {
    // Sample 1: bond 0-1 = 0.15 (ref 0.15), bond 1-2 = 0.10 (ref 0.12: 17 % off). Sample 2: both exact.
    const std::vector<double> x = {0, 0, 0, 0.15, 0, 0, 0.25, 0, 0, 0, 0, 0, 0.15, 0, 0, 0.15, 0.12, 0};
    EXPECT_NEAR(bondScore(3, x, {{0, 1}, {1, 2}}, {0.15, 0.12}), 3.0 / 4.0, 1e-15);
    EXPECT_NEAR(bondScore(3, x, {{0, 1}, {1, 2}}, {0.15, 0.12}, 0.2), 1.0, 1e-15);
    EXPECT_NEAR(bondScore(3, x, {{1, 2}}, {0.12}), 0.5, 1e-15);
    EXPECT_NE(errorMessage([&] { bondScore(3, x, {{0, 3}}, {0.1}); }).find("bonds[0] has atom 3 out of range"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { bondScore(3, x, {{0, 1}}, {0.1, 0.2}); }).find("referenceLengths has 2 values"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { bondScore(3, x, {{0, 1}}, {0.1}, 0); }).find("tolerance must be finite and > 0"),
              std::string::npos);
}

TEST(StatsStructure, DiversityScoreComparesSpreadWithDistanceToTheReference) {
    // Dimers: the RMSD of lengths a and b is |a - b| / 2. Generated lengths (1, 2): their mean pair
    // RMSD is 0.5. Reference (2, 4): cross RMSDs 0.5, 1.5, 0, 1 (mean 0.75). DIV = 1 - 0.5 / 0.75.
    const std::vector<double> generated = concat({dimer(1), dimer(2, 3)});
    const std::vector<double> reference = concat({dimer(2, -1), dimer(4)});
    EXPECT_NEAR(diversityScore(2, generated, reference), 1.0 / 3.0, 1e-14);
    // A collapsed generator (one structure repeated) scores exactly 1.
    const std::vector<double> set = randomCloud(5 * 12, 5);
    std::vector<double> collapsed;
    for (int s = 0; s < 12; s++)
        collapsed.insert(collapsed.end(), set.begin(), set.begin() + 15);
    EXPECT_NEAR(diversityScore(5, collapsed, set), 1.0, 1e-15);
    // A set against itself: the cross mean also counts the n zero self pairs, giving -1 / (n - 1).
    EXPECT_NEAR(diversityScore(5, set, set), -1.0 / 11, 1e-12);
    // A generator broader than the reference scores below 0 (not clamped).
    EXPECT_LT(diversityScore(2, concat({dimer(1), dimer(5)}), concat({dimer(2.9), dimer(3.1)})), 0.0);
    EXPECT_NE(errorMessage([&] { diversityScore(5, std::vector<double>(set.begin(), set.begin() + 15), set); })
                  .find("generated needs >= 2 samples"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { diversityScore(5, collapsed, {}); }).find("reference holds no samples"), std::string::npos);
    EXPECT_NE(errorMessage([&] { diversityScore(7, collapsed, set); }).find("generated has 180 values, not a multiple"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { diversityScore(2, concat({dimer(1), dimer(1)}), dimer(1)); }).find("mean RMSD to the reference is 0"),
              std::string::npos);
}
