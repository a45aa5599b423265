#include "ReferenceCGFlowKernels.h"
#include "internal/PMFForceFeatures.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

static ReferencePlatform::PlatformData& getPlatformData(ContextImpl& context) {
    return *static_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
}

void ReferenceCalcPMFForceKernel::setFeatures(const PMFForce& force) {
    features = coreFeatures(force);
    numCopies = force.getNumCopies();
    periodic = force.usesPeriodicBoundaryConditions();
    inputs.resize(cgflow::coords::totalWidth(features) / numCopies, numCopies);
}

void ReferenceCalcPMFForceKernel::setModel(const PMFForce& force) {
    ensemble = force.getEnsemble();
    mixedPrecision = force.getPrecision() == "mixed";
    mixedEnsemble = mixedPrecision ? cgflow::nn::MixedPrecisionEnsemble(ensemble) : cgflow::nn::MixedPrecisionEnsemble();
}

void ReferenceCalcPMFForceKernel::initialize(const System&, const PMFForce& force) {
    setFeatures(force);
    setModel(force);
}

void ReferenceCalcPMFForceKernel::evaluateModel(Eigen::MatrixXd* gradient) {
    if (mixedPrecision)
        mixedEnsemble.evaluateMembers(inputs, memberEnergies, gradient);
    else
        ensemble.evaluateMembers(inputs, memberEnergies, gradient);
}

void ReferenceCalcPMFForceKernel::computeInputs(ContextImpl& context) {
    ReferencePlatform::PlatformData& data = getPlatformData(context);
    box.periodic = periodic;
    if (periodic) {
        const Vec3* v = data.periodicBoxVectors;
        box.a = Eigen::Vector3d(v[0][0], v[0][1], v[0][2]);
        box.b = Eigen::Vector3d(v[1][0], v[1][1], v[1][2]);
        box.c = Eigen::Vector3d(v[2][0], v[2][1], v[2][2]);
    }
    // Vec3 is three contiguous doubles, so the positions vector is the flat array core expects.
    const double* positions = &(*data.positions)[0][0];
    cgflow::coords::computeFeatures(features, positions, box, inputs.data());
}

double ReferenceCalcPMFForceKernel::execute(ContextImpl& context, bool includeForces, bool) {
    computeInputs(context);
    // One pass per member prices every copy; the energy is the sum over copies of the ensemble mean.
    evaluateModel(includeForces ? &gradMean : nullptr);
    if (includeForces) {
        ReferencePlatform::PlatformData& data = getPlatformData(context);
        std::vector<Vec3>& forces = *data.forces;
        gradient.assign(3 * forces.size(), 0.0);
        const double* positions = &(*data.positions)[0][0];
        // gradMean is column-major, copy after copy: the order of the copy-major feature list.
        cgflow::coords::backpropFeatures(features, positions, box, gradMean.data(), gradient.data());
        for (size_t i = 0; i < forces.size(); i++)
            forces[i] -= Vec3(gradient[3 * i], gradient[3 * i + 1], gradient[3 * i + 2]);
    }
    return memberEnergies.sum() / ensemble.getNumMembers();
}

std::vector<double> ReferenceCalcPMFForceKernel::computeCopyMemberEnergies(ContextImpl& context) {
    computeInputs(context);
    evaluateModel(nullptr);
    // memberEnergies is members x copies, column-major: already copy-major.
    return std::vector<double>(memberEnergies.data(), memberEnergies.data() + memberEnergies.size());
}

void ReferenceCalcPMFForceKernel::copyParametersToContext(ContextImpl&, const PMFForce& force) {
    const cgflow::nn::MLPEnsemble& updated = force.getEnsemble();
    if (updated.getNumMembers() != ensemble.getNumMembers() ||
        updated.getMember(0).getWidths() != ensemble.getMember(0).getWidths() ||
        updated.getMember(0).getHiddenActivation() != ensemble.getMember(0).getHiddenActivation() ||
        updated.getMember(0).getOutputActivation() != ensemble.getMember(0).getOutputActivation())
        throw OpenMMException("PMFForce.updateParametersInContext: the model architecture (ensemble size, widths, "
                              "activations) must not change; create a new Context instead");
    if (force.getNumCopies() != numCopies)
        throw OpenMMException("PMFForce.updateParametersInContext: the number of particle groups must not change");
    const std::vector<cgflow::coords::Feature> updatedFeatures = coreFeatures(force);
    if (updatedFeatures.size() != features.size())
        throw OpenMMException("PMFForce.updateParametersInContext: the number of features must not change");
    for (size_t i = 0; i < features.size(); i++)
        if (updatedFeatures[i].type != features[i].type)
            throw OpenMMException("PMFForce.updateParametersInContext: feature " +
                                  std::to_string(i % force.getNumFeatures()) + " changed its type");
    setFeatures(force);
    setModel(force);
}
