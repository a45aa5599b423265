#ifndef COMMON_BOLTZMANNGENERATOR_KERNELS_H_
#define COMMON_BOLTZMANNGENERATOR_KERNELS_H_

#include "CGFlowKernels.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "openmm/common/ComputeArray.h"
#include "openmm/common/ComputeContext.h"
#include <memory>
#include <vector>

namespace CGFlowPlugin {

/**
 * BoltzmannGeneratorIntegrator on OpenCL and CUDA from one kernel source (kernels/bgFlow.cc).
 *
 * A block is drawn on the device: the base points by the core's counter-based scheme (Philox keyed
 * by seed, proposal index and dimension pair, inverse CDFs; the same points as on Reference), then
 * every layer as device kernels over the whole block (conditioner features, one tiled matrix
 * product per dense layer and a launch per activation, the elementwise transform), then the
 * internal-to-Cartesian build. Each proposal is written into posq by a kernel, through the atom
 * reordering and the periodic-cell offsets; the chain state (posq, its mixed-precision correction
 * and the cell offsets) is saved and restored on the device. Arithmetic in `real`, log q in `mixed`. Supported layers: spline_coupling (real and circular, conditional or elementwise),
 * affine_coupling, permutation, circular_shift; others are refused at initialization.
 */
class CommonIntegrateBoltzmannGeneratorStepKernel : public IntegrateBoltzmannGeneratorStepKernel {
public:
    CommonIntegrateBoltzmannGeneratorStepKernel(std::string name, const OpenMM::Platform& platform,
                                                OpenMM::ComputeContext& cc)
        : IntegrateBoltzmannGeneratorStepKernel(name, platform), cc(cc) {}
    void initialize(const OpenMM::System& system, const BoltzmannGeneratorIntegrator& integrator) override;
    void generateBlock(OpenMM::ContextImpl& context, int count, uint64_t seed, uint64_t firstIndex,
                       const std::vector<double>& condition, std::vector<double>& logQ) override;
    void loadProposal(OpenMM::ContextImpl& context, int index) override;
    void saveState(OpenMM::ContextImpl& context) override;
    void restoreState(OpenMM::ContextImpl& context) override;
    double computeKineticEnergy(OpenMM::ContextImpl& context) override;

private:
    /** One step of the sampling pass, in order. */
    struct Step {
        enum Kind { Features, Dense, Activation, Spline, Affine, Permute, Shift } kind;
        int layer = 0;
        // Dense: input/output buffer ids (0 features, 1 stream, 2 activated, 3 inner, 4 raw), widths,
        // parameter offset, accumulate; Activation: input/output ids, width, kind.
        int input = 0, output = 0, inWidth = 0, outWidth = 0, offset = 0, accumulate = 0, activation = 0;
    };
    /** Per layer: index tables and constants on the device. */
    struct LayerData {
        int numPass = 0, numReal = 0, numCircular = 0, rawSize = 0, featureWidth = 0, contextFeatures = 0;
        bool conditioner = false;
        int freeRawOffset = 0;
        int numBins = 0;
        double bound = 0, minWidth = 0, minHeight = 0, minDerivative = 0;
        OpenMM::ComputeArray passDims, passCircular, transformedDims, order, shifts;
    };
    void ensureCapacity(int count);
    OpenMM::ComputeArray& buffer(int id);
    template <class T>
    void uploadReals(OpenMM::ComputeArray& array, const std::vector<double>& values, const std::string& name);

    OpenMM::ComputeContext& cc;
    std::shared_ptr<const cgflow::io::DecodedBoltzmannGenerator> model;
    int dim = 0, numAtoms = 0, capacity = 0, maxWidth = 1, blockCount = 0;
    bool internal = false;
    std::vector<Step> steps;
    std::vector<LayerData> layers;
    std::vector<double> parameterValues;
    OpenMM::ComputeArray parameters, data, logQ, positions, features, stream, activated, inner, raw;
    OpenMM::ComputeArray contextFeatures, rows, shift, scale, slots, translation;
    // Internal maps: which flow dimension fills each internal column (-1 - k: condition column k), and the
    // condition columns' model values for the current block.
    OpenMM::ComputeArray columnSource, conditionModel, dependentDihedral;
    OpenMM::ComputeArray savedPosq, savedCorrection, savedSlotOfAtom, dummyCorrection;
    std::vector<int> savedAtomIndex;
    std::vector<OpenMM::mm_int4> savedCellOffsets;
    /** Base density: kinds per dimension on the device, and its constants. */
    OpenMM::ComputeArray baseKinds;
    double baseBound = 0, baseLowerMass = 0, baseTruncatedMass = 1, baseLogNormalizer = 0;
    /** Cartesian maps: per particle, bit a set when the flow writes axis a. */
    std::vector<int> slotAxes;
    OpenMM::ComputeKernel baseKernel, featuresKernel, denseKernel, activationKernel, splineKernel, affineKernel, permuteKernel,
        shiftKernel, internalKernel, centroidKernel, loadMoleculeKernel, loadSlotsKernel, restoreKernel;
};

} // namespace CGFlowPlugin

#endif
