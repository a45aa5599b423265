#include "BoltzmannGeneratorIntegratorProxy.h"
#include "BoltzmannGeneratorIntegrator.h"
#include "cgflow/Error.h"
#include "cgflow/io/Base64.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <memory>

using namespace CGFlowPlugin;
using namespace OpenMM;

static const int ProxyVersion = 1;

BoltzmannGeneratorIntegratorProxy::BoltzmannGeneratorIntegratorProxy() : SerializationProxy("BoltzmannGeneratorIntegrator") {
}

void BoltzmannGeneratorIntegratorProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", ProxyVersion);
    const BoltzmannGeneratorIntegrator& integrator = *reinterpret_cast<const BoltzmannGeneratorIntegrator*>(object);
    node.setDoubleProperty("temperature", integrator.getTemperature());
    node.setIntProperty("mode", integrator.getMode());
    node.setIntProperty("blockSize", integrator.getBlockSize());
    node.setIntProperty("randomSeed", integrator.getRandomNumberSeed());
    node.setBoolProperty("redrawVelocities", integrator.getRedrawVelocities());
    node.setDoubleProperty("stepSize", integrator.getStepSize());
    node.setDoubleProperty("constraintTolerance", integrator.getConstraintTolerance());
    node.setIntProperty("integrationForceGroups", integrator.getIntegrationForceGroups());
    node.setStringProperty("model", cgflow::io::base64Encode(integrator.getModelBytes()));
    SerializationNode& condition = node.createChildNode("Condition");
    for (double value : integrator.getConditionVector())
        condition.createChildNode("Value").setDoubleProperty("v", value);
}

void* BoltzmannGeneratorIntegratorProxy::deserialize(const SerializationNode& node) const {
    const int version = node.getIntProperty("version");
    if (version < 1 || version > ProxyVersion)
        throw OpenMMException("BoltzmannGeneratorIntegrator XML: unsupported version " + std::to_string(version) +
                              " (this build reads up to " + std::to_string(ProxyVersion) + ")");
    const int mode = node.getIntProperty("mode");
    if (mode != BoltzmannGeneratorIntegrator::Importance && mode != BoltzmannGeneratorIntegrator::Metropolis)
        throw OpenMMException("BoltzmannGeneratorIntegrator XML: attribute 'mode' must be 0 or 1, got " + std::to_string(mode));
    auto integrator = std::make_unique<BoltzmannGeneratorIntegrator>(
        node.getDoubleProperty("temperature"), static_cast<BoltzmannGeneratorIntegrator::Mode>(mode));
    integrator->setBlockSize(node.getIntProperty("blockSize"));
    integrator->setRandomNumberSeed(node.getIntProperty("randomSeed"));
    integrator->setRedrawVelocities(node.getBoolProperty("redrawVelocities", true));
    integrator->setStepSize(node.getDoubleProperty("stepSize", 0.0));
    integrator->setConstraintTolerance(node.getDoubleProperty("constraintTolerance", 1e-5));
    integrator->setIntegrationForceGroups(node.getIntProperty("integrationForceGroups", 0xFFFFFFFF));
    std::string model;
    try {
        model = cgflow::io::base64Decode(node.getStringProperty("model"));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("BoltzmannGeneratorIntegrator XML: attribute 'model': ") + e.what());
    }
    if (!model.empty())
        integrator->setModelBytes(model);
    std::vector<double> condition;
    for (const SerializationNode& value : node.getChildNode("Condition").getChildren())
        condition.push_back(value.getDoubleProperty("v"));
    integrator->setConditionVector(condition);
    return integrator.release();
}
