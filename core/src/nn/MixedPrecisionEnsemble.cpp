#include "cgflow/nn/MixedPrecisionEnsemble.h"
#include "ActivationPasses.h"

#include "cgflow/Error.h"

#include <string>

namespace cgflow::nn {

MixedPrecisionEnsemble::MixedPrecisionEnsemble(const MLPEnsemble& ensemble) {
    if (ensemble.getNumMembers() == 0)
        throw Error("MixedPrecisionEnsemble: the ensemble has no members");
    const MLP& first = ensemble.getMember(0);
    hidden = first.getHiddenActivation();
    output = first.getOutputActivation();
    const int numLayers = first.getNumLayers();
    members.resize(ensemble.getNumMembers());
    for (int k = 0; k < ensemble.getNumMembers(); k++) {
        const MLP& mlp = ensemble.getMember(k);
        Member& m = members[k];
        for (int l = 0; l + 1 < numLayers; l++) {
            m.weights.push_back(mlp.weight(l).cast<float>());
            m.biases.push_back(mlp.bias(l).cast<float>());
        }
        m.outputWeight = mlp.weight(numLayers - 1);
        m.outputBias = mlp.bias(numLayers - 1)[0];
    }
}

int MixedPrecisionEnsemble::getInputSize() const {
    if (members.empty())
        return 0;
    const Member& m = members.front();
    return m.weights.empty() ? static_cast<int>(m.outputWeight.size()) : static_cast<int>(m.weights.front().cols());
}

void MixedPrecisionEnsemble::evaluateMembers(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& memberOutputs,
                                             Eigen::MatrixXd* gradMean) const {
    if (members.empty())
        throw Error("MixedPrecisionEnsemble::evaluateMembers called on an empty ensemble");
    if (X.rows() != getInputSize())
        throw Error("MixedPrecisionEnsemble input X has " + std::to_string(X.rows()) + " rows, expected " +
                    std::to_string(getInputSize()) + " (one sample per column)");
    const int numMembers = getNumMembers();
    const int numHidden = static_cast<int>(members.front().weights.size());
    const Eigen::Index batch = X.cols();
    Scratch& s = scratch;
    memberOutputs.resize(numMembers, batch);
    if (gradMean != nullptr)
        gradMean->setZero(X.rows(), batch);
    s.input = X.cast<float>();
    s.pre.resize(numHidden);
    s.post.resize(numHidden);
    for (int k = 0; k < numMembers; k++) {
        const Member& m = members[k];
        // Forward through the hidden layers in float.
        for (int l = 0; l < numHidden; l++) {
            const Eigen::MatrixXf& in = (l == 0 ? s.input : s.post[l - 1]);
            s.pre[l].noalias() = m.weights[l] * in;
            s.pre[l].colwise() += m.biases[l];
            s.post[l].resize(s.pre[l].rows(), batch);
            activationValue(hidden, s.pre[l].array(), s.post[l].array());
        }
        // The output layer in double: its dot product is the sum that becomes the energy.
        if (numHidden > 0)
            s.lastPost = s.post[numHidden - 1].cast<double>();
        else
            s.lastPost = X;
        s.y.noalias() = m.outputWeight * s.lastPost;
        s.y.array() += m.outputBias;
        for (Eigen::Index j = 0; j < batch; j++)
            memberOutputs(k, j) = activationValue(output, s.y[j]);
        if (gradMean == nullptr)
            continue;
        // Backward: d(output)/d(its pre-activation) in double, then the hidden layers in float.
        s.dy.resize(batch);
        for (Eigen::Index j = 0; j < batch; j++)
            s.dy[j] = activationDerivative(output, s.y[j]);
        if (numHidden == 0) {
            gradMean->noalias() += m.outputWeight.transpose() * s.dy;
            continue;
        }
        s.delta.noalias() = (m.outputWeight.transpose() * s.dy).cast<float>();
        for (int l = numHidden - 1; l >= 0; l--) {
            multiplyByDerivative(hidden, s.pre[l], s.post[l], s.delta, s.buffer);
            s.next.noalias() = m.weights[l].transpose() * s.delta;
            s.delta.swap(s.next);
        }
        *gradMean += s.delta.cast<double>();
    }
    if (gradMean != nullptr)
        *gradMean /= numMembers;
}

} // namespace cgflow::nn
