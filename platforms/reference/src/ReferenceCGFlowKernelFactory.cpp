#include "ReferenceBoltzmannGeneratorKernels.h"
#include "ReferenceCGFlowKernels.h"
#include "ReferenceCGMonteCarloKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

class ReferenceCGFlowKernelFactory : public KernelFactory {
public:
    KernelImpl* createKernelImpl(std::string name, const Platform& platform, ContextImpl&) const override {
        if (name == CalcPMFForceKernel::Name())
            return new ReferenceCalcPMFForceKernel(name, platform);
        if (name == IntegrateBoltzmannGeneratorStepKernel::Name())
            return new ReferenceIntegrateBoltzmannGeneratorStepKernel(name, platform);
        if (name == IntegrateCGMonteCarloStepKernel::Name())
            return new ReferenceIntegrateCGMonteCarloStepKernel(name, platform);
        throw OpenMMException("ReferenceCGFlowKernelFactory: no kernel named " + name);
    }
};

} // namespace

extern "C" OPENMM_EXPORT void registerPlatforms() {
}

// The CPU platform derives from ReferencePlatform, so it is covered by the same kernels.
// Every plugin exports an unqualified registerKernelFactories(); calls between our own
// entry points go through this file-local function so that symbol interposition between
// plugins loaded in one process can never redirect them.
static void registerReferenceFactories() {
    for (int i = 0; i < Platform::getNumPlatforms(); i++) {
        Platform& platform = Platform::getPlatform(i);
        if (dynamic_cast<ReferencePlatform*>(&platform) != nullptr) {
            ReferenceCGFlowKernelFactory* factory = new ReferenceCGFlowKernelFactory();
            platform.registerKernelFactory(CalcPMFForceKernel::Name(), factory);
            platform.registerKernelFactory(IntegrateBoltzmannGeneratorStepKernel::Name(), factory);
            platform.registerKernelFactory(IntegrateCGMonteCarloStepKernel::Name(), factory);
        }
    }
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerReferenceFactories();
}

extern "C" OPENMM_EXPORT void registerCGFlowReferenceKernelFactories() {
    registerReferenceFactories();
}
