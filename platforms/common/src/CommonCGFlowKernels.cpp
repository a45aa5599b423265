#include "CommonCGFlowKernels.h"
#include "CommonCGFlowKernelSources.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "internal/PMFForceFeatures.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ComputeForceInfo.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include <algorithm>
#include <map>
#include <set>

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

// Local memory is small on GPUs; larger networks keep their activations in global memory.
const int MaxLocalScratchBytes = 16 * 1024;

} // namespace

/** Tells OpenMM's atom reordering that particles in our features are not interchangeable. */
class CommonCalcPMFForceKernel::ForceInfo : public ComputeForceInfo {
public:
    explicit ForceInfo(const PMFForce& force) {
        for (const cgflow::coords::Feature& f : coreFeatures(force)) {
            groups.push_back(f.particles);
            for (int p : f.particles)
                used.insert(p);
        }
    }
    bool areParticlesIdentical(int particle1, int particle2) override {
        return particle1 == particle2 || (used.count(particle1) == 0 && used.count(particle2) == 0);
    }
    int getNumParticleGroups() override {
        return (int) groups.size();
    }
    void getParticlesInGroup(int index, std::vector<int>& particles) override {
        particles = groups[index];
    }
    bool areGroupsIdentical(int group1, int group2) override {
        return group1 == group2;
    }

private:
    std::vector<std::vector<int>> groups;
    std::set<int> used;
};

class CommonCalcPMFForceKernel::ReorderListener : public ComputeContext::ReorderListener {
public:
    explicit ReorderListener(CommonCalcPMFForceKernel& owner) : owner(owner) {}
    void execute() override {
        owner.updateParticleSlots();
    }

private:
    CommonCalcPMFForceKernel& owner;
};

template <class T>
void CommonCalcPMFForceKernel::uploadReal(ComputeArray& array, const std::vector<double>& values, const std::string& name) {
    std::vector<T> converted(values.begin(), values.end());
    if (converted.empty())
        converted.push_back(0);
    if (!array.isInitialized())
        array.initialize<T>(cc, converted.size(), name);
    array.upload(converted);
}

void CommonCalcPMFForceKernel::updateParticleSlots() {
    const std::vector<int>& atomIndex = cc.getAtomIndex();
    std::vector<int> slot(cc.getNumAtoms(), 0);
    for (int i = 0; i < (int) atomIndex.size() && i < cc.getNumAtoms(); i++)
        slot[atomIndex[i]] = i;
    particleSlot.upload(slot);
}

void CommonCalcPMFForceKernel::uploadFeatures(const PMFForce& force) {
    const std::vector<cgflow::coords::Feature> features = coreFeatures(force);
    std::vector<mm_int4> particles, info;
    std::vector<double> periods;
    // For each involved particle: the (model input, role) pairs whose Jacobian it receives.
    std::map<int, std::vector<mm_int2>> byParticle;
    int input = 0;
    featureTypes.clear();
    for (const cgflow::coords::Feature& f : features) {
        int p[4] = {0, 0, 0, 0};
        for (size_t j = 0; j < f.particles.size(); j++)
            p[j] = f.particles[j];
        particles.push_back(mm_int4(p[0], p[1], p[2], p[3]));
        info.push_back(mm_int4((int) f.type, f.axis, input, 0));
        periods.push_back(f.period);
        featureTypes.push_back((int) f.type);
        const int width = f.getWidth();
        for (int k = 0; k < width; k++)
            for (size_t r = 0; r < f.particles.size(); r++)
                byParticle[f.particles[r]].push_back(mm_int2(input + k, (int) r));
        input += width;
    }
    numInputs = input / force.getNumCopies();  // the copy-major inputs: copy c starts at c * numInputs
    std::vector<int> starts(1, 0);
    std::vector<mm_int2> flatEntries;
    involvedParticles.clear();
    for (auto& entry : byParticle) {
        involvedParticles.push_back(entry.first);
        flatEntries.insert(flatEntries.end(), entry.second.begin(), entry.second.end());
        starts.push_back((int) flatEntries.size());
    }
    if (featureParticles.isInitialized() && (int) involvedParticles.size() != numInvolved)
        throw OpenMMException("PMFForce.updateParametersInContext: the number of distinct particles in the features "
                              "must not change; create a new Context instead");
    numInvolved = (int) involvedParticles.size();
    if (!featureParticles.isInitialized()) {
        featureParticles.initialize<mm_int4>(cc, particles.size(), "pmfFeatureParticles");
        featureInfo.initialize<mm_int4>(cc, info.size(), "pmfFeatureInfo");
        involved.initialize<int>(cc, involvedParticles.size(), "pmfInvolvedParticles");
        entryStart.initialize<int>(cc, starts.size(), "pmfEntryStart");
        entries.initialize<mm_int2>(cc, flatEntries.size(), "pmfEntries");
    }
    featureParticles.upload(particles);
    featureInfo.upload(info);
    involved.upload(involvedParticles);
    entryStart.upload(starts);
    entries.upload(flatEntries);
    if (cc.getUseDoublePrecision())
        uploadReal<double>(featurePeriod, periods, "pmfFeaturePeriod");
    else
        uploadReal<float>(featurePeriod, periods, "pmfFeaturePeriod");
}

void CommonCalcPMFForceKernel::uploadWeights(const PMFForce& force) {
    const cgflow::nn::MLPEnsemble& ensemble = force.getEnsemble();
    std::vector<double> wt, w, b;
    for (int m = 0; m < ensemble.getNumMembers(); m++) {
        const cgflow::nn::MLP& mlp = ensemble.getMember(m);
        for (int l = 0; l < mlp.getNumLayers(); l++) {
            const Eigen::MatrixXd& W = mlp.weight(l);
            for (int k = 0; k < W.cols(); k++)
                for (int j = 0; j < W.rows(); j++)
                    wt.push_back(W(j, k));
            for (int j = 0; j < W.rows(); j++)
                for (int k = 0; k < W.cols(); k++)
                    w.push_back(W(j, k));
            for (int j = 0; j < W.rows(); j++)
                b.push_back(mlp.bias(l)[j]);
        }
    }
    if (cc.getUseDoublePrecision()) {
        uploadReal<double>(weightsT, wt, "pmfWeightsT");
        uploadReal<double>(weights, w, "pmfWeights");
        uploadReal<double>(biases, b, "pmfBiases");
    }
    else {
        uploadReal<float>(weightsT, wt, "pmfWeightsT");
        uploadReal<float>(weights, w, "pmfWeights");
        uploadReal<float>(biases, b, "pmfBiases");
    }
}

void CommonCalcPMFForceKernel::initialize(const System&, const PMFForce& force) {
    ContextSelector selector(cc);
    periodic = force.usesPeriodicBoundaryConditions();
    numCopies = force.getNumCopies();
    numFeatures = numCopies * force.getNumFeatures();
    const cgflow::nn::MLPEnsemble& ensemble = force.getEnsemble();
    const cgflow::nn::MLP& first = ensemble.getMember(0);
    numMembers = ensemble.getNumMembers();
    widths = first.getWidths();
    hiddenActivation = (int) first.getHiddenActivation();
    outputActivation = (int) first.getOutputActivation();

    particleSlot.initialize<int>(cc, cc.getNumAtoms(), "pmfParticleSlot");
    updateParticleSlots();
    cc.addReorderListener(new ReorderListener(*this));
    uploadFeatures(force);
    uploadWeights(force);

    std::vector<mm_int4> layers;
    int weightOffset = 0, biasOffset = 0, totalWidth = 0, maxWidth = 1;
    for (size_t l = 0; l + 1 < widths.size(); l++) {
        layers.push_back(mm_int4(widths[l], widths[l + 1], weightOffset, biasOffset));
        weightOffset += widths[l] * widths[l + 1];
        biasOffset += widths[l + 1];
    }
    for (int w : widths) {
        totalWidth += w;
        maxWidth = std::max(maxWidth, w);
    }
    layerInfo.initialize<mm_int4>(cc, layers.size(), "pmfLayerInfo");
    layerInfo.upload(layers);
    int scratchSize = 2 * totalWidth + 2 * maxWidth;
    int realSize = cc.getUseDoublePrecision() ? sizeof(double) : sizeof(float);
    bool scratchInLocal = scratchSize * realSize <= MaxLocalScratchBytes;
    const size_t numPairs = (size_t) numCopies * numMembers;  // one work group each
    scratch.initialize(cc, scratchInLocal ? 1 : (size_t) scratchSize * numPairs, realSize, "pmfScratch");
    inputs.initialize(cc, (size_t) numCopies * numInputs, realSize, "pmfInputs");
    jacobian.initialize(cc, 12 * (size_t) numCopies * numInputs, realSize, "pmfJacobian");
    memberEnergy.initialize(cc, numPairs, realSize, "pmfMemberEnergy");
    memberGrad.initialize(cc, numPairs * numInputs, realSize, "pmfMemberGrad");

    std::map<std::string, std::string> defines;
    defines["NUM_FEATURES"] = cc.intToString(numFeatures);
    defines["NUM_INPUTS"] = cc.intToString(numInputs);
    defines["NUM_MEMBERS"] = cc.intToString(numMembers);
    defines["NUM_COPIES"] = cc.intToString(numCopies);
    defines["NUM_LAYERS"] = cc.intToString((int) layers.size());
    defines["NUM_INVOLVED"] = cc.intToString(numInvolved);
    defines["PADDED_NUM_ATOMS"] = cc.intToString(cc.getPaddedNumAtoms());
    defines["TOTAL_WIDTH"] = cc.intToString(totalWidth);
    defines["MAX_WIDTH"] = cc.intToString(maxWidth);
    defines["SCRATCH_SIZE"] = cc.intToString(scratchSize);
    defines["WEIGHTS_PER_MEMBER"] = cc.intToString(weightOffset);
    defines["BIASES_PER_MEMBER"] = cc.intToString(biasOffset);
    defines["HIDDEN_ACTIVATION"] = cc.intToString(hiddenActivation);
    defines["OUTPUT_ACTIVATION"] = cc.intToString(outputActivation);
    if (scratchInLocal)
        defines["SCRATCH_IN_LOCAL"] = "1";
    if (periodic)
        defines["USE_PERIODIC"] = "1";
    ComputeProgram program = cc.compileProgram(CommonCGFlowKernelSources::pmfFeatures + CommonCGFlowKernelSources::pmfEnsemble, defines);
    featuresKernel = program->createKernel("computePMFFeatures");
    ensembleKernel = program->createKernel("evaluatePMFEnsemble");
    forcesKernel = program->createKernel("applyPMFForces");

    featuresKernel->addArg(cc.getPosq());
    featuresKernel->addArg(particleSlot);
    featuresKernel->addArg(featureParticles);
    featuresKernel->addArg(featureInfo);
    featuresKernel->addArg(featurePeriod);
    featuresKernel->addArg(inputs);
    featuresKernel->addArg(jacobian);
    for (int i = 0; i < 3; i++)
        featuresKernel->addArg();  // box vectors, set before each launch

    ensembleKernel->addArg(inputs);
    ensembleKernel->addArg(weightsT);
    ensembleKernel->addArg(weights);
    ensembleKernel->addArg(biases);
    ensembleKernel->addArg(layerInfo);
    ensembleKernel->addArg(scratch);
    ensembleKernel->addArg(memberEnergy);
    ensembleKernel->addArg(memberGrad);
    ensembleKernel->addArg((int) 1);

    forcesKernel->addArg(memberEnergy);
    forcesKernel->addArg(memberGrad);
    forcesKernel->addArg(jacobian);
    forcesKernel->addArg(involved);
    forcesKernel->addArg(particleSlot);
    forcesKernel->addArg(entryStart);
    forcesKernel->addArg(entries);
    forcesKernel->addArg(cc.getLongForceBuffer());
    forcesKernel->addArg(cc.getEnergyBuffer());
    forcesKernel->addArg((int) 1);

    // Enough threads to cover the widest hidden layer in one pass, in whole warps.
    int widest = 1;
    for (size_t l = 1; l < widths.size(); l++)
        widest = std::max(widest, widths[l]);
    blockSize = std::min(256, std::max(32, 32 * ((widest + 31) / 32)));
    blockSize = std::min(blockSize, ensembleKernel->getMaxBlockSize());
    cc.addForce(new ForceInfo(force));
}

void CommonCalcPMFForceKernel::setBoxArguments() {
    Vec3 a, b, c;
    cc.getPeriodicBoxVectors(a, b, c);
    if (cc.getUseDoublePrecision()) {
        featuresKernel->setArg(7, mm_double4(a[0], a[1], a[2], 0));
        featuresKernel->setArg(8, mm_double4(b[0], b[1], b[2], 0));
        featuresKernel->setArg(9, mm_double4(c[0], c[1], c[2], 0));
    }
    else {
        featuresKernel->setArg(7, mm_float4((float) a[0], (float) a[1], (float) a[2], 0));
        featuresKernel->setArg(8, mm_float4((float) b[0], (float) b[1], (float) b[2], 0));
        featuresKernel->setArg(9, mm_float4((float) c[0], (float) c[1], (float) c[2], 0));
    }
}

void CommonCalcPMFForceKernel::runFeaturesAndEnsemble(bool computeGradient) {
    setBoxArguments();
    featuresKernel->execute(numFeatures);
    ensembleKernel->setArg(8, (int) (computeGradient ? 1 : 0));
    ensembleKernel->execute(numCopies * numMembers * blockSize, blockSize);
}

double CommonCalcPMFForceKernel::execute(ContextImpl&, bool includeForces, bool) {
    ContextSelector selector(cc);
    runFeaturesAndEnsemble(includeForces);
    forcesKernel->setArg(9, (int) (includeForces ? 1 : 0));
    forcesKernel->execute(std::max(numInvolved, 1));
    return 0.0;  // the energy was added to the context's energy buffer on the device
}

std::vector<double> CommonCalcPMFForceKernel::computeCopyMemberEnergies(ContextImpl&) {
    ContextSelector selector(cc);
    runFeaturesAndEnsemble(false);
    std::vector<double> result((size_t) numCopies * numMembers);  // copy-major, like memberEnergy
    if (cc.getUseDoublePrecision())
        memberEnergy.download(result);
    else {
        std::vector<float> values(result.size());
        memberEnergy.download(values);
        std::copy(values.begin(), values.end(), result.begin());
    }
    return result;
}

void CommonCalcPMFForceKernel::copyParametersToContext(ContextImpl&, const PMFForce& force) {
    ContextSelector selector(cc);
    const cgflow::nn::MLP& first = force.getEnsemble().getMember(0);
    if (force.getEnsemble().getNumMembers() != numMembers || first.getWidths() != widths ||
        (int) first.getHiddenActivation() != hiddenActivation || (int) first.getOutputActivation() != outputActivation)
        throw OpenMMException("PMFForce.updateParametersInContext: the model architecture (ensemble size, widths, "
                              "activations) must not change; create a new Context instead");
    if (force.getNumCopies() != numCopies)
        throw OpenMMException("PMFForce.updateParametersInContext: the number of particle groups must not change");
    if (force.getNumCopies() * force.getNumFeatures() != numFeatures)
        throw OpenMMException("PMFForce.updateParametersInContext: the number of features must not change");
    for (int i = 0; i < force.getNumFeatures(); i++)
        if ((int) force.getFeatureType(i) != featureTypes[i])
            throw OpenMMException("PMFForce.updateParametersInContext: feature " + std::to_string(i) + " changed its type");
    uploadFeatures(force);
    uploadWeights(force);
}
