#include "CommonCGMonteCarloKernels.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/common/IntegrationUtilities.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

void CommonIntegrateCGMonteCarloStepKernel::initialize(const System&, const CGMonteCarloIntegrator&) {
    // As OpenMM's own integrator kernels do: the Context's arrays and force kernels are set up here.
    cc.initializeContexts();
}

double CommonIntegrateCGMonteCarloStepKernel::computeKineticEnergy(ContextImpl&) {
    ContextSelector selector(cc);
    return cc.getIntegrationUtilities().computeKineticEnergy(0);
}
