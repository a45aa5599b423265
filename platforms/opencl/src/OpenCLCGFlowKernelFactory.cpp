#include "CommonBoltzmannGeneratorKernels.h"
#include "CommonCGFlowKernels.h"
#include "CommonCGMonteCarloKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/opencl/OpenCLContext.h"
#include "openmm/opencl/OpenCLPlatform.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

class OpenCLCGFlowKernelFactory : public KernelFactory {
public:
    KernelImpl* createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const override {
        OpenCLPlatform::PlatformData& data = *static_cast<OpenCLPlatform::PlatformData*>(context.getPlatformData());
        OpenCLContext& cl = *data.contexts[0];
        if (name == CalcPMFForceKernel::Name())
            return new CommonCalcPMFForceKernel(name, platform, cl);
        if (name == IntegrateBoltzmannGeneratorStepKernel::Name())
            return new CommonIntegrateBoltzmannGeneratorStepKernel(name, platform, cl);
        if (name == IntegrateCGMonteCarloStepKernel::Name())
            return new CommonIntegrateCGMonteCarloStepKernel(name, platform, cl);
        throw OpenMMException("OpenCLCGFlowKernelFactory: no kernel named " + name);
    }
};

} // namespace

extern "C" OPENMM_EXPORT void registerPlatforms() {
}

// File-local so that our own entry points cannot be interposed by another plugin's
// registerKernelFactories() symbol.
static void registerFactories() {
    try {
        Platform& platform = Platform::getPlatformByName("OpenCL");
        KernelFactory* factory = new OpenCLCGFlowKernelFactory();
        platform.registerKernelFactory(CalcPMFForceKernel::Name(), factory);
        platform.registerKernelFactory(IntegrateBoltzmannGeneratorStepKernel::Name(), factory);
        platform.registerKernelFactory(IntegrateCGMonteCarloStepKernel::Name(), factory);
    }
    catch (std::exception&) {
        // The OpenCL platform is not available; nothing to register.
    }
}

extern "C" OPENMM_EXPORT void registerCGFlowOpenCLKernelFactories() {
    try {
        Platform::getPlatformByName("OpenCL");
    }
    catch (...) {
        Platform::registerPlatform(new OpenCLPlatform());
    }
    registerFactories();
}

extern "C" OPENMM_EXPORT void registerKernelFactories() {
    registerFactories();
}
