#include "ReferenceCGMonteCarloKernels.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

void ReferenceIntegrateCGMonteCarloStepKernel::initialize(const System& system, const CGMonteCarloIntegrator&) {
    masses.resize(system.getNumParticles());
    for (int i = 0; i < system.getNumParticles(); i++)
        masses[i] = system.getParticleMass(i);
}

double ReferenceIntegrateCGMonteCarloStepKernel::computeKineticEnergy(ContextImpl& context) {
    const std::vector<Vec3>& velocities =
        *static_cast<ReferencePlatform::PlatformData*>(context.getPlatformData())->velocities;
    double energy = 0;
    for (size_t i = 0; i < velocities.size(); i++)
        energy += 0.5 * masses[i] * velocities[i].dot(velocities[i]);
    return energy;
}
