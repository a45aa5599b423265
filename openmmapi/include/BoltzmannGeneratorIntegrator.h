#ifndef CGFLOW_BOLTZMANNGENERATORINTEGRATOR_H_
#define CGFLOW_BOLTZMANNGENERATORINTEGRATOR_H_

#include "openmm/Integrator.h"
#include "openmm/Kernel.h"
#include <memory>
#include <string>
#include <vector>

namespace cgflow {
namespace io { struct DecodedBoltzmannGenerator; }
namespace flows { class Flow; }
namespace stats { class RunningWeights; }
}

namespace CGFlowPlugin {

/**
 * A trained Boltzmann generator as an OpenMM Integrator: every step draws an independent
 * configuration x from the flow (through the model's position map: internal coordinates for a
 * molecule, or chosen Cartesian coordinates, e.g. of CG particles), writes it into the Context,
 * prices it with the Context's own forces (only the integration force groups) and computes
 *     log w = -beta U(x) - log q(x).
 *  - Importance mode: every proposal becomes the state and its log w is recorded.
 *  - Metropolis mode: independence Metropolis-Hastings, accept with min(1, w'/w); a rejected
 *    proposal restores the previous positions. This is an exact MCMC for exp(-beta U).
 * A proposal outside the position map's principal domain (an internal-coordinate map given a bond <= 0,
 * an angle outside (0, pi) or a dependent dihedral more than pi from its reference, where the map to
 * positions is many-to-one and log q(x) of one preimage would understate the density) has weight zero
 * in either mode: it counts as a proposal, is never loaded, and leaves the state unchanged. An
 * internal-coordinate map builds the molecule in a canonical orientation around the current centroid,
 * which is exact for an isolated molecule (energy invariant to rigid motions): a Context whose System
 * is periodic, or has a CustomExternalForce in the integration force groups, is refused.
 * Either way every proposal's log w enters running statistics: Kish ESS and log Z.
 *
 * Proposals do not depend on the chain, so they are drawn in blocks of getBlockSize() by one
 * batched flow pass (on the device for OpenCL/CUDA) and consumed one per step. Proposal k uses
 * base draw k of the seed's counter-based stream, so a seed fixes the whole sequence whatever the
 * block size or platform.
 *
 * Next to other integrators (openmm.CompoundIntegrator with a LangevinMiddleIntegrator: flow moves
 * plus local moves) the chain state may change between our steps; Metropolis mode notices (the
 * positions differ from those it left) and prices the new current state with its energy and the
 * flow's inverse pass, so the combined chain stays exact. Velocities: after an accepted move they
 * are redrawn from Maxwell-Boltzmann at the integrator's temperature (the flow proposes positions
 * only, and velocities are independent of positions in the canonical ensemble); a rejected move
 * leaves them untouched. Time does not advance (step size 0); the step count does.
 *
 * The model is a value: the bytes of an OpenMM-CGFlow model file of kind "boltzmann_generator",
 * embedded when the integrator is serialized to XML.
 *
 * Units: temperature in kelvin, energies in kJ/mol, positions in nm; log q, log w and log Z are
 * natural logarithms. Creating a Context checks that a model is set, that its position map covers
 * exactly the System's particles, that the condition vector has getConditionDimension() values,
 * and that the System has no virtual sites and no constraints (flow proposals would not respect
 * them); each failure throws an OpenMMException. All statistics restart when a Context is created.
 */
class BoltzmannGeneratorIntegrator : public OpenMM::Integrator {
public:
    /**
     * What step() does with each proposal. Importance: every proposal becomes the state, and its
     * log-weight is recorded for reweighting. Metropolis: independence Metropolis-Hastings, which
     * accepts a proposal with probability min(1, w'/w), so the chain samples exp(-beta U) exactly.
     */
    enum Mode { Importance = 0, Metropolis = 1 };

    /**
     * Create a BoltzmannGeneratorIntegrator without a model: call setModelFile() or
     * setModelBytes() before creating a Context (creating one without a model throws an
     * OpenMMException).
     *
     * @param temperature  the temperature in kelvin, which sets the target exp(-U / (k_B T)); it
     *                     must be finite and > 0, otherwise an OpenMMException is thrown
     * @param mode         Metropolis (the default) for an exact Markov chain, or Importance to keep
     *                     every proposal (any other value throws an OpenMMException)
     */
    explicit BoltzmannGeneratorIntegrator(double temperature, Mode mode = Metropolis);
    /**
     * Create a BoltzmannGeneratorIntegrator whose model is read from a file, as by setModelFile().
     *
     * @param modelFile    the path of an OpenMM-CGFlow model file of kind "boltzmann_generator". It
     *                     is read and validated now: a missing, unreadable or invalid file throws an
     *                     OpenMMException whose message starts
     *                     "BoltzmannGeneratorIntegrator: modelFile:" and names the file.
     * @param temperature  the temperature in kelvin; finite and > 0, otherwise an OpenMMException
     *                     is thrown
     * @param mode         Metropolis (the default) or Importance (any other value throws an
     *                     OpenMMException)
     */
    BoltzmannGeneratorIntegrator(const std::string& modelFile, double temperature, Mode mode = Metropolis);
    ~BoltzmannGeneratorIntegrator();

    /**
     * Set the model by reading an OpenMM-CGFlow model file (kind "boltzmann_generator": a flow and
     * its position map). The file is read and decoded now, so errors point at this call; the
     * integrator keeps the file's bytes (getModelBytes()), not its path. Set the model before
     * creating a Context: while the integrator is bound to a Context this throws an
     * OpenMMException (the Context's kernels were built for the model it was created with).
     *
     * @param path  the path of the model file. If it cannot be read or is not a valid Boltzmann
     *              generator, an OpenMMException is thrown (its message starts
     *              "BoltzmannGeneratorIntegrator: modelFile:" and names the file) and the previous
     *              model is kept.
     */
    void setModelFile(const std::string& path);
    /**
     * Set the model from the contents of a model file held in memory (for example from
     * encode_boltzmann_generator() in Python). The bytes are decoded and validated now. Set the
     * model before creating a Context: while the integrator is bound to a Context this throws an
     * OpenMMException (the Context's kernels were built for the model it was created with).
     *
     * @param modelBytes  the bytes of an OpenMM-CGFlow model file of kind "boltzmann_generator" (in
     *                    Python a bytes object; any other type raises TypeError). Invalid contents
     *                    throw an OpenMMException whose message starts
     *                    "BoltzmannGeneratorIntegrator: modelBytes:", and the previous model is kept.
     */
    void setModelBytes(const std::string& modelBytes);
    /**
     * Get the model as the bytes of a model file: what setModelFile() read or setModelBytes() was
     * given. These bytes are what XML serialization embeds.
     *
     * @return the model file's bytes (in Python a bytes object); empty if no model has been set
     */
    const std::string& getModelBytes() const;
    /**
     * Get whether a model has been set.
     *
     * @return true once the file constructor, setModelFile() or setModelBytes() has succeeded
     */
    bool hasModel() const;
    /**
     * Get the number of particles the model's position map covers. It must equal the System's
     * number of particles when a Context is created.
     *
     * @return the number of particles, or 0 if no model has been set
     */
    int getModelNumParticles() const;
    /**
     * Get the dimension of the flow: how many coordinates (internal coordinates or chosen
     * Cartesian coordinates) it samples per proposal.
     *
     * @return the flow's dimension, or 0 if no model has been set
     */
    int getModelDimension() const;
    /**
     * Get the length of the condition vector a conditional model expects (see
     * setConditionVector()).
     *
     * @return the condition dimension: 0 for an unconditional model or if no model has been set
     */
    int getConditionDimension() const;

    /**
     * Get the temperature of the target distribution exp(-U / (k_B T)), which is also the
     * temperature velocities are redrawn at.
     *
     * @return the temperature in kelvin
     */
    double getTemperature() const { return temperature; }
    /**
     * Set the temperature of the target distribution exp(-U / (k_B T)). It takes effect at the next
     * step (the current state's log-weight is recomputed).
     *
     * @param temperature  the temperature in kelvin: finite and > 0, otherwise an OpenMMException is
     *                     thrown and the temperature is unchanged
     */
    void setTemperature(double temperature);
    /**
     * Get what step() does with each proposal.
     *
     * @return Importance or Metropolis
     */
    Mode getMode() const { return mode; }
    /**
     * Set what step() does with each proposal; it takes effect at the next step.
     *
     * @param mode  Importance or Metropolis (any other value throws an OpenMMException)
     */
    void setMode(Mode mode);
    /**
     * Get the number of proposals drawn by one batched flow pass.
     *
     * @return the block size (default 1024)
     */
    int getBlockSize() const { return blockSize; }
    /**
     * Set the number of proposals drawn by one batched flow pass. A change takes effect at the next
     * block, and it does not change the sequence of proposals (a seed fixes it).
     *
     * @param size  the block size, >= 1 (a smaller value throws an OpenMMException)
     */
    void setBlockSize(int size);
    /**
     * Get the seed of the random streams (proposals, acceptance tests, velocities).
     *
     * @return the seed; 0 (the default) means one is picked from the clock when a Context is created
     */
    int getRandomNumberSeed() const { return randomNumberSeed; }
    /**
     * Set the seed of the random streams (proposals, acceptance tests, velocities). It is read when a
     * Context is created, so set it before; as for OpenMM's integrators, 0 (the default) picks a
     * seed from the clock. A nonzero seed fixes the sequence of proposals and acceptance tests,
     * whatever the block size or platform.
     *
     * @param seed  the seed; any int (0 for a seed from the clock)
     */
    void setRandomNumberSeed(int seed);
    /**
     * Get the condition vector passed to a conditional model.
     *
     * @return the condition vector (in Python a list); empty until set, and unused by an
     *         unconditional model
     */
    const std::vector<double>& getConditionVector() const { return condition; }
    /**
     * Set the condition vector passed to a conditional model (the flow's context input). Proposals
     * already drawn for the current block are discarded, so the next step draws new ones under the
     * new condition.
     *
     * @param values  getConditionDimension() finite numbers (in Python any sequence of numbers). A
     *                non-finite entry, or a length that differs from the model's condition dimension
     *                when a model is set, throws an OpenMMException; the length is checked again when
     *                a Context is created.
     */
    void setConditionVector(const std::vector<double>& values);
    /**
     * Get whether velocities are redrawn from the Maxwell-Boltzmann distribution after an accepted
     * move.
     *
     * @return true (the default) if velocities are redrawn
     */
    bool getRedrawVelocities() const { return redrawVelocities; }
    /**
     * Set whether velocities are redrawn from the Maxwell-Boltzmann distribution at the
     * integrator's temperature after an accepted move (a rejected move never touches them).
     *
     * @param redraw  true (the default) to redraw velocities, false to leave them as they are
     */
    void setRedrawVelocities(bool redraw) { redrawVelocities = redraw; }

    /**
     * Advance the chain: each step draws one proposal from the flow, prices it with the Context's
     * forces and, depending on the mode, keeps it or restores the previous state. The Context's
     * step count increases by the number of steps; its time does not change.
     *
     * @param steps  the number of steps, >= 0 (a negative value throws an OpenMMException, as does
     *               calling this before the integrator is bound to a Context)
     */
    void step(int steps) override;

    /**
     * Get log q(x) of the last proposal: the log density of the flow's proposal at x, including the
     * position map's log|det J|.
     *
     * @return log q of the last proposal stepped through; NaN before the first step and after
     *         resetStatistics(); may be -inf for a point outside the flow's support
     */
    double getLastLogQ() const { return lastLogQ; }
    /**
     * Get the potential energy of the last proposal (the integration force groups only).
     *
     * @return the energy in kJ/mol; NaN before the first step and after resetStatistics(); may be
     *         non-finite for a clash
     */
    double getLastEnergy() const { return lastEnergy; }
    /**
     * Get the log importance weight of the last proposal, log w = -beta U(x) - log q(x).
     *
     * @return log w (dimensionless): -inf for a weight of zero (non-finite energy or log q); NaN
     *         before the first step and after resetStatistics()
     */
    double getLastLogWeight() const { return lastLogWeight; }
    /**
     * Get whether the last proposal became the state.
     *
     * @return the Metropolis decision in Metropolis mode, true in Importance mode except for a
     *         proposal outside the position map's domain (which leaves the state unchanged); false
     *         before the first step and after resetStatistics()
     */
    bool getLastAccepted() const { return lastAccepted; }
    /**
     * Get the number of proposals stepped through since the Context was created or
     * resetStatistics() was called (those of evaluateProposals() are not counted).
     *
     * @return the number of proposals
     */
    long long getNumProposals() const;
    /**
     * Get the number of proposals that became the state, over the same proposals as
     * getNumProposals() (all of them in Importance mode).
     *
     * @return the number of accepted proposals
     */
    long long getNumAccepted() const { return numAccepted; }
    /**
     * Get the fraction of proposals accepted: getNumAccepted() / getNumProposals().
     *
     * @return the acceptance rate in [0, 1]; 0 before the first step; 1 in Importance mode
     */
    double getAcceptanceRate() const;
    /**
     * Get the number of proposals with a non-finite energy or log q: their log w is -inf (weight
     * zero), and Metropolis mode never accepts them.
     *
     * @return the number of zero-weight proposals among getNumProposals()
     */
    long long getNumNonFinite() const;
    /**
     * Get Kish's effective sample size (sum w)^2 / sum w^2 of the importance weights of all
     * proposals since the Context was created or resetStatistics() was called.
     *
     * @return the ESS, in [1, getNumProposals()]; 0 before the first step or while every weight is
     *         zero
     */
    double getEffectiveSampleSize() const;
    /**
     * Get the effective sample size as a fraction of the number of proposals, a measure of how
     * well the flow matches the Boltzmann distribution (1 for a perfect flow).
     *
     * @return getEffectiveSampleSize() / getNumProposals(), in [0, 1]; 0 before the first step
     */
    double getEffectiveSampleFraction() const;
    /**
     * Get the estimate of log Z from all proposals so far: the log of the mean importance weight,
     * log Z for Z = integral exp(-beta U) over the position map's coordinates (the flow's density
     * is normalized, so the mean weight estimates Z).
     *
     * @return the log Z estimate (dimensionless); NaN before the first step, -inf while every
     *         weight is zero
     */
    double getLogZ() const;
    /**
     * Get the standard error of getLogZ() by the delta method, sqrt(1/ESS - 1/n) for n proposals.
     *
     * @return the standard error of log Z; NaN before the first step, +inf while every weight is
     *         zero
     */
    double getLogZError() const;
    /**
     * Get the wall-clock time spent drawing blocks of proposals (the flow pass and the position
     * map's log|det J|) since the Context was created or resetStatistics() was called, step() and
     * evaluateProposals() together; for profiling where a chain's time goes.
     *
     * @return the time in seconds
     */
    double getFlowSeconds() const { return flowSeconds; }
    /**
     * Get the wall-clock time spent pricing proposals (energy evaluations) since the Context was
     * created or resetStatistics() was called, step() and evaluateProposals() together.
     *
     * @return the time in seconds
     */
    double getEnergySeconds() const { return energySeconds; }
    /**
     * Forget the chain statistics: the counts of proposals, acceptances and non-finite proposals,
     * the ESS and log Z, the timings, and the last proposal's values (which become NaN). The chain's
     * state, its random stream and the results of evaluateProposals() are kept.
     */
    void resetStatistics();

    /**
     * Draws n proposals (continuing the same stream as step()) and prices each with the Context's
     * forces, without moving the chain: the state is restored afterwards and the chain statistics
     * are not touched. Results are kept until the next call: getBatchPositions() (n * numParticles * 3
     * values, nm, in the Context's particle order), getBatchLogQ(), getBatchEnergies(),
     * getBatchLogWeights() (n values each). The proposals used here are not offered to step()
     * again: the chain goes on with the next ones in the stream.
     *
     * @param n  the number of proposals, >= 1 (a smaller value throws an OpenMMException, as does
     *           calling this before the integrator is bound to a Context)
     */
    void evaluateProposals(int n);
    /**
     * Get the positions of the proposals of the last evaluateProposals() call.
     *
     * @return n * numParticles * 3 values in nm (proposal by proposal, then particle by particle in
     *         the Context's order, then x, y, z; in Python a list), NaN for a proposal outside the
     *         position map's domain (its log q is NaN too); empty before the first call
     */
    const std::vector<double>& getBatchPositions() const { return batchPositions; }
    /**
     * Get log q(x) of each proposal of the last evaluateProposals() call.
     *
     * @return n values (in Python a list); empty before the first call
     */
    const std::vector<double>& getBatchLogQ() const { return batchLogQ; }
    /**
     * Get the potential energy of each proposal of the last evaluateProposals() call (the
     * integration force groups only).
     *
     * @return n energies in kJ/mol (in Python a list); empty before the first call
     */
    const std::vector<double>& getBatchEnergies() const { return batchEnergies; }
    /**
     * Get the log importance weight log w = -beta U(x) - log q(x) of each proposal of the last
     * evaluateProposals() call.
     *
     * @return n values, -inf for a weight of zero (in Python a list); empty before the first call
     */
    const std::vector<double>& getBatchLogWeights() const { return batchLogWeights; }

    /**
     * The decoded model, shared: the model bytes are decoded once, when they are set, and the
     * platform kernels read it from here (they hold the pointer, so a later setModelBytes() does not
     * pull it from under a running Context). Internal: not wrapped for Python.
     *
     * @return the decoded model (flow and position map)
     * @throws OpenMMException if no model has been set
     */
    std::shared_ptr<const cgflow::io::DecodedBoltzmannGenerator> getModel() const;

protected:
    /**
     * Bind to a Context: make the checks listed in the class description, create the platform
     * kernel, seed the random streams and reset the statistics.
     */
    void initialize(OpenMM::ContextImpl& context) override;
    /** Release the platform kernel and the host copy of the flow. */
    void cleanup() override;
    std::vector<std::string> getKernelNames() override;
    double computeKineticEnergy() override;
    bool kineticEnergyRequiresForce() const override { return false; }

private:
    struct Proposal {
        double logQ, energy, logWeight;
        bool loaded; ///< false for a proposal outside the position map's principal domain (never loaded)
    };
    void checkInitialized(const char* method) const;
    void checkNotBound(const char* method) const;
    double beta() const;
    /** Next proposal loaded into the Context (unless its log q is NaN: outside the map's domain); returns its log q. */
    double loadNextProposal();
    Proposal priceLoaded(double logQ);
    /** The next proposal, loaded and priced, or (not loaded) weight zero if it is outside the map's domain. */
    Proposal takeNextProposal();
    /** Energy and log q of the Context's current state, recomputed if the positions changed. */
    void refreshCurrentState();
    void redrawVelocitiesNow();

    double temperature;
    Mode mode;
    int blockSize = 1024;
    int randomNumberSeed = 0;
    std::vector<double> condition;
    bool redrawVelocities = true;
    std::string modelBytes;
    std::shared_ptr<const cgflow::io::DecodedBoltzmannGenerator> model;

    // State of one Context (set by initialize()).
    OpenMM::Kernel kernel;
    // Our own copy of the flow for the inverse pass (log q of a state another integrator moved to).
    std::shared_ptr<cgflow::flows::Flow> hostFlow;
    unsigned long long seed = 0;
    unsigned long long nextProposalIndex = 0;
    std::vector<double> blockLogQ;
    int blockPosition = 0;
    bool blockValid = false;
    bool currentKnown = false;
    double currentEnergy = 0, currentLogQ = 0, currentLogWeight = 0;
    std::vector<double> currentPositions;
    long long velocityDraws = 0;

    double lastLogQ = 0, lastEnergy = 0, lastLogWeight = 0;
    bool lastAccepted = false;
    double flowSeconds = 0, energySeconds = 0;
    // Every proposal's log w (zero weights included): ESS, log Z and its error.
    // (A pointer so that this public header needs no core header.)
    std::unique_ptr<cgflow::stats::RunningWeights> weights;
    long long numAccepted = 0;

    std::vector<double> batchPositions, batchLogQ, batchEnergies, batchLogWeights;
};

} // namespace CGFlowPlugin

#endif
