#ifndef CGFLOW_CGMONTECARLOINTEGRATOR_H_
#define CGFLOW_CGMONTECARLOINTEGRATOR_H_

#include "openmm/Integrator.h"
#include "openmm/Kernel.h"
#include "openmm/Vec3.h"
#include <string>
#include <vector>

namespace CGFlowPlugin {

class PMFForce;
class PMFForceImpl;

/**
 * Metropolis Monte Carlo in a coarse-grained Context, and the search for points where a PMF
 * ensemble is uncertain (the CG sampler of active learning, Schopmans & Friederich).
 *
 * Each step moves chosen Cartesian coordinates of chosen particles (addMovedCoordinate()) by
 * Gaussian displacements of standard deviation getProposalScale(), wraps a periodic coordinate into
 * [-period/2, period/2), prices the proposal with the Context's forces and accepts it with
 * probability min(1, exp(-(U' - U) / k_B T)). The proposal is symmetric (a wrapped Gaussian is), so
 * the chain samples exp(-U / k_B T) exactly. Only positions change: velocities are left alone, time
 * does not advance (step size 0), the Context's step count does.
 *
 * **Walkers.** When the System's PMFForce has particle groups (PMFForce::addParticleGroup()), each
 * group is one independent walker: a step proposes a move of every walker at once, one batched
 * evaluation prices them all (getGroupEnergies of the PMFForce, on any platform), and each walker
 * accepts or rejects on its own energy difference. This is exact because the energy is a sum over
 * groups; for that reason, with several walkers the PMFForce must be the System's only force that
 * contributes energy (a CMMotionRemover is allowed), every moved coordinate must belong to a group,
 * and the PMFForce's force group must be among the integration force groups. Without groups there
 * is one walker, priced by all forces in the integration force groups (anything the user adds).
 *
 * **Uncertain points.** With setUncertaintyThreshold() > 0 (kJ/mol), after every step each walker
 * that has made at least getMinimumSteps() steps and whose state has an ensemble standard deviation
 * (of its PMFForce group, PMFForce::getGroupEnsembleStd()) above the threshold is recorded as a
 * found point (its moved coordinates, the step, the spread) and stops: it keeps its position and is
 * no longer moved until resetWalkers(). The active-learning paper runs 200 such chains with
 * proposal scale 0.1 rad and threshold 0.2 k_B T until 30 points are found. This needs a PMFForce
 * with at least two ensemble members.
 *
 * Proposals and acceptances come from counter-based random streams of the seed (step, coordinate
 * or walker), so a seed fixes the whole run on every platform. A Context's positions changed between
 * calls to step() (setPositions, another integrator of a CompoundIntegrator) are noticed and priced
 * again. Statistics and found points restart when a Context is created.
 *
 * Units: temperature in kelvin, energies in kJ/mol, coordinates and periods in nm (or whatever a
 * Coordinate feature of the PMFForce reads as an angle: a period of 2 pi makes x an angle in radians).
 */
class CGMonteCarloIntegrator : public OpenMM::Integrator {
public:
    /**
     * Create a CGMonteCarloIntegrator. Add the moved coordinates with addMovedCoordinate() before
     * creating a Context.
     *
     * @param temperature    the temperature in kelvin; finite and > 0, otherwise an OpenMMException
     *                       naming "temperature" is thrown
     * @param proposalScale  the standard deviation of the Gaussian displacement of every moved
     *                       coordinate (nm, or radians for an angle); finite and > 0, otherwise an
     *                       OpenMMException naming "proposalScale" is thrown
     */
    CGMonteCarloIntegrator(double temperature, double proposalScale);
    ~CGMonteCarloIntegrator();

    /**
     * Add a coordinate that the integrator moves.
     *
     * @param particle  the particle's index, >= 0 (checked against the System when a Context is
     *                  created)
     * @param axis      0, 1 or 2 for x, y, z
     * @param period    0 for an unbounded coordinate, or the period (> 0) of a periodic one, which is
     *                  wrapped into [-period/2, period/2) after every move
     * @return the index of the moved coordinate
     * @throws OpenMMException naming the argument for a negative particle, a bad axis, a negative or
     *         non-finite period, or a coordinate added twice; and when the integrator is bound to a
     *         Context (add the coordinates before creating it)
     */
    int addMovedCoordinate(int particle, int axis, double period = 0.0);
    /**
     * Get the number of moved coordinates.
     *
     * @return how many addMovedCoordinate() calls succeeded
     */
    int getNumMovedCoordinates() const { return (int) movedParticles.size(); }
    /**
     * Get the particle of a moved coordinate.
     *
     * @param index  in [0, getNumMovedCoordinates()); otherwise an OpenMMException is thrown
     * @return the particle index
     */
    int getMovedParticle(int index) const;
    /**
     * Get the axis of a moved coordinate.
     *
     * @param index  in [0, getNumMovedCoordinates()); otherwise an OpenMMException is thrown
     * @return 0, 1 or 2 for x, y, z
     */
    int getMovedAxis(int index) const;
    /**
     * Get the period of a moved coordinate.
     *
     * @param index  in [0, getNumMovedCoordinates()); otherwise an OpenMMException is thrown
     * @return the period, 0 for an unbounded coordinate
     */
    double getMovedPeriod(int index) const;
    /**
     * Restrict an unbounded moved coordinate to [lower, upper]: a proposal that leaves the interval is
     * rejected (the walker stays; the proposal counts). The chain then samples the PMF restricted to the
     * region, exactly: the region of CG space where the user wants the PMF, and a wall against walkers
     * drifting far out where the ensemble only extrapolates. Starting positions outside are allowed;
     * such a walker only accepts moves that land inside.
     *
     * @param index  in [0, getNumMovedCoordinates()); otherwise an OpenMMException is thrown
     * @param lower  the lower bound, finite
     * @param upper  the upper bound, finite and > lower (otherwise an OpenMMException naming "upper" is
     *               thrown); a periodic coordinate cannot be bounded (OpenMMException)
     */
    void setMovedCoordinateBounds(int index, double lower, double upper);
    /**
     * Get the lower bound of a moved coordinate.
     *
     * @param index  in [0, getNumMovedCoordinates()); otherwise an OpenMMException is thrown
     * @return the bound, -infinity when unbounded
     */
    double getMovedLowerBound(int index) const;
    /**
     * Get the upper bound of a moved coordinate.
     *
     * @param index  in [0, getNumMovedCoordinates()); otherwise an OpenMMException is thrown
     * @return the bound, +infinity when unbounded
     */
    double getMovedUpperBound(int index) const;

    /**
     * Get the temperature.
     *
     * @return the temperature in kelvin
     */
    double getTemperature() const { return temperature; }
    /**
     * Set the temperature of the acceptance test.
     *
     * @param temperature  kelvin, finite and > 0 (otherwise an OpenMMException is thrown)
     */
    void setTemperature(double temperature);
    /**
     * Get the standard deviation of the proposed displacements.
     *
     * @return the proposal scale (nm, or radians for an angle)
     */
    double getProposalScale() const { return proposalScale; }
    /**
     * Set the standard deviation of the proposed displacements.
     *
     * @param scale  finite and > 0 (otherwise an OpenMMException naming "proposalScale" is thrown)
     */
    void setProposalScale(double scale);
    /**
     * Get the random number seed.
     *
     * @return the seed; 0 means a different seed for every Context
     */
    int getRandomNumberSeed() const { return randomNumberSeed; }
    /**
     * Set the random number seed. It takes effect when a Context is created.
     *
     * @param seed  any int; 0 picks a different seed for every Context
     */
    void setRandomNumberSeed(int seed) { randomNumberSeed = seed; }
    /**
     * Get the ensemble-spread threshold above which a walker's state is recorded as a found point.
     *
     * @return the threshold in kJ/mol; 0 when the search is off
     */
    double getUncertaintyThreshold() const { return uncertaintyThreshold; }
    /**
     * Set the ensemble-spread threshold (the population standard deviation of a PMFForce group's
     * member energies) above which a walker's state is recorded and the walker stops. The paper
     * uses 0.2 k_B T (0.499 kJ/mol at 300 K) for alanine dipeptide.
     *
     * @param threshold  kJ/mol, finite and >= 0; 0 turns the search off (otherwise an OpenMMException
     *                   naming "threshold" is thrown)
     */
    void setUncertaintyThreshold(double threshold);
    /**
     * Get the number of steps a walker must make before its states can be recorded.
     *
     * @return the minimum number of steps
     */
    int getMinimumSteps() const { return minimumSteps; }
    /**
     * Set the number of steps a walker must make (since the Context was created or resetWalkers())
     * before its states can be recorded as found points, so that a walker started at a known
     * uncertain point moves away first.
     *
     * @param steps  >= 0 (otherwise an OpenMMException naming "steps" is thrown)
     */
    void setMinimumSteps(int steps);

    /**
     * Get the number of walkers of the bound Context: the PMFForce's particle groups, or 1.
     *
     * @return the number of walkers; 0 before a Context is created
     */
    int getNumWalkers() const { return (int) walkerCoordinates.size(); }
    /**
     * Get each walker's energy at the current state (kJ/mol): its PMFForce group's ensemble mean,
     * or with one walker the energy of the integration force groups.
     *
     * @return getNumWalkers() energies (in Python a list); refreshed by every step()
     */
    std::vector<double> getWalkerEnergies() const { return walkerEnergy; }
    /**
     * Get how many steps each walker has made (moves proposed) since the Context was created or
     * resetWalkers(). A stopped walker's count no longer grows.
     *
     * @return getNumWalkers() counts (in Python a list of floats)
     */
    std::vector<double> getWalkerSteps() const;
    /**
     * Get whether each walker has stopped at a found point.
     *
     * @return getNumWalkers() values, 1 for a stopped walker and 0 otherwise (in Python a tuple)
     */
    std::vector<int> getWalkersStopped() const;
    /**
     * Get the number of walkers still moving.
     *
     * @return getNumWalkers() minus the stopped ones
     */
    int getNumActiveWalkers() const;
    /**
     * Let every walker move again and restart the walkers' step counts (found points are kept;
     * see clearFoundPoints()).
     */
    void resetWalkers();

    /**
     * Get the number of proposed walker moves since the Context was created or resetStatistics().
     *
     * @return proposals, one per active walker per step
     */
    long long getNumProposals() const { return numProposals; }
    /**
     * Get the number of accepted walker moves.
     *
     * @return accepted proposals
     */
    long long getNumAccepted() const { return numAccepted; }
    /**
     * Get the fraction of proposals accepted.
     *
     * @return getNumAccepted() / getNumProposals(), 0 before the first proposal
     */
    double getAcceptanceRate() const;
    /**
     * Restart the proposal and acceptance counts.
     */
    void resetStatistics();

    /**
     * Get the number of points recorded by the uncertainty search.
     *
     * @return the number of found points
     */
    int getNumFoundPoints() const { return (int) foundWalker.size(); }
    /**
     * Get the moved coordinates of a found point, in the order they were added (those of its
     * walker only).
     *
     * @param index  in [0, getNumFoundPoints()); otherwise an OpenMMException is thrown
     * @return the coordinates (in Python a list)
     */
    std::vector<double> getFoundPointCoordinates(int index) const;
    /**
     * Get the walker that found a point.
     *
     * @param index  in [0, getNumFoundPoints()); otherwise an OpenMMException is thrown
     * @return the walker's index
     */
    int getFoundPointWalker(int index) const;
    /**
     * Get the walker's step count when it found a point.
     *
     * @param index  in [0, getNumFoundPoints()); otherwise an OpenMMException is thrown
     * @return steps made by the walker (at least getMinimumSteps())
     */
    double getFoundPointStep(int index) const;
    /**
     * Get the ensemble spread at a found point.
     *
     * @param index  in [0, getNumFoundPoints()); otherwise an OpenMMException is thrown
     * @return the standard deviation in kJ/mol (above the threshold)
     */
    double getFoundPointStd(int index) const;
    /**
     * Forget the found points (stopped walkers stay stopped; see resetWalkers()).
     */
    void clearFoundPoints();

    /**
     * Make steps: each step proposes a move of every active walker and accepts or rejects each.
     *
     * @param steps  the number of steps, >= 0 (otherwise an OpenMMException is thrown)
     */
    void step(int steps) override;

protected:
    /**
     * Bind to a Context: find the walkers (see the class description), check the moved coordinates
     * and forces, seed the random streams and restart the statistics.
     */
    void initialize(OpenMM::ContextImpl& context) override;
    void cleanup() override;
    std::vector<std::string> getKernelNames() override;
    /** The kinetic energy of the Context's velocities, which Monte Carlo moves leave unchanged. */
    double computeKineticEnergy() override;
    bool kineticEnergyRequiresForce() const override { return false; }

private:
    void checkFoundIndex(int index) const;
    void checkCoordinateIndex(int index) const;
    double beta() const;
    /** Energies (and, for the search, ensemble spreads) of every walker at the Context's positions. */
    void priceWalkers(std::vector<double>& energies, std::vector<double>& spreads);
    /** Re-price the current state if the Context's positions are not those we left. */
    void refreshCurrentState();

    double temperature, proposalScale;
    int randomNumberSeed = 0;
    double uncertaintyThreshold = 0;
    int minimumSteps = 0;
    std::vector<int> movedParticles, movedAxes;
    std::vector<double> movedPeriods, movedLower, movedUpper;

    // State of one Context (set by initialize(); the Context itself is the base class's `context`).
    OpenMM::Kernel kernel;
    PMFForceImpl* pmf = nullptr;       // the PMFForce that prices walkers or spreads, if any
    int pmfMembers = 0;
    bool walkersFromGroups = false;   // several walkers priced by the PMFForce's groups
    unsigned long long seed = 0;
    unsigned long long stepIndex = 0;
    std::vector<std::vector<int>> walkerCoordinates; // moved-coordinate indices of each walker
    std::vector<double> walkerEnergy, walkerSpread;
    std::vector<long long> walkerSteps;
    std::vector<char> walkerStopped;
    bool currentKnown = false;
    std::vector<OpenMM::Vec3> currentPositions;
    long long numProposals = 0, numAccepted = 0;
    std::vector<int> foundWalker;
    std::vector<long long> foundStep;
    std::vector<double> foundStd;
    std::vector<std::vector<double>> foundCoordinates;
};

} // namespace CGFlowPlugin

#endif
