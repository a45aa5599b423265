#ifndef CGFLOW_CGMONTECARLOINTEGRATOR_PROXY_H_
#define CGFLOW_CGMONTECARLOINTEGRATOR_PROXY_H_

#include "openmm/serialization/SerializationProxy.h"

namespace CGFlowPlugin {

/**
 * XML serialization of CGMonteCarloIntegrator: temperature, proposal scale, seed, the uncertainty
 * search's settings and the moved coordinates. Walker state, statistics and found points belong to
 * a Context, so they are not written (as OpenMM's integrators do not write their random state).
 */
class CGMonteCarloIntegratorProxy : public OpenMM::SerializationProxy {
public:
    CGMonteCarloIntegratorProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const override;
    void* deserialize(const OpenMM::SerializationNode& node) const override;
};

} // namespace CGFlowPlugin

#endif
