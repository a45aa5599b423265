#include "internal/PMFForceImpl.h"
#include "CGFlowKernels.h"
#include "internal/PMFForceFeatures.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

PMFForceImpl::PMFForceImpl(const PMFForce& owner) : owner(owner) {
}

void PMFForceImpl::initialize(ContextImpl& context) {
    owner.validate(context.getSystem().getNumParticles());
    kernel = context.getPlatform().createKernel(CalcPMFForceKernel::Name(), context);
    kernel.getAs<CalcPMFForceKernel>().initialize(context.getSystem(), owner);
}

double PMFForceImpl::calcForcesAndEnergy(ContextImpl& context, bool includeForces, bool includeEnergy, int groups) {
    if ((groups & (1 << owner.getForceGroup())) != 0)
        return kernel.getAs<CalcPMFForceKernel>().execute(context, includeForces, includeEnergy);
    return 0.0;
}

std::vector<std::string> PMFForceImpl::getKernelNames() {
    return {CalcPMFForceKernel::Name()};
}

std::vector<std::pair<int, int>> PMFForceImpl::getBondedParticles() const {
    std::vector<std::pair<int, int>> bonds;
    for (const cgflow::coords::Feature& f : coreFeatures(owner))
        for (size_t i = 1; i < f.particles.size(); i++)
            bonds.emplace_back(f.particles[i - 1], f.particles[i]);
    return bonds;
}

void PMFForceImpl::updateParametersInContext(ContextImpl& context) {
    owner.validate(context.getSystem().getNumParticles());
    kernel.getAs<CalcPMFForceKernel>().copyParametersToContext(context, owner);
    context.systemChanged();
}

std::vector<double> PMFForceImpl::getCopyMemberEnergies(ContextImpl& context) {
    return kernel.getAs<CalcPMFForceKernel>().computeCopyMemberEnergies(context);
}
