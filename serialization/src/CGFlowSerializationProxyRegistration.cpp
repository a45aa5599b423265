#include "BoltzmannGeneratorIntegrator.h"
#include "BoltzmannGeneratorIntegratorProxy.h"
#include "CGMonteCarloIntegrator.h"
#include "CGMonteCarloIntegratorProxy.h"
#include "PMFForce.h"
#include "PMFForceProxy.h"
#include "openmm/serialization/SerializationProxy.h"

// Registered when libOpenMMCGFlow is loaded, so XmlSerializer knows our classes from C++
// and from Python (the SWIG module links this library) alike.
extern "C" __attribute__((constructor)) void registerCGFlowSerializationProxies() {
    OpenMM::SerializationProxy::registerProxy(typeid(CGFlowPlugin::PMFForce), new CGFlowPlugin::PMFForceProxy());
    OpenMM::SerializationProxy::registerProxy(typeid(CGFlowPlugin::BoltzmannGeneratorIntegrator),
                                              new CGFlowPlugin::BoltzmannGeneratorIntegratorProxy());
    OpenMM::SerializationProxy::registerProxy(typeid(CGFlowPlugin::CGMonteCarloIntegrator),
                                              new CGFlowPlugin::CGMonteCarloIntegratorProxy());
}
