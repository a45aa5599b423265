#include "PMFForceProxy.h"
#include "PMFForce.h"
#include "cgflow/Error.h"
#include "cgflow/io/Base64.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <memory>

using namespace CGFlowPlugin;
using namespace OpenMM;

// Version 2 added the particle groups, version 3 the precision; older files are still read (no
// groups, float64).
static const int ProxyVersion = 3;

PMFForceProxy::PMFForceProxy() : SerializationProxy("PMFForce") {
}

void PMFForceProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", ProxyVersion);
    const PMFForce& force = *reinterpret_cast<const PMFForce*>(object);
    node.setIntProperty("forceGroup", force.getForceGroup());
    node.setStringProperty("name", force.getName());
    node.setBoolProperty("usesPeriodic", force.usesPeriodicBoundaryConditions());
    node.setStringProperty("precision", force.getPrecision());
    node.setStringProperty("model", cgflow::io::base64Encode(force.getModelBytes()));
    SerializationNode& features = node.createChildNode("Features");
    for (int i = 0; i < force.getNumFeatures(); i++) {
        SerializationNode& f = features.createChildNode("Feature");
        f.setIntProperty("type", force.getFeatureType(i));
        std::vector<int> particles = force.getFeatureParticles(i);
        for (size_t j = 0; j < particles.size(); j++)
            f.setIntProperty("p" + std::to_string(j + 1), particles[j]);
        if (force.getFeatureType(i) == PMFForce::Coordinate) {
            f.setIntProperty("axis", force.getFeatureAxis(i));
            f.setDoubleProperty("period", force.getFeaturePeriod(i));
        }
    }
    SerializationNode& groups = node.createChildNode("ParticleGroups");
    for (int g = 0; g < force.getNumParticleGroups(); g++) {
        SerializationNode& group = groups.createChildNode("Group");
        for (int p : force.getParticleGroup(g))
            group.createChildNode("Particle").setIntProperty("index", p);
    }
}

void* PMFForceProxy::deserialize(const SerializationNode& node) const {
    int version = node.getIntProperty("version");
    if (version < 1 || version > ProxyVersion)
        throw OpenMMException("PMFForce XML: unsupported version " + std::to_string(version) +
                              " (this build reads up to " + std::to_string(ProxyVersion) + ")");
    auto force = std::make_unique<PMFForce>();
    force->setForceGroup(node.getIntProperty("forceGroup", 0));
    force->setName(node.getStringProperty("name", force->getName()));
    force->setUsesPeriodicBoundaryConditions(node.getBoolProperty("usesPeriodic", false));
    if (version >= 3) {
        try {
            force->setPrecision(node.getStringProperty("precision"));
        }
        catch (const OpenMMException& e) {
            throw OpenMMException(std::string("PMFForce XML: attribute 'precision': ") + e.what());
        }
    }
    std::string model;
    try {
        model = cgflow::io::base64Decode(node.getStringProperty("model"));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("PMFForce XML: attribute 'model': ") + e.what());
    }
    if (!model.empty())
        force->setModelBytes(model);
    for (const SerializationNode& f : node.getChildNode("Features").getChildren()) {
        int type = f.getIntProperty("type");
        switch (type) {
        case PMFForce::Distance:
            force->addDistance(f.getIntProperty("p1"), f.getIntProperty("p2"));
            break;
        case PMFForce::Angle:
            force->addAngle(f.getIntProperty("p1"), f.getIntProperty("p2"), f.getIntProperty("p3"));
            break;
        case PMFForce::Dihedral:
            force->addDihedral(f.getIntProperty("p1"), f.getIntProperty("p2"), f.getIntProperty("p3"), f.getIntProperty("p4"));
            break;
        case PMFForce::Coordinate:
            force->addCoordinate(f.getIntProperty("p1"), f.getIntProperty("axis"), f.getDoubleProperty("period", 0.0));
            break;
        default:
            throw OpenMMException("PMFForce XML: unknown feature type " + std::to_string(type));
        }
    }
    if (version >= 2)
        for (const SerializationNode& group : node.getChildNode("ParticleGroups").getChildren()) {
            std::vector<int> particles;
            for (const SerializationNode& p : group.getChildren())
                particles.push_back(p.getIntProperty("index"));
            force->addParticleGroup(particles);
        }
    return force.release();
}
