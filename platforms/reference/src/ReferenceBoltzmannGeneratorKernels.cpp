#include "ReferenceBoltzmannGeneratorKernels.h"
#include "cgflow/Error.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"

using namespace CGFlowPlugin;
using namespace OpenMM;

static std::vector<Vec3>& getPositions(ContextImpl& context) {
    return *static_cast<ReferencePlatform::PlatformData*>(context.getPlatformData())->positions;
}

static std::vector<Vec3>& getVelocities(ContextImpl& context) {
    return *static_cast<ReferencePlatform::PlatformData*>(context.getPlatformData())->velocities;
}

void ReferenceIntegrateBoltzmannGeneratorStepKernel::initialize(const System& system,
                                                              const BoltzmannGeneratorIntegrator& integrator) {
    model = integrator.getModel();
    flow = model->flow->clone();
    masses.resize(system.getNumParticles());
    for (int i = 0; i < system.getNumParticles(); i++)
        masses[i] = system.getParticleMass(i);
    templatePositions.resize(3 * system.getNumParticles());
    proposalPositions.resize(3 * system.getNumParticles());
}

void ReferenceIntegrateBoltzmannGeneratorStepKernel::generateBlock(ContextImpl&, int count, uint64_t seed,
                                                                   uint64_t firstIndex, const std::vector<double>& condition,
                                                                   std::vector<double>& logQ) {
    Eigen::MatrixXd conditionMatrix;
    const Eigen::MatrixXd* conditionPointer = nullptr;
    if (!condition.empty()) {
        conditionMatrix = Eigen::Map<const Eigen::MatrixXd>(condition.data(), condition.size(), 1);
        conditionPointer = &conditionMatrix;
    }
    flow->sample(count, seed, conditionPointer, block, blockLogQFlow, false, firstIndex);
    // log|det J| of the position map does not depend on where the molecule is put, so it is taken
    // now for the whole block; positions are built again at load time around the current state.
    std::vector<double> logDetJ(count), scratch(static_cast<size_t>(count) * templatePositions.size());
    std::fill(templatePositions.begin(), templatePositions.end(), 0.0);
    const bool conditional = !model->positions->getConditionColumns().empty();
    blockCondition = condition;
    std::vector<double> conditionRows;
    if (conditional) {
        // The map reads the first getNumConditionValues() entries of the flow's condition vector.
        const int values = model->positions->getNumConditionValues();
        for (int s = 0; s < count; s++)
            conditionRows.insert(conditionRows.end(), condition.begin(), condition.begin() + values);
    }
    model->positions->toPositions(count, block.data(), templatePositions.data(), scratch.data(), logDetJ.data(),
                                  conditional ? conditionRows.data() : nullptr);
    logQ.resize(count);
    for (int s = 0; s < count; s++)
        logQ[s] = blockLogQFlow[s] - logDetJ[s];
}

void ReferenceIntegrateBoltzmannGeneratorStepKernel::loadProposal(ContextImpl& context, int index) {
    if (index < 0 || index >= block.cols())
        throw OpenMMException("BoltzmannGeneratorIntegrator: proposal " + std::to_string(index) +
                              " is outside the current block of " + std::to_string(block.cols()));
    std::vector<Vec3>& positions = getPositions(context);
    for (size_t i = 0; i < positions.size(); i++)
        for (int a = 0; a < 3; a++)
            templatePositions[3 * i + a] = positions[i][a];
    const bool conditional = !model->positions->getConditionColumns().empty();
    model->positions->toPositions(1, block.col(index).data(), templatePositions.data(), proposalPositions.data(),
                                  nullptr, conditional ? blockCondition.data() : nullptr);
    for (size_t i = 0; i < positions.size(); i++)
        positions[i] = Vec3(proposalPositions[3 * i], proposalPositions[3 * i + 1], proposalPositions[3 * i + 2]);
}

void ReferenceIntegrateBoltzmannGeneratorStepKernel::saveState(ContextImpl& context) {
    savedPositions = getPositions(context);
}

void ReferenceIntegrateBoltzmannGeneratorStepKernel::restoreState(ContextImpl& context) {
    getPositions(context) = savedPositions;
}

double ReferenceIntegrateBoltzmannGeneratorStepKernel::computeKineticEnergy(ContextImpl& context) {
    const std::vector<Vec3>& velocities = getVelocities(context);
    double energy = 0;
    for (size_t i = 0; i < velocities.size(); i++)
        energy += 0.5 * masses[i] * velocities[i].dot(velocities[i]);
    return energy;
}
