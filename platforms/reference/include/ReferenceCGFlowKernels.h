#ifndef REFERENCE_CGFLOW_KERNELS_H_
#define REFERENCE_CGFLOW_KERNELS_H_

#include "CGFlowKernels.h"
#include "cgflow/coords/Features.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "cgflow/nn/MixedPrecisionEnsemble.h"
#include "openmm/Vec3.h"
#include <vector>

namespace CGFlowPlugin {

/** PMFForce kernel for the Reference and CPU platforms: float64, or mixed when the force asks for it. */
class ReferenceCalcPMFForceKernel : public CalcPMFForceKernel {
public:
    ReferenceCalcPMFForceKernel(std::string name, const OpenMM::Platform& platform) : CalcPMFForceKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const PMFForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    std::vector<double> computeCopyMemberEnergies(OpenMM::ContextImpl& context) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const PMFForce& force) override;

private:
    void setFeatures(const PMFForce& force);
    /** Features of the current positions into `inputs`, one column per copy (particle group). */
    void computeInputs(OpenMM::ContextImpl& context);
    /** The model in the force's precision: member energies and, when wanted, d(mean)/d inputs. */
    void evaluateModel(Eigen::MatrixXd* gradient);
    void setModel(const PMFForce& force);
    std::vector<cgflow::coords::Feature> features; // every copy's, copy-major
    int numCopies = 1;
    // Each kernel owns its copy: the ensemble's workspaces are per object, so Contexts on
    // different threads never share one.
    cgflow::nn::MLPEnsemble ensemble;
    bool mixedPrecision = false;
    cgflow::nn::MixedPrecisionEnsemble mixedEnsemble; // built from `ensemble` when mixedPrecision
    cgflow::coords::PeriodicBox box;
    bool periodic = false;
    Eigen::MatrixXd inputs;        // (inputs per copy) x copies
    Eigen::MatrixXd memberEnergies; // members x copies
    Eigen::MatrixXd gradMean;       // d(mean)/d inputs, like `inputs`
    std::vector<double> gradient;
};

} // namespace CGFlowPlugin

#endif
