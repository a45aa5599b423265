#include "cgflow/nn/MLPEnsemble.h"

#include "cgflow/Error.h"
#include "cgflow/stats/Moments.h"

#include <cmath>
#include <string>

namespace cgflow::nn {

MLPEnsemble::MLPEnsemble(std::vector<MLP> membersIn) : members(std::move(membersIn)) {
    if (members.empty())
        throw Error("MLPEnsemble needs at least one member");
    const MLP& first = members.front();
    if (first.getNumLayers() == 0)
        throw Error("MLPEnsemble member 0 is an empty (default-constructed) MLP");
    if (first.getOutputSize() != 1)
        throw Error("MLPEnsemble members must have output size 1, but member 0 has output size " +
                    std::to_string(first.getOutputSize()));
    for (size_t k = 1; k < members.size(); k++) {
        const MLP& m = members[k];
        if (m.getWidths() != first.getWidths() || m.getHiddenActivation() != first.getHiddenActivation() ||
            m.getOutputActivation() != first.getOutputActivation())
            throw Error("MLPEnsemble member " + std::to_string(k) +
                        " differs from member 0 in widths or activations; all members must share one architecture");
    }
}

int MLPEnsemble::getInputSize() const {
    return members.empty() ? 0 : members.front().getInputSize();
}

void MLPEnsemble::checkIndex(int i) const {
    if (i < 0 || i >= getNumMembers())
        throw Error("MLPEnsemble member index " + std::to_string(i) + " out of range [0, " +
                    std::to_string(getNumMembers()) + ")");
}

const MLP& MLPEnsemble::getMember(int i) const {
    checkIndex(i);
    return members[i];
}

MLP& MLPEnsemble::getMember(int i) {
    checkIndex(i);
    return members[i];
}

void MLPEnsemble::evaluate(const Eigen::Ref<const Eigen::VectorXd>& x, bool wantGradient, Result& result) const {
    if (members.empty())
        throw Error("MLPEnsemble::evaluate called on an empty ensemble");
    if (x.size() != getInputSize())
        throw Error("MLPEnsemble input x has " + std::to_string(x.size()) + " entries, expected " +
                    std::to_string(getInputSize()));
    const int numMembers = getNumMembers();
    const double weight = 1.0 / numMembers;
    result.memberValues.resize(numMembers);
    if (wantGradient) {
        result.gradMean.setZero(x.size());
        scratch.dy.setConstant(1, 1, weight);
    }
    for (int k = 0; k < numMembers; k++) {
        members[k].forward(x, scratch.y, scratch.workspace);
        result.memberValues[k] = scratch.y(0, 0);
        if (wantGradient) {
            members[k].backward(scratch.dy, scratch.workspace, &scratch.dx, nullptr);
            result.gradMean += scratch.dx.col(0);
        }
    }
    const std::pair<double, double> moments = stats::meanAndStd(result.memberValues.data(), numMembers);
    result.mean = moments.first;
    result.std = moments.second;
}

void MLPEnsemble::evaluateMembers(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& memberOutputs,
                                  Eigen::MatrixXd* gradMean) const {
    if (members.empty())
        throw Error("MLPEnsemble::evaluateMembers called on an empty ensemble");
    if (X.rows() != getInputSize())
        throw Error("MLPEnsemble input X has " + std::to_string(X.rows()) + " rows, expected " +
                    std::to_string(getInputSize()) + " (one sample per column)");
    const int numMembers = getNumMembers();
    const Eigen::Index batch = X.cols();
    memberOutputs.resize(numMembers, batch);
    if (gradMean != nullptr) {
        gradMean->setZero(X.rows(), batch);
        scratch.dy.setConstant(1, batch, 1.0 / numMembers);
    }
    for (int k = 0; k < numMembers; k++) {
        members[k].forward(X, scratch.y, scratch.workspace);
        memberOutputs.row(k) = scratch.y.row(0);
        if (gradMean != nullptr) {
            members[k].backward(scratch.dy, scratch.workspace, &scratch.dx, nullptr);
            *gradMean += scratch.dx;
        }
    }
}

void MLPEnsemble::evaluateBatch(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::VectorXd& means,
                                Eigen::VectorXd& stds) const {
    evaluateMembers(X, scratch.memberOutputs, nullptr);
    const int numMembers = getNumMembers();
    const Eigen::Index batch = X.cols();
    means = scratch.memberOutputs.colwise().mean().transpose();
    stds.resize(batch);
    for (Eigen::Index j = 0; j < batch; j++)
        stds[j] = std::sqrt((scratch.memberOutputs.col(j).array() - means[j]).square().sum() / numMembers);
}

} // namespace cgflow::nn
