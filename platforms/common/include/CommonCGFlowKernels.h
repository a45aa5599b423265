#ifndef COMMON_CGFLOW_KERNELS_H_
#define COMMON_CGFLOW_KERNELS_H_

#include "CGFlowKernels.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include <vector>

namespace CGFlowPlugin {

/**
 * PMFForce on OpenCL and CUDA from one kernel source. Three launches per evaluation:
 * features with their Jacobians, the MLP ensemble (one work group per member and copy of the
 * features, i.e. particle group, forward and backward), then energy and forces (one thread per involved particle, no atomics).
 * Arithmetic is in the platform's `real` (float in single/mixed precision); the energy is
 * accumulated in `mixed`.
 */
class CommonCalcPMFForceKernel : public CalcPMFForceKernel {
public:
    CommonCalcPMFForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::ComputeContext& cc)
        : CalcPMFForceKernel(name, platform), cc(cc) {}
    void initialize(const OpenMM::System& system, const PMFForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    std::vector<double> computeCopyMemberEnergies(OpenMM::ContextImpl& context) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const PMFForce& force) override;
    /** Re-map particle indices to positions in the (reordered) posq array. */
    void updateParticleSlots();

private:
    class ForceInfo;
    class ReorderListener;
    void uploadFeatures(const PMFForce& force);
    void uploadWeights(const PMFForce& force);
    void setBoxArguments();
    void runFeaturesAndEnsemble(bool computeGradient);
    template <class T>
    void uploadReal(OpenMM::ComputeArray& array, const std::vector<double>& values, const std::string& name);

    OpenMM::ComputeContext& cc;
    bool periodic = false;
    // numFeatures counts every copy's features; numInputs is the width of one copy.
    int numFeatures = 0, numInputs = 0, numMembers = 0, numCopies = 1, numInvolved = 0, blockSize = 0;
    std::vector<int> widths;
    int hiddenActivation = 0, outputActivation = 0;
    std::vector<int> featureTypes;
    std::vector<int> involvedParticles;
    OpenMM::ComputeArray particleSlot, featureParticles, featureInfo, featurePeriod, inputs, jacobian;
    OpenMM::ComputeArray weightsT, weights, biases, layerInfo, scratch, memberEnergy, memberGrad;
    OpenMM::ComputeArray involved, entryStart, entries;
    OpenMM::ComputeKernel featuresKernel, ensembleKernel, forcesKernel;
};

} // namespace CGFlowPlugin

#endif
