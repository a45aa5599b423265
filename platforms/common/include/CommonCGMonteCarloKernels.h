#ifndef COMMON_CGMONTECARLO_KERNELS_H_
#define COMMON_CGMONTECARLO_KERNELS_H_

#include "CGFlowKernels.h"
#include "openmm/common/ComputeContext.h"

namespace CGFlowPlugin {

/**
 * CGMonteCarloIntegrator on OpenCL and CUDA: sets up the Context's device state (as OpenMM's integrator
 * kernels do) and computes the kinetic energy with OpenMM's integration utilities. Proposals and
 * acceptance run on the host; the walkers are priced on the device by the PMFForce kernel.
 */
class CommonIntegrateCGMonteCarloStepKernel : public IntegrateCGMonteCarloStepKernel {
public:
    CommonIntegrateCGMonteCarloStepKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ComputeContext& cc)
        : IntegrateCGMonteCarloStepKernel(name, platform), cc(cc) {}
    void initialize(const OpenMM::System& system, const CGMonteCarloIntegrator& integrator) override;
    double computeKineticEnergy(OpenMM::ContextImpl& context) override;

private:
    OpenMM::ComputeContext& cc;
};

} // namespace CGFlowPlugin

#endif
