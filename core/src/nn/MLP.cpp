#include "cgflow/nn/MLP.h"
#include "cgflow/nn/DenseParameters.h"

#include "cgflow/Error.h"

#include <cmath>
#include <random>
#include <string>

namespace cgflow::nn {

namespace {

std::string shapeString(Eigen::Index rows, Eigen::Index cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

} // namespace

MLP::MLP(std::vector<int> widthsIn, Activation hiddenIn, Activation outputIn)
    : widths(std::move(widthsIn)), hidden(hiddenIn), output(outputIn) {
    if (widths.size() < 2)
        throw Error("MLP widths must have at least 2 entries ({input, ..., output}), got " +
                    std::to_string(widths.size()));
    for (size_t i = 0; i < widths.size(); i++)
        if (widths[i] < 1)
            throw Error("MLP widths must all be >= 1, but widths[" + std::to_string(i) + "] = " +
                        std::to_string(widths[i]));
    for (size_t l = 0; l + 1 < widths.size(); l++) {
        weights.push_back(Eigen::MatrixXd::Zero(widths[l + 1], widths[l]));
        biases.push_back(Eigen::VectorXd::Zero(widths[l + 1]));
    }
}

int MLP::getInputSize() const {
    return widths.empty() ? 0 : widths.front();
}

int MLP::getOutputSize() const {
    return widths.empty() ? 0 : widths.back();
}

void MLP::checkLayer(int layer) const {
    if (layer < 0 || layer >= getNumLayers())
        throw Error("MLP layer index " + std::to_string(layer) + " out of range [0, " +
                    std::to_string(getNumLayers()) + ")");
}

Eigen::MatrixXd& MLP::weight(int layer) {
    checkLayer(layer);
    return weights[layer];
}

const Eigen::MatrixXd& MLP::weight(int layer) const {
    checkLayer(layer);
    return weights[layer];
}

Eigen::VectorXd& MLP::bias(int layer) {
    checkLayer(layer);
    return biases[layer];
}

const Eigen::VectorXd& MLP::bias(int layer) const {
    checkLayer(layer);
    return biases[layer];
}

size_t MLP::getNumParameters() const {
    return countDenseParameters(weights, biases);
}

void MLP::getParameters(double* out) const {
    packDenseParameters(weights, biases, out);
}

void MLP::setParameters(const double* in) {
    unpackDenseParameters(in, weights, biases);
}

void MLP::initializeParameters(uint64_t seed) {
    std::mt19937_64 engine(seed);
    for (size_t l = 0; l < weights.size(); l++) {
        Eigen::MatrixXd& w = weights[l];
        double limit = std::sqrt(6.0 / static_cast<double>(w.rows() + w.cols()));
        for (Eigen::Index r = 0; r < w.rows(); r++)
            for (Eigen::Index c = 0; c < w.cols(); c++) {
                // The top 53 bits give a uniform double in [0, 1) exactly.
                double u = static_cast<double>(engine() >> 11) * 0x1.0p-53;
                w(r, c) = limit * (2.0 * u - 1.0);
            }
        biases[l].setZero();
    }
}

void MLP::forward(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& Y, Workspace& ws) const {
    const int numLayers = getNumLayers();
    if (numLayers == 0)
        throw Error("MLP::forward called on an empty (default-constructed) MLP");
    if (X.rows() != getInputSize())
        throw Error("MLP input X is " + shapeString(X.rows(), X.cols()) + ", expected " +
                    std::to_string(getInputSize()) + " rows (one sample per column)");
    ws.holdsInputGradient = false;
    ws.pre.resize(numLayers);
    ws.post.resize(numLayers);
    ws.input = X;
    for (int l = 0; l < numLayers; l++) {
        const Eigen::MatrixXd& in = (l == 0 ? ws.input : ws.post[l - 1]);
        Eigen::MatrixXd& pre = ws.pre[l];
        pre.noalias() = weights[l] * in;
        pre.colwise() += biases[l];
        Eigen::MatrixXd& post = ws.post[l];
        post.resize(pre.rows(), pre.cols());
        activationValue(l + 1 == numLayers ? output : hidden, pre.array(), post.array());
    }
    Y = ws.post[numLayers - 1];
}

void MLP::backward(const Eigen::Ref<const Eigen::MatrixXd>& dY, Workspace& ws, Eigen::MatrixXd* dX,
                   double* paramGrad) const {
    const int numLayers = getNumLayers();
    if (numLayers == 0)
        throw Error("MLP::backward called on an empty (default-constructed) MLP");
    const Eigen::Index batch = ws.input.cols();
    if (static_cast<int>(ws.pre.size()) != numLayers || ws.input.rows() != getInputSize() ||
        ws.pre[numLayers - 1].cols() != batch)
        throw Error("MLP::backward: the workspace does not hold a forward pass of this network");
    if (dY.rows() != getOutputSize() || dY.cols() != batch)
        throw Error("MLP::backward: dY is " + shapeString(dY.rows(), dY.cols()) + ", expected " +
                    shapeString(getOutputSize(), batch) + " (outputSize x batch of the last forward)");
    ws.holdsInputGradient = false;
    ws.delta.resize(numLayers);
    ws.deriv.resize(numLayers);

    // delta[l] = dL/d(pre[l]); its flat offset into paramGrad is walked backwards from the end.
    size_t offset = getNumParameters();
    ws.delta[numLayers - 1] = dY;
    for (int l = numLayers - 1; l >= 0; l--) {
        Activation activation = (l + 1 == numLayers ? output : hidden);
        Eigen::MatrixXd& delta = ws.delta[l];
        // Sigmoid and tanh derivatives follow from the stored outputs without another exp. Their
        // error is ~1e-16 absolute, which only matters relative to the tiny derivatives of
        // saturated units, whose contribution to the gradient is negligible anyway.
        switch (activation) {
        case Activation::Identity:
            break;
        case Activation::Sigmoid:
            delta.array() *= ws.post[l].array() * (1.0 - ws.post[l].array());
            break;
        case Activation::Tanh:
            delta.array() *= 1.0 - ws.post[l].array().square();
            break;
        default: {
            Eigen::MatrixXd& deriv = ws.deriv[l];
            deriv.resize(ws.pre[l].rows(), ws.pre[l].cols());
            activationDerivative(activation, ws.pre[l].array(), deriv.array());
            delta.array() *= deriv.array();
        }
        }
        const Eigen::MatrixXd& w = weights[l];
        offset -= static_cast<size_t>(w.size() + biases[l].size());
        if (paramGrad != nullptr) {
            const Eigen::MatrixXd& in = (l == 0 ? ws.input : ws.post[l - 1]);
            ws.weightGrad.noalias() = delta * in.transpose();
            RowMajorMap(paramGrad + offset, w.rows(), w.cols()) += ws.weightGrad;
            ws.biasGrad.noalias() = delta.rowwise().sum();
            Eigen::Map<Eigen::VectorXd>(paramGrad + offset + w.size(), biases[l].size()) += ws.biasGrad;
        }
        if (l > 0)
            ws.delta[l - 1].noalias() = w.transpose() * delta;
        else if (dX != nullptr)
            dX->noalias() = w.transpose() * delta;
    }
}

void MLP::inputGradient(Workspace& ws, Eigen::MatrixXd& G) const {
    const int numLayers = getNumLayers();
    if (numLayers == 0)
        throw Error("MLP::inputGradient called on an empty (default-constructed) MLP");
    if (getOutputSize() != 1)
        throw Error("MLP::inputGradient: the network has " + std::to_string(getOutputSize()) +
                    " outputs; the input gradient is defined for a scalar output only");
    const Eigen::Index batch = ws.input.cols();
    if (static_cast<int>(ws.pre.size()) != numLayers || ws.input.rows() != getInputSize() ||
        ws.pre[numLayers - 1].cols() != batch)
        throw Error("MLP::inputGradient: the workspace does not hold a forward pass of this network");
    ws.postGrad.resize(numLayers);
    ws.delta.resize(numLayers);
    ws.deriv.resize(numLayers);
    ws.postGrad[numLayers - 1].setOnes(1, batch);
    for (int l = numLayers - 1; l >= 0; l--) {
        Eigen::MatrixXd& deriv = ws.deriv[l];
        deriv.resize(ws.pre[l].rows(), batch);
        activationDerivative(l + 1 == numLayers ? output : hidden, ws.pre[l].array(), deriv.array());
        ws.delta[l].array() = deriv.array() * ws.postGrad[l].array();
        if (l > 0)
            ws.postGrad[l - 1].noalias() = weights[l].transpose() * ws.delta[l];
        else
            G.noalias() = weights[0].transpose() * ws.delta[0];
    }
    ws.holdsInputGradient = true;
}

void MLP::mixedParameterGradient(const Eigen::Ref<const Eigen::MatrixXd>& V, Workspace& ws, double* paramGrad) const {
    const int numLayers = getNumLayers();
    if (!ws.holdsInputGradient || static_cast<int>(ws.delta.size()) != numLayers)
        throw Error("MLP::mixedParameterGradient: the workspace does not hold an inputGradient() pass of this "
                    "network (call forward() then inputGradient() first)");
    const Eigen::Index batch = ws.input.cols();
    if (V.rows() != getInputSize() || V.cols() != batch)
        throw Error("MLP::mixedParameterGradient: V is " + shapeString(V.rows(), V.cols()) + ", expected " +
                    shapeString(getInputSize(), batch) + " (inputSize x batch of the last forward)");
    if (paramGrad == nullptr)
        throw Error("MLP::mixedParameterGradient: paramGrad must not be null");
    ws.tangentPre.resize(numLayers);
    ws.tangentPost.resize(numLayers);
    ws.tangentDelta.resize(numLayers);
    ws.secondDeriv.resize(numLayers);

    // Forward tangents: tangentPre[l] = R{z_l}, tangentPost[l] = R{a_{l+1}} (R{a_0} = V).
    for (int l = 0; l < numLayers; l++) {
        if (l == 0)
            ws.tangentPre[0].noalias() = weights[0] * V;
        else
            ws.tangentPre[l].noalias() = weights[l] * ws.tangentPost[l - 1];
        if (l + 1 < numLayers)
            ws.tangentPost[l].array() = ws.deriv[l].array() * ws.tangentPre[l].array();
    }

    // Backward: tangentDelta[l] = R{delta_l}. Its second term, f'(z_l) (W_{l+1}^T R{delta_{l+1}}),
    // is written by the layer above; the top layer's upstream gradient dU/dU = 1 has no tangent.
    size_t offset = getNumParameters();
    ws.tangentDelta[numLayers - 1].setZero(1, batch);
    for (int l = numLayers - 1; l >= 0; l--) {
        Activation activation = (l + 1 == numLayers ? output : hidden);
        Eigen::MatrixXd& tangentDelta = ws.tangentDelta[l];
        // Identity and ReLU have f'' = 0 everywhere, so their first term vanishes.
        if (activation != Activation::Identity && activation != Activation::ReLU) {
            Eigen::MatrixXd& secondDeriv = ws.secondDeriv[l];
            secondDeriv.resize(ws.pre[l].rows(), batch);
            activationSecondDerivative(activation, ws.pre[l].array(), secondDeriv.array());
            tangentDelta.array() += secondDeriv.array() * ws.tangentPre[l].array() * ws.postGrad[l].array();
        }
        const Eigen::MatrixXd& w = weights[l];
        offset -= static_cast<size_t>(w.size() + biases[l].size());
        const Eigen::MatrixXd& in = (l == 0 ? ws.input : ws.post[l - 1]);
        ws.weightGrad.noalias() = tangentDelta * in.transpose();
        if (l == 0)
            ws.weightGrad.noalias() += ws.delta[0] * V.transpose();
        else
            ws.weightGrad.noalias() += ws.delta[l] * ws.tangentPost[l - 1].transpose();
        RowMajorMap(paramGrad + offset, w.rows(), w.cols()) += ws.weightGrad;
        ws.biasGrad.noalias() = tangentDelta.rowwise().sum();
        Eigen::Map<Eigen::VectorXd>(paramGrad + offset + w.size(), biases[l].size()) += ws.biasGrad;
        if (l > 0) {
            ws.tangentDelta[l - 1].noalias() = w.transpose() * tangentDelta;
            ws.tangentDelta[l - 1].array() *= ws.deriv[l - 1].array();
        }
    }
}

void MLP::inputGradientAndMixedParameterGradient(const Eigen::Ref<const Eigen::MatrixXd>& V, Workspace& ws,
                                                 Eigen::MatrixXd& G, double* paramGrad) const {
    inputGradient(ws, G);
    if (paramGrad != nullptr)
        mixedParameterGradient(V, ws, paramGrad);
}

} // namespace cgflow::nn
