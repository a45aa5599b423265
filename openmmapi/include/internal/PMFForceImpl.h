#ifndef CGFLOW_PMFFORCE_IMPL_H_
#define CGFLOW_PMFFORCE_IMPL_H_

#include "PMFForce.h"
#include "openmm/Kernel.h"
#include "openmm/internal/ForceImpl.h"
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace CGFlowPlugin {

class PMFForceImpl : public OpenMM::ForceImpl {
public:
    explicit PMFForceImpl(const PMFForce& owner);
    void initialize(OpenMM::ContextImpl& context) override;
    const PMFForce& getOwner() const override { return owner; }
    void updateContextState(OpenMM::ContextImpl&, bool&) override {}
    double calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, int groups) override;
    std::map<std::string, double> getDefaultParameters() override { return {}; }
    std::vector<std::string> getKernelNames() override;
    /** Particles sharing a feature are "bonded": keeps them in one molecule for reordering. */
    std::vector<std::pair<int, int>> getBondedParticles() const override;
    void updateParametersInContext(OpenMM::ContextImpl& context);
    /** Every member's energy of every copy, copy-major (CalcPMFForceKernel::computeCopyMemberEnergies). */
    std::vector<double> getCopyMemberEnergies(OpenMM::ContextImpl& context);

private:
    const PMFForce& owner;
    OpenMM::Kernel kernel;
};

} // namespace CGFlowPlugin

#endif
