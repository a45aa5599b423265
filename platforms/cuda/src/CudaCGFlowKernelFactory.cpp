#include "CommonBoltzmannGeneratorKernels.h"
#include "CommonCGFlowKernels.h"
#include "CommonCGMonteCarloKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/cuda/CudaContext.h"
#include "openmm/cuda/CudaPlatform.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

class CudaCGFlowKernelFactory : public KernelFactory {
public:
    KernelImpl* createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const override {
        CudaPlatform::PlatformData& data = *static_cast<CudaPlatform::PlatformData*>(context.getPlatformData());
        CudaContext& cu = *data.contexts[0];
        if (name == CalcPMFForceKernel::Name())
            return new CommonCalcPMFForceKernel(name, platform, cu);
        if (name == IntegrateBoltzmannGeneratorStepKernel::Name())
            return new CommonIntegrateBoltzmannGeneratorStepKernel(name, platform, cu);
        if (name == IntegrateCGMonteCarloStepKernel::Name())
            return new CommonIntegrateCGMonteCarloStepKernel(name, platform, cu);
        throw OpenMMException("CudaCGFlowKernelFactory: no kernel named " + name);
    }
};

} // namespace

extern "C" OPENMM_EXPORT void registerPlatforms() {
}

// File-local so that our own entry points cannot be interposed by another plugin's
// registerKernelFactories() symbol.
static void registerFactories() {
    try {
        Platform& platform = Platform::getPlatformByName("CUDA");
        KernelFactory* factory = new CudaCGFlowKernelFactory();
        platform.registerKernelFactory(CalcPMFForceKernel::Name(), factory);
        platform.registerKernelFactory(IntegrateBoltzmannGeneratorStepKernel::Name(), factory);
        platform.registerKernelFactory(IntegrateCGMonteCarloStepKernel::Name(), factory);
    }
    catch (std::exception&) {
        // The CUDA platform is not available; nothing to register.
    }
}

extern "C" OPENMM_EXPORT void registerCGFlowCUDAKernelFactories() {
    try {
        Platform::getPlatformByName("CUDA");
    }
    catch (...) {
        Platform::registerPlatform(new CudaPlatform());
    }
    registerFactories();
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerFactories();
}
