// XML round trip of a BoltzmannGeneratorIntegrator: settings and the embedded model survive, and
// the copy draws the same chain as the original.
#include "BoltzmannGeneratorIntegrator.h"
#include "cgflow/coords/PositionMap.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "openmm/Context.h"
#include "openmm/CustomExternalForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include "openmm/serialization/XmlSerializer.h"
#include <gtest/gtest.h>
#include <memory>
#include <sstream>

using namespace OpenMM;
using namespace CGFlowPlugin;

extern "C" void registerCGFlowReferenceKernelFactories();

namespace {

std::string harmonicModel() {
    auto flow = cgflow::flows::Flow::fromConfig({{"dimension", 3}, {"coupling", "affine"}, {"num_layers", 2},
                                                 {"masks", {{true, false, false}}}, {"hidden", 8}, {"num_threads", 1}});
    std::vector<double> params = flow->getParameters();
    for (size_t i = 0; i < params.size(); i++)
        params[i] += 0.05 * std::sin(1.0 + i);
    flow->setParameters(params);
    return cgflow::io::encodeBoltzmannGenerator(*flow, cgflow::coords::PositionMap::allCartesian(1));
}

System* harmonicSystem() {
    System* system = new System();
    system->addParticle(12.0);
    CustomExternalForce* force = new CustomExternalForce("50*(x^2+y^2+z^2)");
    force->addParticle(0);
    system->addForce(force);
    return system;
}

std::vector<double> chain(BoltzmannGeneratorIntegrator& integrator, int steps) {
    std::unique_ptr<System> system(harmonicSystem());
    Context context(*system, integrator, Platform::getPlatformByName("Reference"));
    context.setPositions({Vec3(0.1, 0, 0)});
    std::vector<double> trace;
    for (int i = 0; i < steps; i++) {
        integrator.step(1);
        trace.push_back(context.getState(State::Positions).getPositions()[0][0]);
        trace.push_back(integrator.getLastLogWeight());
    }
    return trace;
}

} // namespace

TEST(BoltzmannGeneratorIntegratorSerialization, RoundTripKeepsSettingsAndChain) {
    registerCGFlowReferenceKernelFactories();
    BoltzmannGeneratorIntegrator integrator(310.0, BoltzmannGeneratorIntegrator::Metropolis);
    integrator.setModelBytes(harmonicModel());
    integrator.setRandomNumberSeed(12);
    integrator.setBlockSize(5);
    integrator.setRedrawVelocities(false);
    integrator.setIntegrationForceGroups(3);
    std::stringstream buffer;
    XmlSerializer::serialize<Integrator>(&integrator, "Integrator", buffer);
    std::unique_ptr<Integrator> copyBase(XmlSerializer::deserialize<Integrator>(buffer));
    BoltzmannGeneratorIntegrator* copy = dynamic_cast<BoltzmannGeneratorIntegrator*>(copyBase.get());
    ASSERT_NE(copy, nullptr);
    EXPECT_EQ(copy->getModelBytes(), integrator.getModelBytes());
    EXPECT_EQ(copy->getTemperature(), 310.0);
    EXPECT_EQ(copy->getMode(), BoltzmannGeneratorIntegrator::Metropolis);
    EXPECT_EQ(copy->getBlockSize(), 5);
    EXPECT_EQ(copy->getRandomNumberSeed(), 12);
    EXPECT_FALSE(copy->getRedrawVelocities());
    EXPECT_EQ(copy->getIntegrationForceGroups(), 3);
    integrator.setIntegrationForceGroups(-1);
    copy->setIntegrationForceGroups(-1);
    EXPECT_EQ(chain(integrator, 30), chain(*copy, 30));
}

TEST(BoltzmannGeneratorIntegratorSerialization, BadXmlIsRejected) {
    BoltzmannGeneratorIntegrator integrator(300.0);
    std::stringstream buffer;
    XmlSerializer::serialize<Integrator>(&integrator, "Integrator", buffer);
    std::string xml = buffer.str();
    const size_t at = xml.find("mode=\"1\"");
    ASSERT_NE(at, std::string::npos);
    xml.replace(at, 8, "mode=\"7\"");
    std::stringstream bad(xml);
    try {
        delete XmlSerializer::deserialize<Integrator>(bad);
        FAIL() << "an unknown mode was accepted";
    } catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("'mode' must be 0 or 1"), std::string::npos);
    }
}
