#include "CGMonteCarloIntegrator.h"
#include "CGFlowKernels.h"
#include "PMFForce.h"
#include "internal/PMFForceImpl.h"
#include "cgflow/stats/Metropolis.h"
#include "cgflow/util/Random.h"
#include "openmm/CMMotionRemover.h"
#include "cgflow/stats/Moments.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <set>

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

constexpr double BoltzmannKJ = 0.00831446261815324; // kJ/mol/K
constexpr double TwoPi = 6.283185307179586;
// Philox counter words that keep proposals and acceptances apart.
constexpr uint32_t proposalStream = 0x43474D50;   // "CGMP"
constexpr uint32_t acceptanceStream = 0x43474D41; // "CGMA"

std::string name(const char* method) {
    return std::string("CGMonteCarloIntegrator::") + method;
}

/** x wrapped into [-period/2, period/2). */
double wrapPeriodic(double x, double period) {
    double wrapped = x - period * std::floor(x / period + 0.5);
    if (wrapped >= 0.5 * period) // rounding at the upper edge
        wrapped -= period;
    return wrapped;
}

} // namespace

CGMonteCarloIntegrator::CGMonteCarloIntegrator(double temperature, double proposalScale) : temperature(1), proposalScale(1) {
    setTemperature(temperature);
    setProposalScale(proposalScale);
    setStepSize(0);
    setConstraintTolerance(1e-5); // unused (constrained Systems are refused), serialized like OpenMM's
}

CGMonteCarloIntegrator::~CGMonteCarloIntegrator() = default;

int CGMonteCarloIntegrator::addMovedCoordinate(int particle, int axis, double period) {
    const std::string where = name("addMovedCoordinate") + ": ";
    // The walkers and the kernel's coordinate tables were set up (and each particle checked against
    // the System) when the Context was created: a coordinate added later would never move.
    if (context != nullptr)
        throw OpenMMException(where + "cannot add a moved coordinate while bound to a Context; add it before "
                              "creating the Context (or create a new Context)");
    if (particle < 0)
        throw OpenMMException(where + "particle must be >= 0, got " + std::to_string(particle));
    if (axis < 0 || axis > 2)
        throw OpenMMException(where + "axis must be 0, 1 or 2 (x, y, z), got " + std::to_string(axis));
    if (!(period >= 0) || !std::isfinite(period))
        throw OpenMMException(where + "period must be 0 (unbounded) or finite and > 0, got " + std::to_string(period));
    for (size_t i = 0; i < movedParticles.size(); i++)
        if (movedParticles[i] == particle && movedAxes[i] == axis)
            throw OpenMMException(where + "particle " + std::to_string(particle) + " axis " + std::to_string(axis) +
                                  " is already moved coordinate " + std::to_string(i));
    movedParticles.push_back(particle);
    movedAxes.push_back(axis);
    movedPeriods.push_back(period);
    movedLower.push_back(-std::numeric_limits<double>::infinity());
    movedUpper.push_back(std::numeric_limits<double>::infinity());
    return (int) movedParticles.size() - 1;
}

void CGMonteCarloIntegrator::setMovedCoordinateBounds(int index, double lower, double upper) {
    checkCoordinateIndex(index);
    const std::string where = name("setMovedCoordinateBounds") + ": ";
    if (!std::isfinite(lower) || !std::isfinite(upper) || !(upper > lower))
        throw OpenMMException(where + "lower and upper must be finite with upper > lower, got " + std::to_string(lower) +
                              " and " + std::to_string(upper));
    if (movedPeriods[index] > 0)
        throw OpenMMException(where + "moved coordinate " + std::to_string(index) + " is periodic and cannot be bounded");
    movedLower[index] = lower;
    movedUpper[index] = upper;
}

double CGMonteCarloIntegrator::getMovedLowerBound(int index) const {
    checkCoordinateIndex(index);
    return movedLower[index];
}

double CGMonteCarloIntegrator::getMovedUpperBound(int index) const {
    checkCoordinateIndex(index);
    return movedUpper[index];
}

void CGMonteCarloIntegrator::checkCoordinateIndex(int index) const {
    if (index < 0 || index >= getNumMovedCoordinates())
        throw OpenMMException("CGMonteCarloIntegrator: moved coordinate index " + std::to_string(index) +
                              " out of range [0, " + std::to_string(getNumMovedCoordinates()) + ")");
}

int CGMonteCarloIntegrator::getMovedParticle(int index) const {
    checkCoordinateIndex(index);
    return movedParticles[index];
}

int CGMonteCarloIntegrator::getMovedAxis(int index) const {
    checkCoordinateIndex(index);
    return movedAxes[index];
}

double CGMonteCarloIntegrator::getMovedPeriod(int index) const {
    checkCoordinateIndex(index);
    return movedPeriods[index];
}

void CGMonteCarloIntegrator::setTemperature(double kelvin) {
    if (!(kelvin > 0) || !std::isfinite(kelvin))
        throw OpenMMException("CGMonteCarloIntegrator: temperature must be a finite number > 0 (kelvin), got " +
                              std::to_string(kelvin));
    temperature = kelvin;
}

void CGMonteCarloIntegrator::setProposalScale(double scale) {
    if (!(scale > 0) || !std::isfinite(scale))
        throw OpenMMException("CGMonteCarloIntegrator: proposalScale must be a finite number > 0, got " +
                              std::to_string(scale));
    proposalScale = scale;
}

void CGMonteCarloIntegrator::setUncertaintyThreshold(double threshold) {
    if (!(threshold >= 0) || !std::isfinite(threshold))
        throw OpenMMException("CGMonteCarloIntegrator: threshold must be finite and >= 0 (kJ/mol; 0 = no search), got " +
                              std::to_string(threshold));
    if (threshold > 0 && context != nullptr && (pmf == nullptr || pmfMembers < 2))
        throw OpenMMException("CGMonteCarloIntegrator: threshold needs a PMFForce with at least two ensemble members "
                              "(an ensemble spread); this Context has none");
    uncertaintyThreshold = threshold;
}

void CGMonteCarloIntegrator::setMinimumSteps(int steps) {
    if (steps < 0)
        throw OpenMMException("CGMonteCarloIntegrator: steps (the minimum before a point is recorded) must be >= 0, got " +
                              std::to_string(steps));
    minimumSteps = steps;
}

double CGMonteCarloIntegrator::beta() const {
    return 1.0 / (BoltzmannKJ * temperature);
}

void CGMonteCarloIntegrator::initialize(ContextImpl& contextRef) {
    if (owner != nullptr && &contextRef.getOwner() != owner)
        throw OpenMMException("This Integrator is already bound to a context");
    const System& system = contextRef.getSystem();
    const std::string where = "CGMonteCarloIntegrator: ";
    if (movedParticles.empty())
        throw OpenMMException(where + "no moved coordinates (call addMovedCoordinate() before creating the Context)");
    for (size_t i = 0; i < movedParticles.size(); i++) {
        if (movedParticles[i] >= system.getNumParticles())
            throw OpenMMException(where + "moved coordinate " + std::to_string(i) + ": particle " +
                                  std::to_string(movedParticles[i]) + " is not in the System (" +
                                  std::to_string(system.getNumParticles()) + " particles)");
        if (system.isVirtualSite(movedParticles[i]))
            throw OpenMMException(where + "moved coordinate " + std::to_string(i) + ": particle " +
                                  std::to_string(movedParticles[i]) + " is a virtual site");
    }
    if (system.getNumConstraints() > 0)
        throw OpenMMException(where + "the System has constraints, which Monte Carlo moves of single coordinates break");

    // The PMFForce: it prices walkers (with particle groups) or gives the spread for the search.
    PMFForceImpl* found = nullptr;
    int numPMF = 0;
    bool otherEnergyForces = false;
    for (ForceImpl* impl : contextRef.getForceImpls()) {
        if (auto* p = dynamic_cast<PMFForceImpl*>(impl)) {
            if (found == nullptr)
                found = p;
            numPMF++;
        }
        else if (dynamic_cast<const CMMotionRemover*>(&impl->getOwner()) == nullptr)
            otherEnergyForces = true;
    }
    const PMFForce* force = found ? &dynamic_cast<const PMFForce&>(found->getOwner()) : nullptr;
    const bool groups = force != nullptr && force->getNumParticleGroups() > 0;
    if (groups) {
        if (numPMF > 1 || otherEnergyForces)
            throw OpenMMException(where + "with walkers from the PMFForce's particle groups, the PMFForce must be the "
                                  "System's only force with an energy (each walker accepts on its own group energy, "
                                  "which is exact only when the energy is a sum over groups)");
        if ((getIntegrationForceGroups() & (1 << force->getForceGroup())) == 0)
            throw OpenMMException(where + "the PMFForce's force group " + std::to_string(force->getForceGroup()) +
                                  " is not among the integration force groups");
    }
    const bool search = uncertaintyThreshold > 0;
    if (search && (force == nullptr || force->getEnsembleSize() < 2))
        throw OpenMMException(where + "threshold " + std::to_string(uncertaintyThreshold) +
                              " needs a PMFForce with at least two ensemble members (an ensemble spread); " +
                              (force == nullptr ? "the System has none" : "its model has one member"));

    // Walkers: one per particle group, each owning the moved coordinates of its particles.
    std::vector<std::vector<int>> coordinates;
    if (groups) {
        std::map<int, int> groupOf;
        for (int g = 0; g < force->getNumParticleGroups(); g++)
            for (int p : force->getParticleGroup(g))
                groupOf[p] = g;
        coordinates.assign(force->getNumParticleGroups(), {});
        for (size_t i = 0; i < movedParticles.size(); i++) {
            auto at = groupOf.find(movedParticles[i]);
            if (at == groupOf.end())
                throw OpenMMException(where + "moved coordinate " + std::to_string(i) + ": particle " +
                                      std::to_string(movedParticles[i]) +
                                      " is in no particle group of the PMFForce, so no walker owns it");
            coordinates[at->second].push_back((int) i);
        }
    }
    else {
        coordinates.assign(1, {});
        for (size_t i = 0; i < movedParticles.size(); i++)
            coordinates[0].push_back((int) i);
    }

    context = &contextRef;
    owner = &contextRef.getOwner();
    kernel = context->getPlatform().createKernel(IntegrateCGMonteCarloStepKernel::Name(), contextRef);
    kernel.getAs<IntegrateCGMonteCarloStepKernel>().initialize(system, *this);
    pmf = found;
    pmfMembers = force ? force->getEnsembleSize() : 0;
    walkersFromGroups = groups;
    walkerCoordinates = coordinates;
    const size_t numWalkers = walkerCoordinates.size();
    walkerEnergy.assign(numWalkers, 0.0);
    walkerSpread.assign(numWalkers, 0.0);
    if (randomNumberSeed != 0)
        seed = static_cast<uint32_t>(randomNumberSeed);
    else
        seed = static_cast<unsigned long long>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    stepIndex = 0;
    currentKnown = false;
    resetWalkers();
    resetStatistics();
    clearFoundPoints();
}

void CGMonteCarloIntegrator::cleanup() {
    kernel = Kernel();
    pmf = nullptr;
}

std::vector<std::string> CGMonteCarloIntegrator::getKernelNames() {
    return {IntegrateCGMonteCarloStepKernel::Name()};
}

double CGMonteCarloIntegrator::computeKineticEnergy() {
    return kernel.getAs<IntegrateCGMonteCarloStepKernel>().computeKineticEnergy(*context);
}

void CGMonteCarloIntegrator::priceWalkers(std::vector<double>& energies, std::vector<double>& spreads) {
    const size_t numWalkers = walkerCoordinates.size();
    energies.resize(numWalkers);
    spreads.assign(numWalkers, 0.0);
    const bool search = uncertaintyThreshold > 0;
    if (walkersFromGroups) {
        // One batched evaluation of every (group, member) pair prices all walkers.
        const std::vector<double> all = pmf->getCopyMemberEnergies(*context);
        for (size_t w = 0; w < numWalkers; w++) {
            const std::pair<double, double> ms = cgflow::stats::meanAndStd(&all[w * pmfMembers], pmfMembers);
            energies[w] = ms.first;
            spreads[w] = ms.second;
        }
        return;
    }
    energies[0] = context->calcForcesAndEnergy(false, true, getIntegrationForceGroups());
    if (search) {
        // The summed members of the PMFForce's (only) copy.
        const std::vector<double> all = pmf->getCopyMemberEnergies(*context);
        spreads[0] = cgflow::stats::meanAndStd(all.data(), (int) all.size()).second;
    }
}

void CGMonteCarloIntegrator::refreshCurrentState() {
    std::vector<Vec3> positions;
    context->getPositions(positions);
    if (currentKnown && positions == currentPositions)
        return;
    // The state moved since our last step (setPositions, another integrator): price it again.
    priceWalkers(walkerEnergy, walkerSpread);
    currentPositions = std::move(positions);
    currentKnown = true;
}

void CGMonteCarloIntegrator::step(int steps) {
    if (context == nullptr)
        throw OpenMMException(name("step") + ": this Integrator is not bound to a Context");
    if (steps < 0)
        throw OpenMMException(name("step") + ": steps must be >= 0, got " + std::to_string(steps));
    const size_t numWalkers = walkerCoordinates.size();
    const bool search = uncertaintyThreshold > 0;
    std::vector<double> proposedEnergy, proposedSpread;
    std::vector<char> moved(numWalkers);
    for (int s = 0; s < steps; s++) {
        context->updateContextState();
        refreshCurrentState();
        if (getNumActiveWalkers() == 0)
            break; // every walker stopped at a found point: nothing left to move
        // Propose: a Gaussian displacement of every moved coordinate of every active walker.
        std::vector<Vec3> proposed = currentPositions;
        std::vector<char> outside(numWalkers, 0);
        for (size_t w = 0; w < numWalkers; w++) {
            moved[w] = !walkerStopped[w];
            if (!moved[w])
                continue;
            for (int c : walkerCoordinates[w]) {
                // Box-Muller on the two uniforms of (step, coordinate): reproducible on any platform.
                const cgflow::util::PhiloxUniforms u = cgflow::util::philoxOpenUniforms(seed, proposalStream, stepIndex, (uint32_t) c);
                const double normal = std::sqrt(-2.0 * std::log(u.u[0])) * std::cos(TwoPi * u.u[1]);
                double& x = proposed[movedParticles[c]][movedAxes[c]];
                x += proposalScale * normal;
                if (movedPeriods[c] > 0)
                    x = wrapPeriodic(x, movedPeriods[c]);
                if (x < movedLower[c] || x > movedUpper[c])
                    outside[w] = 1; // the target is zero there: rejected whatever its energy
            }
        }
        context->setPositions(proposed);
        priceWalkers(proposedEnergy, proposedSpread);
        // Accept or reject each walker on its own energy difference.
        std::vector<Vec3> next = currentPositions;
        bool anyRejected = false;
        for (size_t w = 0; w < numWalkers; w++) {
            if (!moved[w])
                continue;
            numProposals++;
            walkerSteps[w]++;
            const double u = cgflow::util::philoxOpenUniforms(seed, acceptanceStream, stepIndex, (uint32_t) w).u[0];
            double logProposed = outside[w] ? -std::numeric_limits<double>::infinity() : -beta() * proposedEnergy[w];
            if (!std::isfinite(logProposed))
                logProposed = -std::numeric_limits<double>::infinity(); // NaN or +inf energy: never accepted
            double logCurrent = -beta() * walkerEnergy[w];
            if (!std::isfinite(logCurrent))
                logCurrent = -std::numeric_limits<double>::infinity();
            if (cgflow::stats::metropolisAccept(logProposed, logCurrent, u)) {
                numAccepted++;
                for (int c : walkerCoordinates[w])
                    next[movedParticles[c]][movedAxes[c]] = proposed[movedParticles[c]][movedAxes[c]];
                walkerEnergy[w] = proposedEnergy[w];
                walkerSpread[w] = proposedSpread[w];
            }
            else
                anyRejected = true;
        }
        if (anyRejected)
            context->setPositions(next);
        // Read back what the Context holds (rounded to float in single precision), so that the next
        // step sees its own positions and does not price them again.
        context->getPositions(currentPositions);
        currentKnown = true;
        // The search: a walker whose state is uncertain enough, after its minimum steps, is recorded and stops.
        if (search)
            for (size_t w = 0; w < numWalkers; w++) {
                if (!moved[w] || walkerSteps[w] < minimumSteps || !(walkerSpread[w] > uncertaintyThreshold))
                    continue;
                std::vector<double> point;
                for (int c : walkerCoordinates[w])
                    point.push_back(currentPositions[movedParticles[c]][movedAxes[c]]);
                foundCoordinates.push_back(point);
                foundWalker.push_back((int) w);
                foundStep.push_back(walkerSteps[w]);
                foundStd.push_back(walkerSpread[w]);
                walkerStopped[w] = 1;
            }
        stepIndex++;
        context->setStepCount(context->getStepCount() + 1);
    }
}

std::vector<double> CGMonteCarloIntegrator::getWalkerSteps() const {
    return std::vector<double>(walkerSteps.begin(), walkerSteps.end());
}

std::vector<int> CGMonteCarloIntegrator::getWalkersStopped() const {
    return std::vector<int>(walkerStopped.begin(), walkerStopped.end());
}

int CGMonteCarloIntegrator::getNumActiveWalkers() const {
    int active = 0;
    for (char stopped : walkerStopped)
        active += stopped ? 0 : 1;
    return active;
}

void CGMonteCarloIntegrator::resetWalkers() {
    walkerSteps.assign(walkerCoordinates.size(), 0);
    walkerStopped.assign(walkerCoordinates.size(), 0);
}

double CGMonteCarloIntegrator::getAcceptanceRate() const {
    return numProposals == 0 ? 0.0 : static_cast<double>(numAccepted) / numProposals;
}

void CGMonteCarloIntegrator::resetStatistics() {
    numProposals = numAccepted = 0;
}

void CGMonteCarloIntegrator::checkFoundIndex(int index) const {
    if (index < 0 || index >= getNumFoundPoints())
        throw OpenMMException("CGMonteCarloIntegrator: found point index " + std::to_string(index) + " out of range [0, " +
                              std::to_string(getNumFoundPoints()) + ")");
}

std::vector<double> CGMonteCarloIntegrator::getFoundPointCoordinates(int index) const {
    checkFoundIndex(index);
    return foundCoordinates[index];
}

int CGMonteCarloIntegrator::getFoundPointWalker(int index) const {
    checkFoundIndex(index);
    return foundWalker[index];
}

double CGMonteCarloIntegrator::getFoundPointStep(int index) const {
    checkFoundIndex(index);
    return (double) foundStep[index];
}

double CGMonteCarloIntegrator::getFoundPointStd(int index) const {
    checkFoundIndex(index);
    return foundStd[index];
}

void CGMonteCarloIntegrator::clearFoundPoints() {
    foundWalker.clear();
    foundStep.clear();
    foundStd.clear();
    foundCoordinates.clear();
}
