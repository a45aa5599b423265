#include "internal/PMFForceFeatures.h"

namespace CGFlowPlugin {

cgflow::coords::Feature coreFeature(const PMFForce::FeatureInfo& feature) {
    cgflow::coords::Feature c;
    c.type = static_cast<cgflow::coords::FeatureType>(feature.type);
    c.particles = feature.particles;
    c.axis = feature.axis;
    c.period = feature.period;
    return c;
}

std::vector<cgflow::coords::Feature> coreFeatures(const PMFForce& force) {
    std::vector<cgflow::coords::Feature> features;
    for (const PMFForce::FeatureInfo& f : force.getFeatures())
        features.push_back(coreFeature(f));
    return features;
}

} // namespace CGFlowPlugin
