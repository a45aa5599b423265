#ifndef CGFLOW_KERNELS_H_
#define CGFLOW_KERNELS_H_

#include "BoltzmannGeneratorIntegrator.h"
#include "PMFForce.h"
#include "openmm/internal/ContextImpl.h"
#include <cstdint>
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

/**
 * The platform part of BoltzmannGeneratorIntegrator: drawing blocks of proposals with the flow and
 * the position map, loading one into the Context, and saving/restoring the chain state. The
 * integrator itself does the pricing (ContextImpl::calcForcesAndEnergy), the acceptance test and
 * the statistics, so every platform shares them.
 */
class IntegrateBoltzmannGeneratorStepKernel : public OpenMM::KernelImpl {
public:
    static std::string Name() { return "CGFlow_IntegrateBoltzmannGeneratorStep"; }
    IntegrateBoltzmannGeneratorStepKernel(std::string name, const OpenMM::Platform& platform)
        : OpenMM::KernelImpl(name, platform) {}
    /** integrator.getModel() is the decoded model; the System's particle count has been checked. */
    virtual void initialize(const OpenMM::System& system, const BoltzmannGeneratorIntegrator& integrator) = 0;
    /**
     * Draws proposals firstIndex .. firstIndex + count - 1 of the seed's stream (base draw k for
     * proposal k, as Flow::sample) and keeps them; logQ receives log q(x) = log q_flow(y) - logDetJ(y)
     * of each (count values, double). condition: the condition vector (empty for unconditional models).
     */
    virtual void generateBlock(OpenMM::ContextImpl& context, int count, uint64_t seed, uint64_t firstIndex,
                               const std::vector<double>& condition, std::vector<double>& logQ) = 0;
    /**
     * Writes proposal `index` of the block into the Context's positions: a Cartesian map writes its
     * slots and leaves every other coordinate as it is; an internal map writes all particles,
     * translated so that their centroid is that of the current positions.
     */
    virtual void loadProposal(OpenMM::ContextImpl& context, int index) = 0;
    /** Saves the Context's positions, so that restoreState() can undo a loadProposal(). */
    virtual void saveState(OpenMM::ContextImpl& context) = 0;
    virtual void restoreState(OpenMM::ContextImpl& context) = 0;
    /** sum 1/2 m v^2 of the current velocities (kJ/mol). */
    virtual double computeKineticEnergy(OpenMM::ContextImpl& context) = 0;
};

} // namespace CGFlow

#endif
