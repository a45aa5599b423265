// PositionMap (flow output <-> particle positions) and the boltzmann_generator model file.
#include "CoreTestUtils.h"
#include "cgflow/coords/PositionMap.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "cgflow/io/models/FlowFile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace cgflow;
using coords::InternalCoordinates;
using coords::PositionMap;
using coords::ZMatrix;
using cgflowtest::errorMessage;

namespace {

std::vector<double> randomCloud(std::mt19937_64& rng, int numAtoms, int batch) {
    std::uniform_real_distribution<double> u(-0.6, 0.6);
    std::vector<double> x(static_cast<size_t>(batch) * numAtoms * 3);
    for (double& v : x)
        v = u(rng);
    return x;
}

double distance(const double* x, int i, int j) {
    return std::sqrt(std::pow(x[3 * i] - x[3 * j], 2) + std::pow(x[3 * i + 1] - x[3 * j + 1], 2) +
                     std::pow(x[3 * i + 2] - x[3 * j + 2], 2));
}

nlohmann::json alanineFlowConfig(const PositionMap& map) {
    std::vector<int> circular;
    const std::vector<bool> flags = map.getCircular();
    for (size_t d = 0; d < flags.size(); d++)
        if (flags[d])
            circular.push_back(static_cast<int>(d));
    return {{"dimension", map.getDimension()}, {"circular", circular}, {"num_layers", 2}, {"hidden", 8}, {"num_threads", 1}};
}

} // namespace

TEST(PositionMap, InternalRoundTripKeepsShapeAndCentroid) {
    std::mt19937_64 rng(4);
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    std::vector<double> reference = randomCloud(rng, 22, 1);
    ic.setNormalization(reference.data());
    const PositionMap map = PositionMap::internal(ic);
    ASSERT_EQ(map.getDimension(), 60);
    ASSERT_EQ(map.getNumParticles(), 22);
    const int n = 5;
    std::vector<double> x = randomCloud(rng, 22, n), y(60 * n), back(66 * n), logDetIn(n), logDetOut(n);
    std::vector<double> templ = randomCloud(rng, 22, 1);
    map.fromPositions(n, x.data(), y.data(), logDetIn.data());
    map.toPositions(n, y.data(), templ.data(), back.data(), logDetOut.data());
    double templCentroid[3] = {0, 0, 0};
    for (int i = 0; i < 22; i++)
        for (int a = 0; a < 3; a++)
            templCentroid[a] += templ[3 * i + a] / 22;
    for (int s = 0; s < n; s++) {
        EXPECT_NEAR(logDetIn[s], logDetOut[s], 1e-9);
        // Same molecule up to a rigid motion: every pair distance is kept.
        for (int i = 0; i < 22; i++)
            for (int j = i + 1; j < 22; j++)
                ASSERT_NEAR(distance(&x[66 * s], i, j), distance(&back[66 * s], i, j), 1e-9);
        for (int a = 0; a < 3; a++) {
            double c = 0;
            for (int i = 0; i < 22; i++)
                c += back[66 * s + 3 * i + a] / 22;
            EXPECT_NEAR(c, templCentroid[a], 1e-12);
        }
    }
    // JSON round trip: the same map, bit for bit.
    const PositionMap copy = PositionMap::fromJson(map.toJson());
    EXPECT_EQ(copy.toJson(), map.toJson());
    std::vector<double> y2(60 * n);
    copy.fromPositions(n, x.data(), y2.data());
    EXPECT_EQ(y, y2);
}

TEST(PositionMap, CartesianSlotsKeepTheOtherCoordinates) {
    const PositionMap map = PositionMap::cartesian(3, {{1, 0}, {2, 2}});
    const std::vector<double> templ = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const std::vector<double> y = {-1, -2, 10, 20};
    std::vector<double> x(18), logDet(2, 7.0), yBack(4);
    map.toPositions(2, y.data(), templ.data(), x.data(), logDet.data());
    EXPECT_EQ(std::vector<double>(x.begin(), x.begin() + 9), (std::vector<double>{1, 2, 3, -1, 5, 6, 7, 8, -2}));
    EXPECT_EQ(std::vector<double>(x.begin() + 9, x.end()), (std::vector<double>{1, 2, 3, 10, 5, 6, 7, 8, 20}));
    EXPECT_EQ(logDet, (std::vector<double>{0, 0}));
    map.fromPositions(2, x.data(), yBack.data());
    EXPECT_EQ(yBack, y);
    EXPECT_EQ(PositionMap::fromJson(map.toJson()).toJson(), map.toJson());
    EXPECT_EQ(PositionMap::allCartesian(2).getDimension(), 6);
}

TEST(PositionMap, ErrorsNameTheArgument) {
    EXPECT_NE(errorMessage([] { PositionMap::cartesian(0, {{0, 0}}); }).find("numParticles must be >= 1"), std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::cartesian(2, {}); }).find("slots is empty"), std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::cartesian(2, {{2, 0}}); }).find("slots[0] particle 2 is out of range"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::cartesian(2, {{1, 3}}); }).find("axis must be 0, 1 or 2"), std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::cartesian(2, {{1, 1}, {1, 1}}); }).find("slots[1]"), std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::fromJson({{"type", "polar"}}); }).find("\"type\" must be"), std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::fromJson({{"type", "cartesian"}, {"num_particles", 1}, {"slots", {{0, 0}}}, {"x", 1}}); })
                  .find("unknown key \"x\""),
              std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::fromJson({{"type", "internal"}}); }).find("\"z_matrix\" is required"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { PositionMap::cartesian(1, {{0, 0}}).getInternalCoordinates(); }).find("Cartesian map"),
              std::string::npos);
}

TEST(BoltzmannGeneratorFile, RoundTripAndErrors) {
    const PositionMap map = PositionMap::internal(InternalCoordinates(ZMatrix::alanineDipeptide()));
    auto flow = flows::Flow::fromConfig(alanineFlowConfig(map));
    std::vector<double> params = flow->getParameters();
    std::mt19937_64 rng(1);
    std::normal_distribution<double> noise(0, 0.01);
    for (double& p : params)
        p += noise(rng);
    flow->setParameters(params);
    const std::string bytes = io::encodeBoltzmannGenerator(*flow, map, {{"note", "test"}});
    io::DecodedBoltzmannGenerator decoded = io::decodeBoltzmannGenerator(bytes, "model.safetensors");
    EXPECT_EQ(decoded.flow->getParameters(), params);
    EXPECT_EQ(decoded.positions->toJson(), map.toJson());
    EXPECT_EQ(decoded.info["note"], "test");
    EXPECT_EQ(io::encodeBoltzmannGenerator(*decoded.flow, *decoded.positions, decoded.info), bytes);

    // A plain flow file is not a Boltzmann generator; errors start with the source name.
    const std::string plain = io::encodeFlow(*flow);
    EXPECT_EQ(errorMessage([&] { io::decodeBoltzmannGenerator(plain, "plain.safetensors"); })
                  .rfind("plain.safetensors: model kind is 'flow', expected 'boltzmann_generator'", 0),
              0u);
    // Dimension mismatch and a free torsion that the flow treats as a real number.
    EXPECT_NE(errorMessage([&] { io::encodeBoltzmannGenerator(*flow, PositionMap::allCartesian(2)); })
                  .find("the flow has dimension 60 but the position map needs 6"),
              std::string::npos);
    nlohmann::json realConfig = alanineFlowConfig(map);
    realConfig["circular"] = nlohmann::json::array();
    auto realFlow = flows::Flow::fromConfig(realConfig);
    EXPECT_NE(errorMessage([&] { io::encodeBoltzmannGenerator(*realFlow, map); }).find("is a free torsion but the flow treats it as a real number"),
              std::string::npos);
}

namespace {

/** The first `count` circular columns of a Z-matrix. */
std::vector<int> circularColumns(const ZMatrix& z, int count) {
    std::vector<int> columns;
    for (int c = 0; c < z.getNumInternal() && static_cast<int>(columns.size()) < count; c++)
        if (z.isCircularColumn(c))
            columns.push_back(c);
    return columns;
}

double wrapped(double angle) {
    return angle - 2 * M_PI * std::floor((angle + M_PI) / (2 * M_PI));
}

} // namespace

TEST(PositionMap, ConditionColumnsAreTheUnconditionalMapWithThoseColumnsGiven) {
    std::mt19937_64 rng(11);
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    std::vector<double> reference = randomCloud(rng, 22, 1);
    ic.setNormalization(reference.data());
    const std::vector<int> cols = circularColumns(ic.getZMatrix(), 2);
    ASSERT_EQ(cols.size(), 2u);
    // Condition index 0 sets the second column and index 1 the first: the indices are the map's choice.
    const PositionMap plain = PositionMap::internal(ic);
    const PositionMap map = PositionMap::internal(ic, {{cols[1], 0}, {cols[0], 1}});
    ASSERT_EQ(map.getDimension(), 58);
    ASSERT_EQ(map.getNumConditionValues(), 2);
    EXPECT_EQ(map.getColumnSources()[cols[0]], -2);
    EXPECT_EQ(map.getColumnSources()[cols[1]], -1);
    const int n = 4;
    std::vector<double> x = randomCloud(rng, 22, n), full(60 * n), y(58 * n), own(2 * n), logDetPlain(n), logDet(n);
    plain.fromPositions(n, x.data(), full.data(), logDetPlain.data());
    map.fromPositions(n, x.data(), y.data(), logDet.data(), own.data());
    std::vector<double> condition(2 * n);
    for (int s = 0; s < n; s++) {
        EXPECT_EQ(logDet[s], logDetPlain[s]);
        int d = 0;
        for (int c = 0; c < 60; c++)
            if (c != cols[0] && c != cols[1])
                EXPECT_EQ(y[58 * s + d++], full[60 * s + c]);
        // Each condition column reports its physical dihedral (the model value plus the shift).
        EXPECT_NEAR(own[2 * s + 0], wrapped(full[60 * s + cols[1]] + ic.getShift()[cols[1]]), 1e-12);
        EXPECT_NEAR(own[2 * s + 1], wrapped(full[60 * s + cols[0]] + ic.getShift()[cols[0]]), 1e-12);
        condition[2 * s + 0] = own[2 * s + 0];
        condition[2 * s + 1] = own[2 * s + 1];
    }
    // Built back from y and the condition: the same molecule as the plain map builds from the full vector.
    const std::vector<double> templ = randomCloud(rng, 22, 1);
    std::vector<double> back(66 * n), backPlain(66 * n), logDetOut(n), logDetPlainOut(n);
    map.toPositions(n, y.data(), templ.data(), back.data(), logDetOut.data(), condition.data());
    plain.toPositions(n, full.data(), templ.data(), backPlain.data(), logDetPlainOut.data());
    for (int i = 0; i < 66 * n; i++)
        ASSERT_NEAR(back[i], backPlain[i], 1e-10);
    for (int s = 0; s < n; s++)
        EXPECT_NEAR(logDetOut[s], logDetPlainOut[s], 1e-12);
    // Another condition moves those dihedrals and nothing else.
    condition[0] = wrapped(condition[0] + 1.0);
    map.toPositions(1, y.data(), templ.data(), back.data(), nullptr, condition.data());
    std::vector<double> yAgain(58), ownAgain(2);
    map.fromPositions(1, back.data(), yAgain.data(), nullptr, ownAgain.data());
    EXPECT_NEAR(ownAgain[0], condition[0], 1e-10);
    EXPECT_NEAR(ownAgain[1], condition[1], 1e-10);
    for (int d = 0; d < 58; d++)
        EXPECT_NEAR(yAgain[d], y[d], 1e-9);
    // Circular flags follow the columns; JSON round trip bit for bit.
    const std::vector<bool> circular = map.getCircular();
    ASSERT_EQ(circular.size(), 58u);
    for (int d = 0; d < 58; d++)
        EXPECT_EQ(circular[d], ic.getZMatrix().isCircularColumn(map.getColumnOfDimension(d)));
    const PositionMap copy = PositionMap::fromJson(map.toJson());
    EXPECT_EQ(copy.toJson(), map.toJson());
    EXPECT_EQ(copy.getConditionColumns().size(), 2u);
    EXPECT_FALSE(plain.toJson().contains("condition_columns"));
}

TEST(PositionMap, ConditionColumnErrorsNameTheEntry) {
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    const int circular = circularColumns(ic.getZMatrix(), 1)[0];
    EXPECT_NE(errorMessage([&] { PositionMap::internal(ic, {{0, 0}}); }).find("conditionColumns[0] column 0"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { PositionMap::internal(ic, {{0, 0}}); }).find("is not a circular dihedral"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { PositionMap::internal(ic, {{60, 0}}); }).find("out of range [0, 60)"), std::string::npos);
    EXPECT_NE(errorMessage([&] { PositionMap::internal(ic, {{circular, 0}, {circular, 1}}); })
                  .find("conditionColumns[1] column " + std::to_string(circular) + " is listed twice"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { PositionMap::internal(ic, {{circular, -1}}); }).find("condition index must be >= 0"),
              std::string::npos);
    const PositionMap map = PositionMap::internal(ic, {{circular, 0}});
    std::vector<double> y(59, 0.1), templ(66, 0.0), x(66);
    EXPECT_NE(errorMessage([&] { map.toPositions(1, y.data(), templ.data(), x.data()); }).find("none was given"),
              std::string::npos);
    const double c = 0.3;
    EXPECT_NE(errorMessage([&] { PositionMap::internal(ic).toPositions(1, y.data(), templ.data(), x.data(), nullptr, &c); })
                  .find("no condition columns"),
              std::string::npos);
    nlohmann::json config = map.toJson();
    config["condition_columns"] = {{circular}};
    EXPECT_NE(errorMessage([&] { PositionMap::fromJson(config); }).find("positions.condition_columns[0] must be a [column, condition] pair"),
              std::string::npos);
    config["condition_columns"] = 3;
    EXPECT_NE(errorMessage([&] { PositionMap::fromJson(config); }).find("must be an array"), std::string::npos);
}

TEST(BoltzmannGeneratorFile, ConditionalMapNeedsTheFlowsContext) {
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    const std::vector<int> cols = circularColumns(ic.getZMatrix(), 2);
    const PositionMap map = PositionMap::internal(ic, {{cols[0], 0}, {cols[1], 1}});
    nlohmann::json config = alanineFlowConfig(map);
    config["context_dimension"] = 2;
    config["context_circular"] = {0, 1};
    auto flow = flows::Flow::fromConfig(config);
    const std::string bytes = io::encodeBoltzmannGenerator(*flow, map);
    io::DecodedBoltzmannGenerator decoded = io::decodeBoltzmannGenerator(bytes, "model.safetensors");
    EXPECT_EQ(decoded.positions->toJson(), map.toJson());
    config["context_dimension"] = 1;
    config["context_circular"] = {0};
    auto narrow = flows::Flow::fromConfig(config);
    EXPECT_NE(errorMessage([&] { io::encodeBoltzmannGenerator(*narrow, map); })
                  .find("the position map reads condition value 1 but the flow is conditioned on 1 values"),
              std::string::npos);
}

// Found reviewing the parsers for the fuzz targets (tests/fuzz): integers were read with json::get<int>(), which
// wraps 4294967297 to 1, so a map claiming 2^32 + 1 particles (or a particle index 2^32) was silently accepted
// as a different one. Integers outside the int range are now refused, naming the field.
TEST(PositionMap, IntegersOutsideTheIntRangeAreRefusedNotWrapped) {
    EXPECT_NE(errorMessage([] {
                  PositionMap::fromJson({{"type", "cartesian"}, {"num_particles", 4294967297LL}, {"slots", {{0, 0}}}});
              }).find("positions.num_particles must be an integer that fits in 32 bits, got 4294967297"),
              std::string::npos);
    EXPECT_NE(errorMessage([] {
                  PositionMap::fromJson({{"type", "cartesian"}, {"num_particles", 1}, {"slots", {{4294967296LL, 0}}}});
              }).find("positions.slots[0][0] must be an integer"),
              std::string::npos);
}
