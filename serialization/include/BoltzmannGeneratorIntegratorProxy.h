#ifndef CGFLOW_BOLTZMANNGENERATORINTEGRATOR_PROXY_H_
#define CGFLOW_BOLTZMANNGENERATORINTEGRATOR_PROXY_H_

#include "openmm/serialization/SerializationProxy.h"

namespace CGFlowPlugin {

/**
 * XML serialization of BoltzmannGeneratorIntegrator: settings and the embedded model file (base64).
 * Chain state and statistics belong to a Context, not to the integrator's description, so they are
 * not written (as OpenMM's integrators do not write their random state).
 */
class BoltzmannGeneratorIntegratorProxy : public OpenMM::SerializationProxy {
public:
    BoltzmannGeneratorIntegratorProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const override;
    void* deserialize(const OpenMM::SerializationNode& node) const override;
};

} // namespace CGFlowPlugin

#endif
