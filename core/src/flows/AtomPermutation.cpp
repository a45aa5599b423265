#include "cgflow/flows/AtomPermutation.h"

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"
#include "AtomLayout.h"

#include <string>

namespace cgflow::flows {

namespace {

struct AtomPermutationWorkspace : BijectionWorkspace {
    Eigen::VectorXd column;
    Direction direction = Direction::Forward;
    Eigen::Index savedBatch = -1;
};

// data.col(s) <- atoms of data.col(s) taken in the given order: atom i of the result = atom order[i].
void permuteAtoms(Eigen::Ref<Eigen::MatrixXd> data, const std::vector<int>& order, int k, Eigen::VectorXd& column) {
    column.resize(data.rows());
    for (Eigen::Index s = 0; s < data.cols(); s++) {
        column = data.col(s);
        for (size_t i = 0; i < order.size(); i++)
            data.col(s).segment(k * static_cast<Eigen::Index>(i), k) =
                column.segment(k * static_cast<Eigen::Index>(order[i]), k);
    }
}

} // namespace

AtomPermutation::AtomPermutation(std::vector<bool> inputCircularIn, std::vector<int> permutationIn,
                                 int componentsPerAtomIn)
    : Bijection(std::move(inputCircularIn)), componentsPerAtom(componentsPerAtomIn),
      permutation(std::move(permutationIn)) {
    const int M = atomCount("AtomPermutation", getInputCircular().size(), componentsPerAtom);
    if (static_cast<int>(permutation.size()) != M)
        throw Error("AtomPermutation: the permutation has " + std::to_string(permutation.size()) +
                    " entries, expected the number of atoms " + std::to_string(M) + " (dimension " +
                    std::to_string(getDimension()) + " / " + std::to_string(componentsPerAtom) +
                    " components per atom)");
    inversePermutation.assign(M, -1);
    for (int i = 0; i < M; i++) {
        const int p = permutation[i];
        if (p < 0 || p >= M)
            throw Error("AtomPermutation: entry " + std::to_string(i) + " = " + std::to_string(p) +
                        " is not an atom index in [0, " + std::to_string(M) + ")");
        if (inversePermutation[p] >= 0)
            throw Error("AtomPermutation: atom " + std::to_string(p) + " appears more than once (entries " +
                        std::to_string(inversePermutation[p]) + " and " + std::to_string(i) + ")");
        inversePermutation[p] = i;
    }
}

std::unique_ptr<AtomPermutation> AtomPermutation::fromPartition(std::vector<bool> inputCircular,
                                                                const std::vector<int>& slowAtoms,
                                                                int componentsPerAtom) {
    const int M = atomCount("AtomPermutation", inputCircular.size(), componentsPerAtom);
    std::vector<bool> slow(M, false);
    std::vector<int> order; // order[p] = the atom at latent position p
    for (int atom : slowAtoms) {
        if (atom < 0 || atom >= M)
            throw Error("AtomPermutation::fromPartition: slow atom " + std::to_string(atom) + " is outside [0, " +
                        std::to_string(M) + ")");
        if (slow[atom])
            throw Error("AtomPermutation::fromPartition: slow atom " + std::to_string(atom) + " is listed twice");
        slow[atom] = true;
        order.push_back(atom);
    }
    for (int atom = 0; atom < M; atom++)
        if (!slow[atom])
            order.push_back(atom);
    // Forward: data atom order[p] = latent atom p.
    std::vector<int> permutation(M);
    for (int p = 0; p < M; p++)
        permutation[order[p]] = p;
    return std::make_unique<AtomPermutation>(std::move(inputCircular), std::move(permutation), componentsPerAtom);
}

std::vector<bool> AtomPermutation::getOutputCircular() const {
    const int k = componentsPerAtom;
    std::vector<bool> out(getInputCircular().size());
    for (size_t i = 0; i < permutation.size(); i++)
        for (int c = 0; c < k; c++)
            out[k * i + c] = getInputCircular()[static_cast<size_t>(k) * permutation[i] + c];
    return out;
}

nlohmann::json AtomPermutation::getConfig() const {
    return {{"type", getTypeName()},
            {"num_atoms", getNumAtoms()},
            {"components_per_atom", componentsPerAtom},
            {"permutation", permutation}};
}

std::unique_ptr<AtomPermutation> AtomPermutation::fromConfig(const nlohmann::json& config,
                                                             std::vector<bool> inputCircular) {
    const char* type = "atom_permutation";
    const std::string where = std::string(type) + " config";
    checkLayerConfig(config, type, {"num_atoms", "components_per_atom", "permutation"});
    const int k = io::readInt(config, "components_per_atom", 3, where, 1);
    std::vector<int> permutation = io::readIntArray(config, "permutation", where);
    if (config.contains("num_atoms")) {
        const int M = io::requireInt(config, "num_atoms", where, 1);
        if (static_cast<size_t>(M) != permutation.size())
            throw Error(std::string(type) + " config: \"num_atoms\" = " + std::to_string(M) +
                        " but \"permutation\" has " + std::to_string(permutation.size()) + " entries");
        if (static_cast<size_t>(M) * k != inputCircular.size())
            throw Error(std::string(type) + " config: num_atoms * components_per_atom = " + std::to_string(M) + " * " +
                        std::to_string(k) + " does not match the layer's input dimension " +
                        std::to_string(inputCircular.size()));
    }
    return std::make_unique<AtomPermutation>(std::move(inputCircular), std::move(permutation), k);
}

std::unique_ptr<BijectionWorkspace> AtomPermutation::createWorkspace() const {
    return std::make_unique<AtomPermutationWorkspace>();
}

void AtomPermutation::apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                            double* logDet, BijectionWorkspace& wsBase, bool save) const {
    AtomPermutationWorkspace& ws = workspaceAs<AtomPermutationWorkspace>(wsBase, "AtomPermutation");
    checkApplyArguments(data, context, logDet);
    permuteAtoms(data, direction == Direction::Forward ? permutation : inversePermutation, componentsPerAtom,
                 ws.column);
    ws.direction = direction;
    ws.savedBatch = save ? data.cols() : -1;
}

void AtomPermutation::backward(Eigen::Ref<Eigen::MatrixXd> grad, const double*, Eigen::MatrixXd*, double*,
                               BijectionWorkspace& wsBase) const {
    AtomPermutationWorkspace& ws = workspaceAs<AtomPermutationWorkspace>(wsBase, "AtomPermutation");
    if (ws.savedBatch < 0)
        throw Error("AtomPermutation: backward() needs a preceding apply(..., save = true) with this workspace");
    if (grad.rows() != getDimension() || grad.cols() != ws.savedBatch)
        throw Error("AtomPermutation: grad is " + shapeString(grad.rows(), grad.cols()) + ", expected " +
                    shapeString(getDimension(), ws.savedBatch) + " (dimension x batch of the saved apply)");
    // The VJP of a permutation is the inverse permutation.
    permuteAtoms(grad, ws.direction == Direction::Forward ? inversePermutation : permutation, componentsPerAtom,
                 ws.column);
}

} // namespace cgflow::flows
