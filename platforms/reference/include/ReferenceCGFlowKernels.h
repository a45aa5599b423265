#ifndef REFERENCE_CGFLOW_KERNELS_H_
#define REFERENCE_CGFLOW_KERNELS_H_

#include "CGFlowKernels.h"
#include "cgflow/coords/Features.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "openmm/Vec3.h"
#include <vector>

namespace CGFlowPlugin {

/** Double-precision PMFForce kernel for the Reference and CPU platforms. */
class ReferenceCalcPMFForceKernel : public CalcPMFForceKernel {
public:
    ReferenceCalcPMFForceKernel(std::string name, const OpenMM::Platform& platform) : CalcPMFForceKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const PMFForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    std::vector<double> computeEnsembleEnergies(OpenMM::ContextImpl& context) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const PMFForce& force) override;

private:
    void setFeatures(const PMFForce& force);
    /** Features of the current positions into `inputs`; returns positions as a flat array. */
    void computeInputs(OpenMM::ContextImpl& context);
    std::vector<cgflow::coords::Feature> features;
    // Each kernel owns its copy: the ensemble's workspaces are per object, so Contexts on
    // different threads never share one.
    cgflow::nn::MLPEnsemble ensemble;
    cgflow::nn::MLPEnsemble::Result result;
    cgflow::coords::PeriodicBox box;
    bool periodic = false;
    Eigen::VectorXd inputs;
    std::vector<double> gradient;
};

} // namespace CGFlowPlugin

#endif
