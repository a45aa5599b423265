#ifndef CGFLOW_KERNELS_H_
#define CGFLOW_KERNELS_H_

#include "BoltzmannGeneratorIntegrator.h"
#include "CGMonteCarloIntegrator.h"
#include "PMFForce.h"
#include "openmm/internal/ContextImpl.h"
#include <cstdint>
#include "openmm/KernelImpl.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include <string>
#include <vector>

namespace CGFlowPlugin {

/**
 * Evaluates a PMFForce: features -> MLP ensemble -> energy and forces. Each platform implements it;
 * PMFForceImpl creates one per Context.
 */
class CalcPMFForceKernel : public OpenMM::KernelImpl {
public:
    /**
     * Get the name under which platforms register this kernel.
     *
     * @return "CGFlow_CalcPMFForce"
     */
    static std::string Name() { return "CGFlow_CalcPMFForce"; }
    /**
     * Create the kernel (called by a platform's kernel factory).
     *
     * @param name      the kernel's name, Name()
     * @param platform  the platform creating it
     */
    CalcPMFForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {}
    /**
     * Initialize the kernel for a Context: take the force's features, periodicity and model (the
     * kernel keeps its own copy). Called once, after PMFForce::validate() has succeeded.
     *
     * @param system  the System the Context was created for
     * @param force   the PMFForce to evaluate
     */
    virtual void initialize(const OpenMM::System& system, const PMFForce& force) = 0;
    /**
     * Compute the features of the current positions, evaluate the ensemble and, when asked, add
     * the forces (minus the gradient of the ensemble-mean energy) to the Context's forces.
     *
     * @param context        the Context's implementation
     * @param includeForces  true to add this force's forces to the Context's forces
     * @param includeEnergy  true if the energy is needed (implementations may compute it anyway)
     * @return the ensemble-mean energy in kJ/mol, or 0 if the platform adds the energy to its own
     *         energy buffer instead (the Common platforms, OpenCL and CUDA, do)
     */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    /**
     * Compute the energy of every ensemble member for every copy of the features (particle group)
     * at the current positions; forces are untouched.
     *
     * @param context  the Context's implementation
     * @return PMFForce::getNumCopies() * ensemble size energies in kJ/mol, copy-major
     */
    virtual std::vector<double> computeCopyMemberEnergies(OpenMM::ContextImpl& context) = 0;
    /**
     * Copy new model weights and feature particles from the force (PMFForce::updateParametersInContext(),
     * after PMFForce::validate() has succeeded).
     *
     * @param context  the Context's implementation
     * @param force    the PMFForce to copy from
     * @throws OpenMMException if the ensemble's architecture (number of members, widths,
     *         activations), the number of features or a feature's type differs from what the kernel
     *         was initialized with
     */
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
    /**
     * Get the name under which platforms register this kernel.
     *
     * @return "CGFlow_IntegrateBoltzmannGeneratorStep"
     */
    static std::string Name() { return "CGFlow_IntegrateBoltzmannGeneratorStep"; }
    /**
     * Create the kernel (called by a platform's kernel factory).
     *
     * @param name      the kernel's name, Name()
     * @param platform  the platform creating it
     */
    IntegrateBoltzmannGeneratorStepKernel(std::string name, const OpenMM::Platform& platform)
        : OpenMM::KernelImpl(name, platform) {}
    /**
     * Initialize the kernel for a Context. integrator.getModel() is the decoded model (the kernel
     * may keep the shared pointer); the System's particle count, the condition vector's length,
     * virtual sites and constraints have been checked already.
     *
     * @param system      the System the Context was created for
     * @param integrator  the integrator being bound to the Context
     * @throws OpenMMException if the platform cannot run the model (the integrator then stays
     *         unbound)
     */
    virtual void initialize(const OpenMM::System& system, const BoltzmannGeneratorIntegrator& integrator) = 0;
    /**
     * Draws proposals firstIndex .. firstIndex + count - 1 of the seed's stream (base draw k for
     * proposal k, as Flow::sample) and keeps them as the current block, replacing the previous one;
     * the Context's positions are not changed.
     *
     * @param context     the Context's implementation
     * @param count       the number of proposals, >= 1
     * @param seed        the seed of the integrator's stream
     * @param firstIndex  the stream index of the block's first proposal
     * @param condition   the condition vector (empty for unconditional models)
     * @param logQ        receives log q(x) = log q_flow(y) - logDetJ(y) of each proposal (resized to
     *                    count values, double precision)
     */
    virtual void generateBlock(OpenMM::ContextImpl& context, int count, uint64_t seed, uint64_t firstIndex,
                               const std::vector<double>& condition, std::vector<double>& logQ) = 0;
    /**
     * Writes proposal `index` of the block into the Context's positions: a Cartesian map writes its
     * slots and leaves every other coordinate as it is; an internal map writes all particles,
     * translated so that their centroid is that of the current positions.
     *
     * @param context  the Context's implementation
     * @param index    the proposal's index in the current block, in [0, count) (out of range throws
     *                 an OpenMMException)
     */
    virtual void loadProposal(OpenMM::ContextImpl& context, int index) = 0;
    /**
     * Saves the Context's positions, so that restoreState() can undo a loadProposal().
     *
     * @param context  the Context's implementation
     */
    virtual void saveState(OpenMM::ContextImpl& context) = 0;
    /**
     * Restores the positions saved by the last saveState().
     *
     * @param context  the Context's implementation
     */
    virtual void restoreState(OpenMM::ContextImpl& context) = 0;
    /**
     * Computes the kinetic energy of the current velocities.
     *
     * @param context  the Context's implementation
     * @return sum 1/2 m v^2 in kJ/mol
     */
    virtual double computeKineticEnergy(OpenMM::ContextImpl& context) = 0;
};

/**
 * The platform part of CGMonteCarloIntegrator, which is small: the integrator proposes, prices (through
 * the Context and the PMFForce) and accepts on the host, writing positions with ContextImpl, so every
 * platform shares that logic. A platform only has to set up its Context for an integrator (OpenCL and
 * CUDA create their device state there, as OpenMM's own integrator kernels do) and report the kinetic
 * energy of whatever velocities the Context holds.
 */
class IntegrateCGMonteCarloStepKernel : public OpenMM::KernelImpl {
public:
    /**
     * Get the name under which platforms register this kernel.
     *
     * @return "CGFlow_IntegrateCGMonteCarloStep"
     */
    static std::string Name() { return "CGFlow_IntegrateCGMonteCarloStep"; }
    /**
     * Create the kernel (called by a platform's kernel factory).
     *
     * @param name      the kernel's name, Name()
     * @param platform  the platform creating it
     */
    IntegrateCGMonteCarloStepKernel(std::string name, const OpenMM::Platform& platform)
        : OpenMM::KernelImpl(name, platform) {}
    /**
     * Prepare the Context for the integrator.
     *
     * @param system      the System the Context was created for
     * @param integrator  the integrator being bound to the Context
     */
    virtual void initialize(const OpenMM::System& system, const CGMonteCarloIntegrator& integrator) = 0;
    /**
     * Computes the kinetic energy of the current velocities (which Monte Carlo never changes).
     *
     * @param context  the Context's implementation
     * @return sum 1/2 m v^2 in kJ/mol
     */
    virtual double computeKineticEnergy(OpenMM::ContextImpl& context) = 0;
};

} // namespace CGFlowPlugin

#endif
