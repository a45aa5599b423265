#include "cgflow/nn/ResidualMLP.h"
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

// The elementwise passes between GEMMs are memory-bound, so each helper below touches its operands
// once. Tanh, sigmoid and ReLU derivatives come from the stored outputs without another exp; the
// ~1e-16 absolute error of 1 - tanh^2 only matters for saturated units, which contribute nothing.

/** delta *= f'(pre), where post = f(pre); buffer is scratch space for f' where it is needed. */
void multiplyByDerivative(Activation activation, const Eigen::MatrixXd& pre, const Eigen::MatrixXd& post,
                          Eigen::MatrixXd& delta, Eigen::MatrixXd& buffer) {
    switch (activation) {
    case Activation::Identity:
        return;
    case Activation::Tanh:
        delta.array() *= 1.0 - post.array().square();
        return;
    case Activation::Sigmoid:
        delta.array() *= post.array() * (1.0 - post.array());
        return;
    case Activation::ReLU:
        delta.array() = (pre.array() > 0.0).select(delta.array(), 0.0);
        return;
    default:
        buffer.resize(pre.rows(), pre.cols());
        activationDerivative(activation, pre.array(), buffer.array());
        delta.array() *= buffer.array();
    }
}

/** target += delta * f'(pre), where post = f(pre); buffer as above. */
void accumulateTimesDerivative(Activation activation, const Eigen::MatrixXd& pre, const Eigen::MatrixXd& post,
                               const Eigen::MatrixXd& delta, Eigen::MatrixXd& target, Eigen::MatrixXd& buffer) {
    switch (activation) {
    case Activation::Identity:
        target += delta;
        return;
    case Activation::Tanh:
        target.array() += delta.array() * (1.0 - post.array().square());
        return;
    case Activation::Sigmoid:
        target.array() += delta.array() * post.array() * (1.0 - post.array());
        return;
    case Activation::ReLU:
        target.array() += (pre.array() > 0.0).select(delta.array(), 0.0);
        return;
    default:
        buffer.resize(pre.rows(), pre.cols());
        activationDerivative(activation, pre.array(), buffer.array());
        target.array() += delta.array() * buffer.array();
    }
}

} // namespace

ResidualMLP::ResidualMLP(int inputSizeIn, int hiddenSizeIn, int outputSizeIn, int numBlocksIn, Activation activationIn,
                         bool zeroInitialOutputIn)
    : inputSize(inputSizeIn), hiddenSize(hiddenSizeIn), outputSize(outputSizeIn), numBlocks(numBlocksIn),
      activation(activationIn), zeroInitialOutput(zeroInitialOutputIn) {
    if (inputSize < 1 || hiddenSize < 1 || outputSize < 1)
        throw Error("ResidualMLP: inputSize, hiddenSize and outputSize must all be >= 1, got " +
                    std::to_string(inputSize) + ", " + std::to_string(hiddenSize) + ", " + std::to_string(outputSize));
    if (numBlocks < 0)
        throw Error("ResidualMLP: numBlocks must be >= 0, got " + std::to_string(numBlocks));
    activationName(activation); // throws for a value outside the enum
    weights.push_back(Eigen::MatrixXd::Zero(hiddenSize, inputSize));
    biases.push_back(Eigen::VectorXd::Zero(hiddenSize));
    for (int l = 0; l < 2 * numBlocks; l++) {
        weights.push_back(Eigen::MatrixXd::Zero(hiddenSize, hiddenSize));
        biases.push_back(Eigen::VectorXd::Zero(hiddenSize));
    }
    weights.push_back(Eigen::MatrixXd::Zero(outputSize, hiddenSize));
    biases.push_back(Eigen::VectorXd::Zero(outputSize));
}

void ResidualMLP::checkLayer(int layer) const {
    if (layer < 0 || layer >= getNumLayers())
        throw Error("ResidualMLP layer index " + std::to_string(layer) + " out of range [0, " +
                    std::to_string(getNumLayers()) + ")");
}

void ResidualMLP::checkBuilt(const char* what) const {
    if (weights.empty())
        throw Error(std::string("ResidualMLP::") + what + " called on an empty (default-constructed) network");
}

Eigen::MatrixXd& ResidualMLP::weight(int layer) {
    checkLayer(layer);
    return weights[layer];
}

const Eigen::MatrixXd& ResidualMLP::weight(int layer) const {
    checkLayer(layer);
    return weights[layer];
}

Eigen::VectorXd& ResidualMLP::bias(int layer) {
    checkLayer(layer);
    return biases[layer];
}

const Eigen::VectorXd& ResidualMLP::bias(int layer) const {
    checkLayer(layer);
    return biases[layer];
}

size_t ResidualMLP::getNumParameters() const {
    return countDenseParameters(weights, biases);
}

void ResidualMLP::getParameters(double* out) const {
    packDenseParameters(weights, biases, out);
}

void ResidualMLP::setParameters(const double* in) {
    unpackDenseParameters(in, weights, biases);
}

std::vector<double> ResidualMLP::getParameters() const {
    std::vector<double> params(getNumParameters());
    getParameters(params.data());
    return params;
}

void ResidualMLP::setParameters(const std::vector<double>& in) {
    if (in.size() != getNumParameters())
        throw Error("ResidualMLP::setParameters: got " + std::to_string(in.size()) + " values, expected " +
                    std::to_string(getNumParameters()));
    setParameters(in.data());
}

void ResidualMLP::initializeParameters(uint64_t seed) {
    std::mt19937_64 engine(seed);
    const int last = getNumLayers() - 1;
    for (int l = 0; l <= last; l++) {
        Eigen::MatrixXd& w = weights[l];
        biases[l].setZero();
        if (l == last && zeroInitialOutput) {
            w.setZero();
            continue;
        }
        double limit = std::sqrt(6.0 / static_cast<double>(w.rows() + w.cols()));
        for (Eigen::Index r = 0; r < w.rows(); r++)
            for (Eigen::Index c = 0; c < w.cols(); c++) {
                // The top 53 bits give a uniform double in [0, 1) exactly.
                double u = static_cast<double>(engine() >> 11) * 0x1.0p-53;
                w(r, c) = limit * (2.0 * u - 1.0);
            }
    }
}

void ResidualMLP::forward(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& Y, Workspace& ws) const {
    Y.resize(outputSize, X.cols());
    forwardInto(X, Y, ws);
}

void ResidualMLP::forwardInto(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::Ref<Eigen::MatrixXd> Y,
                              Workspace& ws) const {
    checkBuilt("forward");
    if (X.rows() != inputSize)
        throw Error("ResidualMLP input X is " + shapeString(X.rows(), X.cols()) + ", expected " +
                    std::to_string(inputSize) + " rows (one sample per column)");
    const Eigen::Index batch = X.cols();
    if (Y.rows() != outputSize || Y.cols() != batch)
        throw Error("ResidualMLP output Y is " + shapeString(Y.rows(), Y.cols()) + ", expected " +
                    shapeString(outputSize, batch) + " (outputSize x batch)");
    ws.batch = -1; // until this pass has completed, the workspace holds no usable forward pass
    ws.stream.resize(numBlocks + 1);
    ws.outer.resize(numBlocks);
    ws.inner.resize(numBlocks);
    ws.innerActivated.resize(numBlocks);
    // Assignment and noalias products reuse the existing storage when the shape is unchanged.
    ws.input = X;

    Eigen::MatrixXd& h0 = ws.stream[0];
    h0.noalias() = weights[0] * ws.input;
    h0.colwise() += biases[0];
    for (int k = 0; k < numBlocks; k++) {
        const Eigen::MatrixXd& h = ws.stream[k];
        Eigen::MatrixXd& outer = ws.outer[k];
        Eigen::MatrixXd& inner = ws.inner[k];
        Eigen::MatrixXd& innerActivated = ws.innerActivated[k];
        outer.resize(hiddenSize, batch);
        activationValue(activation, h.array(), outer.array());
        inner.noalias() = weights[1 + 2 * k] * outer;
        inner.colwise() += biases[1 + 2 * k];
        innerActivated.resize(hiddenSize, batch);
        activationValue(activation, inner.array(), innerActivated.array());
        // The skip connection and bias are written first so that the GEMM accumulates onto them
        // (beta = 1) instead of needing a separate addition pass.
        Eigen::MatrixXd& next = ws.stream[k + 1];
        next.resize(hiddenSize, batch);
        next = h.colwise() + biases[2 + 2 * k];
        next.noalias() += weights[2 + 2 * k] * innerActivated;
    }
    const int last = getNumLayers() - 1;
    Y.noalias() = weights[last] * ws.stream[numBlocks];
    Y.colwise() += biases[last];
    ws.batch = batch;
}

void ResidualMLP::backward(const Eigen::Ref<const Eigen::MatrixXd>& dY, Workspace& ws, Eigen::MatrixXd* dX,
                           double* paramGrad) const {
    checkBuilt("backward");
    const Eigen::Index batch = ws.batch;
    if (batch < 0 || static_cast<int>(ws.stream.size()) != numBlocks + 1 || ws.input.rows() != inputSize ||
        ws.stream[numBlocks].rows() != hiddenSize || ws.stream[numBlocks].cols() != batch)
        throw Error("ResidualMLP::backward: the workspace does not hold a forward pass of this network");
    if (dY.rows() != outputSize || dY.cols() != batch)
        throw Error("ResidualMLP::backward: dY is " + shapeString(dY.rows(), dY.cols()) + ", expected " +
                    shapeString(outputSize, batch) + " (outputSize x batch of the last forward)");
    if (dX == nullptr && paramGrad == nullptr)
        return;

    // Flat offsets of each layer's weight (its bias follows it).
    const int numLayers = getNumLayers();
    auto layerOffset = [&](int layer) {
        size_t offset = 0;
        for (int l = 0; l < layer; l++)
            offset += static_cast<size_t>(weights[l].size() + biases[l].size());
        return offset;
    };
    auto accumulateLayerGradient = [&](int layer, const Eigen::MatrixXd& delta, const Eigen::MatrixXd& layerInput) {
        const Eigen::MatrixXd& w = weights[layer];
        double* g = paramGrad + layerOffset(layer);
        RowMajorMap(g, w.rows(), w.cols()).noalias() += delta * layerInput.transpose();
        Eigen::Map<Eigen::VectorXd>(g + w.size(), biases[layer].size()) += delta.rowwise().sum();
    };

    Eigen::MatrixXd& streamGrad = ws.streamGrad;
    Eigen::MatrixXd& innerGrad = ws.innerGrad;
    Eigen::MatrixXd& scratch = ws.scratch;
    const int last = numLayers - 1;
    if (paramGrad != nullptr) {
        // dY is a Ref (possibly strided); the GEMM takes it as is.
        const Eigen::MatrixXd& hLast = ws.stream[numBlocks];
        const Eigen::MatrixXd& w = weights[last];
        double* g = paramGrad + layerOffset(last);
        RowMajorMap(g, w.rows(), w.cols()).noalias() += dY * hLast.transpose();
        Eigen::Map<Eigen::VectorXd>(g + w.size(), biases[last].size()) += dY.rowwise().sum();
    }
    streamGrad.noalias() = weights[last].transpose() * dY;
    for (int k = numBlocks - 1; k >= 0; k--) {
        const int first = 1 + 2 * k, second = 2 + 2 * k;
        if (paramGrad != nullptr)
            accumulateLayerGradient(second, streamGrad, ws.innerActivated[k]);
        innerGrad.noalias() = weights[second].transpose() * streamGrad;
        multiplyByDerivative(activation, ws.inner[k], ws.innerActivated[k], innerGrad, scratch);
        if (paramGrad != nullptr)
            accumulateLayerGradient(first, innerGrad, ws.outer[k]);
        // dL/dh_k = dL/dh_{k+1} (skip) + f'(h_k) * W1^T dL/d(inner). For the identity the GEMM
        // accumulates straight into the stream gradient.
        if (activation == Activation::Identity) {
            streamGrad.noalias() += weights[first].transpose() * innerGrad;
        } else {
            scratch.noalias() = weights[first].transpose() * innerGrad;
            // innerGrad is no longer needed and serves as the f' buffer where one is needed.
            accumulateTimesDerivative(activation, ws.stream[k], ws.outer[k], scratch, streamGrad, innerGrad);
        }
    }
    if (paramGrad != nullptr)
        accumulateLayerGradient(0, streamGrad, ws.input);
    if (dX != nullptr)
        dX->noalias() = weights[0].transpose() * streamGrad;
}

} // namespace cgflow::nn
