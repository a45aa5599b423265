#ifndef REFERENCE_BOLTZMANNGENERATOR_KERNELS_H_
#define REFERENCE_BOLTZMANNGENERATOR_KERNELS_H_

#include "CGFlowKernels.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "openmm/Vec3.h"
#include <Eigen/Core>
#include <memory>
#include <vector>

namespace CGFlowPlugin {

/**
 * BoltzmannGeneratorIntegrator on the Reference and CPU platforms: the core flow (double precision,
 * on the flow's threads) draws a block, the position map builds one proposal at load time from the
 * block's flow outputs, and positions are written straight into the platform's arrays.
 */
class ReferenceIntegrateBoltzmannGeneratorStepKernel : public IntegrateBoltzmannGeneratorStepKernel {
public:
    ReferenceIntegrateBoltzmannGeneratorStepKernel(std::string name, const OpenMM::Platform& platform)
        : IntegrateBoltzmannGeneratorStepKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const BoltzmannGeneratorIntegrator& integrator) override;
    void generateBlock(OpenMM::ContextImpl& context, int count, uint64_t seed, uint64_t firstIndex,
                       const std::vector<double>& condition, std::vector<double>& logQ) override;
    void loadProposal(OpenMM::ContextImpl& context, int index) override;
    void saveState(OpenMM::ContextImpl& context) override;
    void restoreState(OpenMM::ContextImpl& context) override;
    double computeKineticEnergy(OpenMM::ContextImpl& context) override;

private:
    // The integrator's decoded model, and our own copy of its flow: a Flow keeps per-pass
    // workspaces, so Contexts never share one. The position map is stateless and shared.
    std::shared_ptr<const cgflow::io::DecodedBoltzmannGenerator> model;
    std::unique_ptr<cgflow::flows::Flow> flow;
    std::vector<double> masses;
    Eigen::MatrixXd block;            // flow outputs y, dimension x count
    Eigen::VectorXd blockLogQFlow;
    std::vector<double> templatePositions, proposalPositions;
    std::vector<double> blockCondition; // the condition the block was drawn under (a conditional map reads it)
    std::vector<OpenMM::Vec3> savedPositions;
};

} // namespace CGFlowPlugin

#endif
