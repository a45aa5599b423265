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
    periodic = force.usesPeriodicBoundaryConditions();
    inputs.resize(cgflow::coords::totalWidth(features));
}

void ReferenceCalcPMFForceKernel::initialize(const System&, const PMFForce& force) {
    setFeatures(force);
    ensemble = force.getEnsemble();
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
    ensemble.evaluate(inputs, includeForces, result);
    if (includeForces) {
        ReferencePlatform::PlatformData& data = getPlatformData(context);
        std::vector<Vec3>& forces = *data.forces;
        gradient.assign(3 * forces.size(), 0.0);
        const double* positions = &(*data.positions)[0][0];
        cgflow::coords::backpropFeatures(features, positions, box, result.gradMean.data(), gradient.data());
        for (size_t i = 0; i < forces.size(); i++)
            forces[i] -= Vec3(gradient[3 * i], gradient[3 * i + 1], gradient[3 * i + 2]);
    }
    return result.mean;
}

std::vector<double> ReferenceCalcPMFForceKernel::computeEnsembleEnergies(ContextImpl& context) {
    computeInputs(context);
    ensemble.evaluate(inputs, false, result);
    return result.memberValues;
}

void ReferenceCalcPMFForceKernel::copyParametersToContext(ContextImpl&, const PMFForce& force) {
    const cgflow::nn::MLPEnsemble& updated = force.getEnsemble();
    if (updated.getNumMembers() != ensemble.getNumMembers() ||
        updated.getMember(0).getWidths() != ensemble.getMember(0).getWidths() ||
        updated.getMember(0).getHiddenActivation() != ensemble.getMember(0).getHiddenActivation() ||
        updated.getMember(0).getOutputActivation() != ensemble.getMember(0).getOutputActivation())
        throw OpenMMException("PMFForce.updateParametersInContext: the model architecture (ensemble size, widths, "
                              "activations) must not change; create a new Context instead");
    if ((int) force.getFeatures().size() != (int) features.size())
        throw OpenMMException("PMFForce.updateParametersInContext: the number of features must not change");
    for (size_t i = 0; i < features.size(); i++)
        if ((int) force.getFeatures()[i].type != (int) features[i].type)
            throw OpenMMException("PMFForce.updateParametersInContext: feature " + std::to_string(i) + " changed its type");
    setFeatures(force);
    ensemble = updated;
}
