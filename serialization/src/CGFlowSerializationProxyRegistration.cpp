#include "BoltzmannGeneratorIntegrator.h"
#include "BoltzmannGeneratorIntegratorProxy.h"
#include "PMFForce.h"
#include "PMFForceProxy.h"
#include "openmm/serialization/SerializationProxy.h"

// Registered when libOpenMMCGFlow is loaded, so XmlSerializer knows our classes from C++
// and from Python (the SWIG module links this library) alike.
extern "C" __attribute__((constructor)) void registerCGFlowSerializationProxies() {
    OpenMM::SerializationProxy::registerProxy(typeid(CGFlow::PMFForce), new CGFlow::PMFForceProxy());
    OpenMM::SerializationProxy::registerProxy(typeid(CGFlow::BoltzmannGeneratorIntegrator),
                                              new CGFlow::BoltzmannGeneratorIntegratorProxy());
}
