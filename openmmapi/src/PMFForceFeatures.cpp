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
    const int copies = force.getNumCopies();
    for (int c = 0; c < copies; c++)
        for (const PMFForce::FeatureInfo& f : force.getFeatures()) {
            cgflow::coords::Feature feature = coreFeature(f);
            if (force.getNumParticleGroups() > 0) {
                const std::vector<int> group = force.getParticleGroup(c);
                for (int& p : feature.particles)
                    p = group[p];
            }
            features.push_back(feature);
        }
    return features;
}

} // namespace CGFlowPlugin
