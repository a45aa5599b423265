#include "BoltzmannGeneratorIntegrator.h"
#include "CGFlowKernels.h"
#include "cgflow/Error.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "cgflow/io/FileUtils.h"
#include "cgflow/stats/Metropolis.h"
#include "cgflow/stats/RunningWeights.h"
#include "cgflow/util/Random.h"
#include "openmm/Context.h"
#include "openmm/CustomExternalForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include <Eigen/Core>
#include <chrono>
#include <cmath>
#include <limits>

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

constexpr double BoltzmannKJ = 0.00831446261815324; // kJ/mol/K
constexpr double NegativeInfinity = -std::numeric_limits<double>::infinity();
// Philox counter words that keep the integrator's draws apart from the flow's base draws of the same seed.
constexpr uint32_t acceptanceStream = 0x41434350; // "ACCP"
constexpr uint32_t velocityStream = 0x56454C4F;   // "VELO"

/** The Context's positions as one flat array (x0, y0, z0, x1, ...), nm. */
std::vector<double> flatPositions(ContextImpl& context) {
    std::vector<Vec3> positions;
    context.getPositions(positions);
    std::vector<double> flat(3 * positions.size());
    for (size_t i = 0; i < positions.size(); i++)
        for (int a = 0; a < 3; a++)
            flat[3 * i + a] = positions[i][a];
    return flat;
}

std::shared_ptr<const cgflow::io::DecodedBoltzmannGenerator> decodeModel(const std::string& bytes,
                                                                        const std::string& source,
                                                                        const std::string& argument) {
    try {
        return std::make_shared<const cgflow::io::DecodedBoltzmannGenerator>(
            cgflow::io::decodeBoltzmannGenerator(bytes, source));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException("BoltzmannGeneratorIntegrator: " + argument + ": " + e.what());
    }
}

} // namespace

BoltzmannGeneratorIntegrator::BoltzmannGeneratorIntegrator(double temperature, Mode mode)
    : temperature(1), mode(Metropolis), weights(std::make_unique<cgflow::stats::RunningWeights>()) {
    setTemperature(temperature);
    setMode(mode);
    setStepSize(0);
    setConstraintTolerance(1e-5); // unused (constrained Systems are refused), but serialized like OpenMM's
    resetStatistics();
}

BoltzmannGeneratorIntegrator::BoltzmannGeneratorIntegrator(const std::string& modelFile, double temperature, Mode mode)
    : BoltzmannGeneratorIntegrator(temperature, mode) {
    setModelFile(modelFile);
}

BoltzmannGeneratorIntegrator::~BoltzmannGeneratorIntegrator() = default;

void BoltzmannGeneratorIntegrator::checkNotBound(const char* method) const {
    // The kernel and the integrator's own copy of the flow were made from the model at Context
    // creation: a new model would leave them on the old one while the position map changed.
    if (context != nullptr)
        throw OpenMMException(std::string("BoltzmannGeneratorIntegrator::") + method +
                              ": the model cannot change while the integrator is bound to a Context; set it "
                              "before creating the Context (or create a new Context)");
}

void BoltzmannGeneratorIntegrator::setModelFile(const std::string& path) {
    checkNotBound("setModelFile");
    std::string bytes;
    try {
        bytes = cgflow::io::readFileBytes(path);
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("BoltzmannGeneratorIntegrator: modelFile: ") + e.what());
    }
    model = decodeModel(bytes, path, "modelFile");
    modelBytes = std::move(bytes);
}

void BoltzmannGeneratorIntegrator::setModelBytes(const std::string& bytes) {
    checkNotBound("setModelBytes");
    model = decodeModel(bytes, "model bytes", "modelBytes");
    modelBytes = bytes;
}

const std::string& BoltzmannGeneratorIntegrator::getModelBytes() const {
    return modelBytes;
}

bool BoltzmannGeneratorIntegrator::hasModel() const {
    return model != nullptr;
}

int BoltzmannGeneratorIntegrator::getModelNumParticles() const {
    return model ? model->positions->getNumParticles() : 0;
}

int BoltzmannGeneratorIntegrator::getModelDimension() const {
    return model ? model->flow->getDimension() : 0;
}

int BoltzmannGeneratorIntegrator::getConditionDimension() const {
    return model ? model->flow->getContextDimension() : 0;
}

std::shared_ptr<const cgflow::io::DecodedBoltzmannGenerator> BoltzmannGeneratorIntegrator::getModel() const {
    if (!model)
        throw OpenMMException("BoltzmannGeneratorIntegrator: no model (call setModelFile() or setModelBytes())");
    return model;
}

void BoltzmannGeneratorIntegrator::setTemperature(double kelvin) {
    if (!(kelvin > 0) || !std::isfinite(kelvin))
        throw OpenMMException("BoltzmannGeneratorIntegrator: temperature must be a finite number > 0 (kelvin), got " +
                              std::to_string(kelvin));
    temperature = kelvin;
    currentKnown = false; // the current state's log w depends on beta
}

void BoltzmannGeneratorIntegrator::setMode(Mode newMode) {
    if (newMode != Importance && newMode != Metropolis)
        throw OpenMMException("BoltzmannGeneratorIntegrator: mode must be Importance (0) or Metropolis (1), got " +
                              std::to_string(static_cast<int>(newMode)));
    mode = newMode;
    currentKnown = false;
}

void BoltzmannGeneratorIntegrator::setBlockSize(int size) {
    if (size < 1)
        throw OpenMMException("BoltzmannGeneratorIntegrator: blockSize must be >= 1, got " + std::to_string(size));
    blockSize = size;
}

void BoltzmannGeneratorIntegrator::setRandomNumberSeed(int newSeed) {
    randomNumberSeed = newSeed;
}

void BoltzmannGeneratorIntegrator::setConditionVector(const std::vector<double>& values) {
    for (size_t i = 0; i < values.size(); i++)
        if (!std::isfinite(values[i]))
            throw OpenMMException("BoltzmannGeneratorIntegrator: condition vector entry " + std::to_string(i) +
                                  " is not finite");
    if (model && static_cast<int>(values.size()) != getConditionDimension())
        throw OpenMMException("BoltzmannGeneratorIntegrator: the condition vector has " + std::to_string(values.size()) +
                              " values but the model is conditioned on " + std::to_string(getConditionDimension()));
    condition = values;
    blockValid = false; // proposals already drawn were conditioned on the old vector
    currentKnown = false;
}

double BoltzmannGeneratorIntegrator::beta() const {
    return 1.0 / (BoltzmannKJ * temperature);
}

void BoltzmannGeneratorIntegrator::initialize(ContextImpl& contextRef) {
    if (owner != nullptr && &contextRef.getOwner() != owner)
        throw OpenMMException("This Integrator is already bound to a context");
    if (!model)
        throw OpenMMException("BoltzmannGeneratorIntegrator: no model (call setModelFile() or setModelBytes() before "
                              "creating the Context)");
    const System& system = contextRef.getSystem();
    if (getModelNumParticles() != system.getNumParticles())
        throw OpenMMException("BoltzmannGeneratorIntegrator: the model's position map covers " +
                              std::to_string(getModelNumParticles()) + " particles but the System has " +
                              std::to_string(system.getNumParticles()));
    if (static_cast<int>(condition.size()) != getConditionDimension())
        throw OpenMMException("BoltzmannGeneratorIntegrator: the model is conditioned on " +
                              std::to_string(getConditionDimension()) + " values but the condition vector has " +
                              std::to_string(condition.size()) + " (setConditionVector())");
    if (model->positions->getType() == cgflow::coords::PositionMap::Type::Internal) {
        // An internal-coordinate map builds the molecule in a canonical orientation around the current
        // centroid: q(x) is a density of the shape only, which is exact when the energy is invariant to
        // rigid motions (an isolated molecule). Periodic boundaries and external fields break that.
        if (system.usesPeriodicBoundaryConditions())
            throw OpenMMException("BoltzmannGeneratorIntegrator: the model's internal-coordinate map assumes an "
                                  "isolated molecule, but the System uses periodic boundary conditions (its energy "
                                  "then depends on the molecule's orientation in the box)");
        for (int f = 0; f < system.getNumForces(); f++) {
            const Force& force = system.getForce(f);
            if ((getIntegrationForceGroups() >> force.getForceGroup() & 1) &&
                dynamic_cast<const CustomExternalForce*>(&force) != nullptr)
                throw OpenMMException("BoltzmannGeneratorIntegrator: the model's internal-coordinate map assumes an "
                                      "energy invariant to rigid motions, but force " + std::to_string(f) +
                                      " is a CustomExternalForce (a position restraint or external field); use a "
                                      "Cartesian map, or move that force to a group outside the integration groups");
        }
    }
    for (int i = 0; i < system.getNumParticles(); i++)
        if (system.isVirtualSite(i))
            throw OpenMMException("BoltzmannGeneratorIntegrator: particle " + std::to_string(i) +
                                  " is a virtual site; the flow would overwrite its computed position");
    if (system.getNumConstraints() > 0)
        throw OpenMMException("BoltzmannGeneratorIntegrator: the System has " +
                              std::to_string(system.getNumConstraints()) +
                              " constraints; flow proposals do not satisfy them (remove the constraints, e.g. "
                              "constraints=None, rigidWater=False)");
    context = &contextRef;
    owner = &contextRef.getOwner();
    try {
        kernel = context->getPlatform().createKernel(IntegrateBoltzmannGeneratorStepKernel::Name(), contextRef);
        kernel.getAs<IntegrateBoltzmannGeneratorStepKernel>().initialize(system, *this);
        hostFlow = model->flow->clone();
    } catch (...) {
        // Unbind, so that the integrator can still be used with another Context (e.g. after a
        // platform that refused the model's layers).
        kernel = Kernel();
        hostFlow.reset();
        context = nullptr;
        owner = nullptr;
        throw;
    }
    hostFlow->setNumThreads(1);
    if (randomNumberSeed != 0)
        seed = static_cast<uint32_t>(randomNumberSeed);
    else
        seed = static_cast<unsigned long long>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
    nextProposalIndex = 0;
    blockValid = false;
    currentKnown = false;
    velocityDraws = 0;
    resetStatistics();
}

void BoltzmannGeneratorIntegrator::cleanup() {
    kernel = Kernel();
    hostFlow.reset();
}

std::vector<std::string> BoltzmannGeneratorIntegrator::getKernelNames() {
    return {IntegrateBoltzmannGeneratorStepKernel::Name()};
}

double BoltzmannGeneratorIntegrator::computeKineticEnergy() {
    return kernel.getAs<IntegrateBoltzmannGeneratorStepKernel>().computeKineticEnergy(*context);
}

void BoltzmannGeneratorIntegrator::checkInitialized(const char* method) const {
    if (context == nullptr)
        throw OpenMMException(std::string("BoltzmannGeneratorIntegrator::") + method +
                              ": this Integrator is not bound to a Context");
}

double BoltzmannGeneratorIntegrator::loadNextProposal() {
    auto& k = kernel.getAs<IntegrateBoltzmannGeneratorStepKernel>();
    if (!blockValid || blockPosition >= static_cast<int>(blockLogQ.size())) {
        const auto start = std::chrono::steady_clock::now();
        k.generateBlock(*context, blockSize, seed, nextProposalIndex, condition, blockLogQ);
        flowSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        nextProposalIndex += blockSize;
        blockPosition = 0;
        blockValid = true;
    }
    const double logQ = blockLogQ[blockPosition];
    // NaN marks a proposal outside the position map's principal domain: its positions are not defined.
    if (!std::isnan(logQ))
        k.loadProposal(*context, blockPosition);
    blockPosition++;
    return logQ;
}

BoltzmannGeneratorIntegrator::Proposal BoltzmannGeneratorIntegrator::takeNextProposal() {
    const double logQ = loadNextProposal();
    if (std::isnan(logQ))
        return Proposal{logQ, std::numeric_limits<double>::quiet_NaN(), NegativeInfinity, false};
    return priceLoaded(logQ);
}

BoltzmannGeneratorIntegrator::Proposal BoltzmannGeneratorIntegrator::priceLoaded(double logQ) {
    Proposal p;
    p.loaded = true;
    p.logQ = logQ;
    const auto start = std::chrono::steady_clock::now();
    p.energy = context->calcForcesAndEnergy(false, true, getIntegrationForceGroups());
    energySeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    p.logWeight = -beta() * p.energy - logQ;
    // A clash (infinite or NaN energy) or a point outside the flow's support has weight zero.
    if (!std::isfinite(p.logWeight))
        p.logWeight = NegativeInfinity;
    return p;
}

namespace {

/**
 * The proposals copy part of the Context's positions (the template): a Cartesian map every coordinate
 * that is in no slot, an internal map the centroid of all particles. A non-finite one would make
 * every proposal non-finite (weight zero) and stay so for ever, so it is refused, naming the particle.
 */
void checkTemplateFinite(const cgflow::coords::PositionMap& map, const std::vector<double>& flat) {
    const int numParticles = static_cast<int>(flat.size() / 3);
    std::vector<char> copied(flat.size(), 1);
    if (map.getType() == cgflow::coords::PositionMap::Type::Cartesian)
        for (const auto& slot : map.getSlots())
            copied[3 * static_cast<size_t>(slot[0]) + slot[1]] = 0;
    for (int i = 0; i < numParticles; i++)
        for (int a = 0; a < 3; a++)
            if (copied[3 * i + a] && !std::isfinite(flat[3 * i + a]))
                throw OpenMMException("BoltzmannGeneratorIntegrator::step: positions: particle " + std::to_string(i) +
                                      " has a non-finite " + "xyz"[a] + " coordinate (" +
                                      std::to_string(flat[3 * i + a]) + "), which every proposal " +
                                      (map.getType() == cgflow::coords::PositionMap::Type::Cartesian
                                           ? "copies (it is in none of the model's slots)"
                                           : "needs (the molecule is placed at the positions' centroid)") +
                                      "; set finite positions before stepping");
}

} // namespace

void BoltzmannGeneratorIntegrator::refreshCurrentState() {
    std::vector<double> flat = flatPositions(*context);
    if (currentKnown && flat == currentPositions)
        return;
    // The state moved since our last step (another integrator, or setPositions): price it again.
    const cgflow::coords::PositionMap& map = *model->positions;
    checkTemplateFinite(map, flat);
    currentEnergy = context->calcForcesAndEnergy(false, true, getIntegrationForceGroups());
    Eigen::MatrixXd y(map.getDimension(), 1);
    double logDetJ = 0;
    std::vector<double> ownCondition(map.getConditionColumns().size());
    map.fromPositions(1, flat.data(), y.data(), &logDetJ, ownCondition.data());
    // A conditional map proposes only states whose condition columns are the condition vector: a state
    // off that slice (a CG move, a new condition) is outside the proposal's support, q = 0, and the
    // next proposal replaces it. The tolerance covers single-precision positions (~1e-6 rad).
    bool onSlice = true;
    for (size_t k = 0; k < ownCondition.size(); k++) {
        const double difference = ownCondition[k] - condition[map.getConditionColumns()[k].condition];
        if (std::fabs(std::remainder(difference, 2 * M_PI)) > 1e-4)
            onSlice = false;
    }
    Eigen::VectorXd logQFlow;
    Eigen::MatrixXd conditionMatrix;
    const Eigen::MatrixXd* conditionPointer = nullptr;
    if (!condition.empty()) {
        conditionMatrix = Eigen::Map<const Eigen::MatrixXd>(condition.data(), condition.size(), 1);
        conditionPointer = &conditionMatrix;
    }
    hostFlow->logProb(y, conditionPointer, logQFlow);
    currentLogQ = onSlice ? logQFlow[0] - logDetJ : NegativeInfinity;
    currentLogWeight = -beta() * currentEnergy - currentLogQ;
    if (!std::isfinite(currentLogWeight))
        currentLogWeight = NegativeInfinity;
    currentPositions = std::move(flat);
    currentKnown = true;
}

void BoltzmannGeneratorIntegrator::redrawVelocitiesNow() {
    // A seed per draw from the integrator's own stream, so a chain is reproducible from its seed.
    const cgflow::util::PhiloxUniforms u = cgflow::util::philoxOpenUniforms(seed, velocityStream, velocityDraws++, 0);
    const int drawSeed = 1 + static_cast<int>(u.u[0] * 2147483646.0);
    owner->setVelocitiesToTemperature(temperature, drawSeed);
}

void BoltzmannGeneratorIntegrator::step(int steps) {
    checkInitialized("step");
    if (steps < 0)
        throw OpenMMException("BoltzmannGeneratorIntegrator::step: steps must be >= 0, got " + std::to_string(steps));
    auto& k = kernel.getAs<IntegrateBoltzmannGeneratorStepKernel>();
    for (int i = 0; i < steps; i++) {
        context->updateContextState();
        if (mode == Metropolis) {
            refreshCurrentState();
            k.saveState(*context);
        }
        const uint64_t proposalIndex = nextProposalIndex - (blockValid ? blockLogQ.size() - blockPosition : 0);
        const Proposal p = takeNextProposal();
        weights->add(p.logWeight);
        lastLogQ = p.logQ;
        lastEnergy = p.energy;
        lastLogWeight = p.logWeight;
        // A proposal outside the map's domain was never loaded: the state stays, in either mode.
        bool accept = p.loaded;
        if (mode == Metropolis && p.loaded) {
            // Keyed by the proposal's own index: the decision is reproducible whatever the block size.
            const double u = cgflow::util::philoxOpenUniforms(seed, acceptanceStream, proposalIndex, 0).u[0];
            accept = cgflow::stats::metropolisAccept(p.logWeight, currentLogWeight, u);
            if (accept) {
                currentEnergy = p.energy;
                currentLogQ = p.logQ;
                currentLogWeight = p.logWeight;
            }
            else
                k.restoreState(*context);
        }
        lastAccepted = accept;
        if (accept) {
            numAccepted++;
            if (redrawVelocities)
                redrawVelocitiesNow();
        }
        if (mode == Metropolis) {
            currentPositions = flatPositions(*context);
            currentKnown = true;
        }
        context->setStepCount(context->getStepCount() + 1);
    }
}

long long BoltzmannGeneratorIntegrator::getNumProposals() const {
    return weights->getCount();
}

long long BoltzmannGeneratorIntegrator::getNumNonFinite() const {
    return weights->getNumZero();
}

double BoltzmannGeneratorIntegrator::getAcceptanceRate() const {
    return weights->getCount() == 0 ? 0.0 : static_cast<double>(numAccepted) / weights->getCount();
}

double BoltzmannGeneratorIntegrator::getEffectiveSampleSize() const {
    return weights->getEffectiveSampleSize();
}

double BoltzmannGeneratorIntegrator::getEffectiveSampleFraction() const {
    return weights->getEffectiveSampleFraction();
}

double BoltzmannGeneratorIntegrator::getLogZ() const {
    return weights->getLogZ().value;
}

double BoltzmannGeneratorIntegrator::getLogZError() const {
    return weights->getLogZ().error;
}

void BoltzmannGeneratorIntegrator::resetStatistics() {
    weights->reset();
    numAccepted = 0;
    lastLogQ = lastEnergy = lastLogWeight = std::numeric_limits<double>::quiet_NaN();
    lastAccepted = false;
    flowSeconds = energySeconds = 0;
}

void BoltzmannGeneratorIntegrator::evaluateProposals(int n) {
    checkInitialized("evaluateProposals");
    if (n < 1)
        throw OpenMMException("BoltzmannGeneratorIntegrator::evaluateProposals: n must be >= 1, got " + std::to_string(n));
    auto& k = kernel.getAs<IntegrateBoltzmannGeneratorStepKernel>();
    const int numParticles = getModelNumParticles();
    batchPositions.assign(static_cast<size_t>(n) * numParticles * 3, 0.0);
    batchLogQ.assign(n, 0.0);
    batchEnergies.assign(n, 0.0);
    batchLogWeights.assign(n, 0.0);
    context->updateContextState();
    k.saveState(*context);
    for (int s = 0; s < n; s++) {
        const Proposal p = takeNextProposal();
        batchLogQ[s] = p.logQ;
        batchEnergies[s] = p.energy;
        batchLogWeights[s] = p.logWeight;
        auto out = batchPositions.begin() + static_cast<size_t>(s) * numParticles * 3;
        if (p.loaded) {
            const std::vector<double> flat = flatPositions(*context);
            std::copy(flat.begin(), flat.end(), out);
        }
        else // outside the map's domain: no configuration
            std::fill(out, out + numParticles * 3, std::numeric_limits<double>::quiet_NaN());
    }
    k.restoreState(*context);
}
