#ifndef CGFLOW_FLOWS_ATOMPERMUTATION_H_
#define CGFLOW_FLOWS_ATOMPERMUTATION_H_

#include "cgflow/flows/Bijection.h"

#include <memory>
#include <vector>

namespace cgflow::flows {

/**
 * The permutation special case of the paper's linear map (A a permutation matrix, Sec. 2.2): a fixed,
 * non-learnable reordering of whole atoms (k components each, kept together and in order). Forward:
 * output atom i = input atom permutation[i]; volume preserving (log|det| = 0). Circular flags travel
 * with their dimensions. A fixed partition of the atoms into a slow part z and a fast part X
 * (e.g. backbone / side chain) is the permutation made by fromPartition().
 */
class AtomPermutation : public Bijection {
public:
    /**
     * inputCircular: k * M entries; permutation: each of 0 .. M-1 exactly once (else Error naming the
     * problem); componentsPerAtom k >= 1.
     */
    AtomPermutation(std::vector<bool> inputCircular, std::vector<int> permutation, int componentsPerAtom = 3);
    /**
     * The partition map of the paper: the latent side (Forward input) holds the slow atoms first, in the
     * order given, then every other atom in ascending order (the fast part); Forward puts each back at
     * its place on the data side, and Inverse gathers x into [z; X]. slowAtoms: distinct atom indices.
     */
    static std::unique_ptr<AtomPermutation> fromPartition(std::vector<bool> inputCircular,
                                                          const std::vector<int>& slowAtoms,
                                                          int componentsPerAtom = 3);

    int getNumAtoms() const { return static_cast<int>(permutation.size()); }
    int getComponentsPerAtom() const { return componentsPerAtom; }
    const std::vector<int>& getPermutation() const { return permutation; }
    const std::vector<int>& getInversePermutation() const { return inversePermutation; }
    std::vector<bool> getOutputCircular() const override;

    std::string getTypeName() const override { return "atom_permutation"; }
    /** {"type": "atom_permutation", "num_atoms": M, "components_per_atom": k, "permutation": [...]} */
    nlohmann::json getConfig() const override;
    /**
     * Rebuilds from getConfig(): "permutation" required, "num_atoms" optional but checked against it,
     * "components_per_atom" optional (default 3). Unknown keys or wrong types -> Error.
     */
    static std::unique_ptr<AtomPermutation> fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular);

    std::unique_ptr<BijectionWorkspace> createWorkspace() const override;
    void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context, double* logDet,
               BijectionWorkspace& ws, bool save) const override;
    void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                  double* paramGrad, BijectionWorkspace& ws) const override;

private:
    int componentsPerAtom;
    std::vector<int> permutation;
    std::vector<int> inversePermutation;
};

} // namespace cgflow::flows

#endif
