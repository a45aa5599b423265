#ifndef REFERENCE_CGMONTECARLO_KERNELS_H_
#define REFERENCE_CGMONTECARLO_KERNELS_H_

#include "CGFlowKernels.h"
#include <vector>

namespace CGFlowPlugin {

/** CGMonteCarloIntegrator on the Reference and CPU platforms: the kinetic energy from the host arrays. */
class ReferenceIntegrateCGMonteCarloStepKernel : public IntegrateCGMonteCarloStepKernel {
public:
    ReferenceIntegrateCGMonteCarloStepKernel(std::string name, const OpenMM::Platform& platform)
        : IntegrateCGMonteCarloStepKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const CGMonteCarloIntegrator& integrator) override;
    double computeKineticEnergy(OpenMM::ContextImpl& context) override;

private:
    std::vector<double> masses;
};

} // namespace CGFlowPlugin

#endif
