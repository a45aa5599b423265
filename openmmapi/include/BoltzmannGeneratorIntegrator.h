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
}

namespace CGFlow {

/**
 * A trained Boltzmann generator as an OpenMM Integrator: every step draws an independent
 * configuration x from the flow (through the model's position map: internal coordinates for a
 * molecule, or chosen Cartesian coordinates, e.g. of CG particles), writes it into the Context,
 * prices it with the Context's own forces (only the integration force groups) and computes
 *     log w = -beta U(x) - log q(x).
 *  - Importance mode: every proposal becomes the state and its log w is recorded.
 *  - Metropolis mode: independence Metropolis-Hastings, accept with min(1, w'/w); a rejected
 *    proposal restores the previous positions. This is an exact MCMC for exp(-beta U).
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
 */
class BoltzmannGeneratorIntegrator : public OpenMM::Integrator {
public:
    enum Mode { Importance = 0, Metropolis = 1 };

    /** No model yet: call setModelFile() or setModelBytes() before creating a Context. */
    explicit BoltzmannGeneratorIntegrator(double temperature, Mode mode = Metropolis);
    /** Reads the model from a file (validated now; errors name the file). */
    BoltzmannGeneratorIntegrator(const std::string& modelFile, double temperature, Mode mode = Metropolis);
    ~BoltzmannGeneratorIntegrator();

    void setModelFile(const std::string& path);
    void setModelBytes(const std::string& modelBytes);
    const std::string& getModelBytes() const;
    bool hasModel() const;
    /** Particles the model's position map covers, the flow's dimension, its condition dimension (0 without a model). */
    int getModelNumParticles() const;
    int getModelDimension() const;
    int getConditionDimension() const;

    /** Kelvin, > 0. */
    double getTemperature() const { return temperature; }
    void setTemperature(double temperature);
    Mode getMode() const { return mode; }
    void setMode(Mode mode);
    /** Proposals per batched flow pass (default 1024, >= 1). A change takes effect at the next block. */
    int getBlockSize() const { return blockSize; }
    void setBlockSize(int size);
    /** 0 (default) picks a seed from the clock when the Context is created, as OpenMM's integrators do. */
    int getRandomNumberSeed() const { return randomNumberSeed; }
    void setRandomNumberSeed(int seed);
    /** The condition vector of a conditional model (getConditionDimension() values); unused otherwise. */
    const std::vector<double>& getConditionVector() const { return condition; }
    void setConditionVector(const std::vector<double>& values);
    /** Redraw velocities after accepted moves (default true). */
    bool getRedrawVelocities() const { return redrawVelocities; }
    void setRedrawVelocities(bool redraw) { redrawVelocities = redraw; }

    void step(int steps) override;

    /** The last proposal: its log q(x), energy (kJ/mol), log w, and whether it became the state. */
    double getLastLogQ() const { return lastLogQ; }
    double getLastEnergy() const { return lastEnergy; }
    double getLastLogWeight() const { return lastLogWeight; }
    bool getLastAccepted() const { return lastAccepted; }
    /** Proposals stepped through since creation or resetStatistics() (evaluateProposals() not included). */
    long long getNumProposals() const { return numProposals; }
    long long getNumAccepted() const { return numAccepted; }
    double getAcceptanceRate() const;
    /** Proposals with a non-finite energy or log q (log w = -inf: weight 0, never accepted). */
    long long getNumNonFinite() const { return numNonFinite; }
    /** Kish ESS (sum w)^2 / sum w^2 of all proposals so far, and as a fraction of their number. */
    double getEffectiveSampleSize() const;
    double getEffectiveSampleFraction() const;
    /**
     * log of the mean weight: log Z for Z = integral exp(-beta U) over the map's coordinates (the
     * flow's density is normalized), and its standard error sqrt(1/ESS - 1/n) (delta method).
     */
    double getLogZ() const;
    double getLogZError() const;
    /**
     * Wall-clock seconds spent since creation or resetStatistics() drawing blocks of proposals (the
     * flow pass and the position map's log|det J|) and pricing proposals (energy evaluations), for
     * profiling where a chain's time goes.
     */
    double getFlowSeconds() const { return flowSeconds; }
    double getEnergySeconds() const { return energySeconds; }
    void resetStatistics();

    /**
     * Draws n proposals (continuing the same stream as step()) and prices each with the Context's
     * forces, without moving the chain: the state is restored afterwards and the chain statistics
     * are not touched. Results are kept until the next call: getBatchPositions() (n * numParticles * 3
     * values, nm, in the Context's particle order), getBatchLogQ(), getBatchEnergies(),
     * getBatchLogWeights() (n values each).
     */
    void evaluateProposals(int n);
    const std::vector<double>& getBatchPositions() const { return batchPositions; }
    const std::vector<double>& getBatchLogQ() const { return batchLogQ; }
    const std::vector<double>& getBatchEnergies() const { return batchEnergies; }
    const std::vector<double>& getBatchLogWeights() const { return batchLogWeights; }

    /** The decoded model (used by kernels). Error without a model. */
    const cgflow::io::DecodedBoltzmannGenerator& getModel() const;

protected:
    void initialize(OpenMM::ContextImpl& context) override;
    void cleanup() override;
    std::vector<std::string> getKernelNames() override;
    double computeKineticEnergy() override;
    bool kineticEnergyRequiresForce() const override { return false; }

private:
    struct Proposal {
        double logQ, energy, logWeight;
    };
    void checkInitialized(const char* method) const;
    double beta() const;
    /** Next proposal loaded into the Context; returns its log q. */
    double loadNextProposal();
    Proposal priceLoaded(double logQ);
    /** Energy and log q of the Context's current state, recomputed if the positions changed. */
    void refreshCurrentState();
    void recordWeight(double logWeight);
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
    long long numProposals = 0, numAccepted = 0, numNonFinite = 0;
    // log(sum w) and log(sum w^2), accumulated with log-add-exp so that any range of log w is safe.
    double logSumW = 0, logSumW2 = 0;

    std::vector<double> batchPositions, batchLogQ, batchEnergies, batchLogWeights;
};

} // namespace CGFlow

#endif
