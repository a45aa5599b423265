#ifndef CGFLOW_KERNELS_H_
#define CGFLOW_KERNELS_H_

#include "PMFForce.h"
#include "openmm/KernelImpl.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include <string>
#include <vector>

namespace CGFlow {

/** Evaluates a PMFForce: features -> MLP ensemble -> energy and forces. */
class CalcPMFForceKernel : public OpenMM::KernelImpl {
public:
    static std::string Name() { return "CGFlow_CalcPMFForce"; }
    CalcPMFForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {}
    virtual void initialize(const OpenMM::System& system, const PMFForce& force) = 0;
    /** Adds forces (when includeForces) and returns or accumulates the ensemble-mean energy. */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    /** Energies of all ensemble members at the current positions; forces untouched. */
    virtual std::vector<double> computeEnsembleEnergies(OpenMM::ContextImpl& context) = 0;
    virtual void copyParametersToContext(OpenMM::ContextImpl& context, const PMFForce& force) = 0;
};

} // namespace CGFlow

#endif
