#include "CGMonteCarloIntegratorProxy.h"
#include "CGMonteCarloIntegrator.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <cmath>
#include <memory>

using namespace CGFlowPlugin;
using namespace OpenMM;

static const int ProxyVersion = 1;

CGMonteCarloIntegratorProxy::CGMonteCarloIntegratorProxy() : SerializationProxy("CGMonteCarloIntegrator") {
}

void CGMonteCarloIntegratorProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", ProxyVersion);
    const CGMonteCarloIntegrator& integrator = *reinterpret_cast<const CGMonteCarloIntegrator*>(object);
    node.setDoubleProperty("temperature", integrator.getTemperature());
    node.setDoubleProperty("proposalScale", integrator.getProposalScale());
    node.setIntProperty("randomSeed", integrator.getRandomNumberSeed());
    node.setDoubleProperty("uncertaintyThreshold", integrator.getUncertaintyThreshold());
    node.setIntProperty("minimumSteps", integrator.getMinimumSteps());
    node.setDoubleProperty("stepSize", integrator.getStepSize());
    node.setDoubleProperty("constraintTolerance", integrator.getConstraintTolerance());
    node.setIntProperty("integrationForceGroups", integrator.getIntegrationForceGroups());
    SerializationNode& coordinates = node.createChildNode("MovedCoordinates");
    for (int i = 0; i < integrator.getNumMovedCoordinates(); i++) {
        SerializationNode& c = coordinates.createChildNode("Coordinate");
        c.setIntProperty("particle", integrator.getMovedParticle(i));
        c.setIntProperty("axis", integrator.getMovedAxis(i));
        c.setDoubleProperty("period", integrator.getMovedPeriod(i));
        if (std::isfinite(integrator.getMovedLowerBound(i))) {
            c.setDoubleProperty("lower", integrator.getMovedLowerBound(i));
            c.setDoubleProperty("upper", integrator.getMovedUpperBound(i));
        }
    }
}

void* CGMonteCarloIntegratorProxy::deserialize(const SerializationNode& node) const {
    const int version = node.getIntProperty("version");
    if (version < 1 || version > ProxyVersion)
        throw OpenMMException("CGMonteCarloIntegrator XML: unsupported version " + std::to_string(version) +
                              " (this build reads up to " + std::to_string(ProxyVersion) + ")");
    auto integrator = std::make_unique<CGMonteCarloIntegrator>(node.getDoubleProperty("temperature"),
                                                               node.getDoubleProperty("proposalScale"));
    integrator->setRandomNumberSeed(node.getIntProperty("randomSeed"));
    integrator->setUncertaintyThreshold(node.getDoubleProperty("uncertaintyThreshold", 0.0));
    integrator->setMinimumSteps(node.getIntProperty("minimumSteps", 0));
    integrator->setStepSize(node.getDoubleProperty("stepSize", 0.0));
    integrator->setConstraintTolerance(node.getDoubleProperty("constraintTolerance", 1e-5));
    integrator->setIntegrationForceGroups(node.getIntProperty("integrationForceGroups", 0xFFFFFFFF));
    for (const SerializationNode& c : node.getChildNode("MovedCoordinates").getChildren()) {
        const int index = integrator->addMovedCoordinate(c.getIntProperty("particle"), c.getIntProperty("axis"),
                                                         c.getDoubleProperty("period", 0.0));
        if (c.hasProperty("lower"))
            integrator->setMovedCoordinateBounds(index, c.getDoubleProperty("lower"), c.getDoubleProperty("upper"));
    }
    return integrator.release();
}
