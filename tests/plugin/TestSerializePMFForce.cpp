// XML round trip of a System with a PMFForce: the model is embedded, energies identical.
#include "PMFForceTestUtils.h"
#include "openmm/OpenMMException.h"
#include "openmm/VerletIntegrator.h"
#include "openmm/serialization/XmlSerializer.h"
#include <gtest/gtest.h>
#include <memory>
#include <sstream>

using namespace OpenMM;
using namespace CGFlowPlugin;
using namespace cgflowtest;

extern "C" void registerCGFlowReferenceKernelFactories();

TEST(PMFForceSerialization, RoundTripGivesIdenticalEnergies) {
    System system;
    for (int i = 0; i < 6; i++)
        system.addParticle(1.0);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 16, 1}, 3, cgflow::nn::Activation::Softplus, 4));
    addAllFeatureKinds(*force);
    force->setForceGroup(3);
    force->setName("my pmf");
    force->setUsesPeriodicBoundaryConditions(true);
    force->setPrecision("mixed");
    system.setDefaultPeriodicBoxVectors(Vec3(4, 0, 0), Vec3(0, 4, 0), Vec3(0, 0, 4));
    system.addForce(force);

    std::stringstream buffer;
    XmlSerializer::serialize<System>(&system, "System", buffer);
    System* copy = XmlSerializer::deserialize<System>(buffer);
    const PMFForce& restored = dynamic_cast<const PMFForce&>(copy->getForce(0));
    EXPECT_EQ(restored.getForceGroup(), 3);
    EXPECT_EQ(restored.getName(), "my pmf");
    EXPECT_TRUE(restored.usesPeriodicBoundaryConditions());
    EXPECT_EQ(restored.getPrecision(), "mixed");
    EXPECT_EQ(restored.getModelBytes(), force->getModelBytes());
    ASSERT_EQ(restored.getNumFeatures(), force->getNumFeatures());
    for (int i = 0; i < force->getNumFeatures(); i++) {
        EXPECT_EQ(restored.getFeatureType(i), force->getFeatureType(i));
        EXPECT_EQ(restored.getFeatureParticles(i), force->getFeatureParticles(i));
        EXPECT_EQ(restored.getFeatureAxis(i), force->getFeatureAxis(i));
        EXPECT_EQ(restored.getFeaturePeriod(i), force->getFeaturePeriod(i));
    }
    VerletIntegrator i1(0.001), i2(0.001);
    Context c1(system, i1, Platform::getPlatformByName("Reference"));
    Context c2(*copy, i2, Platform::getPlatformByName("Reference"));
    std::vector<Vec3> pos = randomPositions(6, 8, 2.0);
    EXPECT_EQ(energyAt(c1, pos), energyAt(c2, pos));
    delete copy;
}

/** The XML of a two-particle System whose PMFForce (one distance, a tiny model) has this precision. */
static std::string twoParticleSystemXml(const std::string& precision) {
    System system;
    for (int i = 0; i < 2; i++)
        system.addParticle(1.0);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({1, 4, 1}, 1, cgflow::nn::Activation::Tanh, 4));
    force->addDistance(0, 1);
    force->setPrecision(precision);
    system.addForce(force);
    std::stringstream buffer;
    XmlSerializer::serialize<System>(&system, "System", buffer);
    return buffer.str();
}

TEST(PMFForceSerialization, CorruptEmbeddedModelIsRejected) {
    std::string xml = twoParticleSystemXml("float64");
    size_t at = xml.find("model=\"");
    ASSERT_NE(at, std::string::npos);
    xml.replace(at + 7, 4, "!!!!");
    std::stringstream corrupted(xml);
    EXPECT_THROW(XmlSerializer::deserialize<System>(corrupted), OpenMMException);
}

TEST(PMFForceSerialization, ParticleGroupsRoundTrip) {
    System system;
    for (int i = 0; i < 12; i++)
        system.addParticle(1.0);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 16, 1}, 2, cgflow::nn::Activation::Tanh, 6));
    addAllFeatureKinds(*force);
    force->addParticleGroup({11, 1, 2, 3, 4, 5});
    force->addParticleGroup({6, 7, 8, 9, 10, 0});
    system.addForce(force);
    std::stringstream buffer;
    XmlSerializer::serialize<System>(&system, "System", buffer);
    System* copy = XmlSerializer::deserialize<System>(buffer);
    const PMFForce& restored = dynamic_cast<const PMFForce&>(copy->getForce(0));
    ASSERT_EQ(restored.getNumParticleGroups(), 2);
    EXPECT_EQ(restored.getParticleGroup(0), force->getParticleGroup(0));
    EXPECT_EQ(restored.getParticleGroup(1), force->getParticleGroup(1));
    VerletIntegrator i1(0.001), i2(0.001);
    Context c1(system, i1, Platform::getPlatformByName("Reference"));
    Context c2(*copy, i2, Platform::getPlatformByName("Reference"));
    std::vector<Vec3> pos = randomPositions(12, 3, 1.0);
    EXPECT_EQ(energyAt(c1, pos), energyAt(c2, pos));
    delete copy;
}

// Version 2 files (before the precision) read as float64; a bad precision attribute is refused by name.
TEST(PMFForceSerialization, PrecisionAttributeAndOlderVersions) {
    const std::string xml = twoParticleSystemXml("mixed");
    auto replaced = [](std::string text, const std::string& from, const std::string& to) {
        size_t at = text.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos)
            text.replace(at, from.size(), to);
        return text;
    };
    // The PMFForce node is the only one at version 3.
    std::stringstream old(replaced(replaced(xml, "precision=\"mixed\"", ""), "version=\"3\"", "version=\"2\""));
    std::unique_ptr<System> fromOld(XmlSerializer::deserialize<System>(old));
    EXPECT_EQ(dynamic_cast<const PMFForce&>(fromOld->getForce(0)).getPrecision(), "float64");
    std::stringstream bad(replaced(xml, "precision=\"mixed\"", "precision=\"half\""));
    try {
        delete XmlSerializer::deserialize<System>(bad);
        FAIL() << "no exception";
    }
    catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("'precision'"), std::string::npos) << e.what();
    }
}

int main(int argc, char** argv) {
    registerCGFlowReferenceKernelFactories();
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
