#ifndef CGFLOW_PMFFORCE_PROXY_H_
#define CGFLOW_PMFFORCE_PROXY_H_

#include "openmm/serialization/SerializationProxy.h"

namespace CGFlowPlugin {

/** XML serialization of PMFForce; the model file is embedded (base64), so a System round-trips alone. */
class PMFForceProxy : public OpenMM::SerializationProxy {
public:
    PMFForceProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const override;
    void* deserialize(const OpenMM::SerializationNode& node) const override;
};

} // namespace CGFlowPlugin

#endif
