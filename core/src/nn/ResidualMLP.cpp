#include "cgflow/nn/ResidualMLP.h"
#include "ActivationPasses.h"
#include "cgflow/nn/DenseParameters.h"
#include "cgflow/nn/Gemm.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <type_traits>

namespace cgflow::nn {

namespace {

std::string shapeString(Eigen::Index rows, Eigen::Index cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

template <class Scalar>
constexpr bool isDouble = std::is_same_v<Scalar, double>;

/** The buffer set of ws that the given precision uses. */
template <class Scalar>
ResidualMLPBuffers<Scalar>& buffersOf(ResidualMLP::Workspace& ws) {
    if constexpr (isDouble<Scalar>)
        return ws;
    else
        return ws.single;
}

/** Of a double and a float version of something, the one for Scalar. */
template <class Scalar, class Double, class Single>
const auto& pickForScalar(const Double& forDouble, const Single& forSingle) {
    if constexpr (isDouble<Scalar>)
        return forDouble;
    else
        return forSingle;
}

/** Whether b holds a complete forward pass of a network of these sizes at this batch size. */
template <class Scalar>
bool holdsForwardPass(const ResidualMLPBuffers<Scalar>& b, int numBlocks, int inputSize, int hiddenSize,
                      Eigen::Index batch) {
    return static_cast<int>(b.stream.size()) == numBlocks + 1 && b.input.rows() == inputSize &&
           b.input.cols() == batch && b.stream[numBlocks].rows() == hiddenSize && b.stream[numBlocks].cols() == batch;
}

using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

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
    precisionCopiesStale = true; // the caller may write through the reference
    return weights[layer];
}

const Eigen::MatrixXd& ResidualMLP::weight(int layer) const {
    checkLayer(layer);
    return weights[layer];
}

Eigen::VectorXd& ResidualMLP::bias(int layer) {
    checkLayer(layer);
    precisionCopiesStale = true; // the caller may write through the reference
    return biases[layer];
}

const Eigen::VectorXd& ResidualMLP::bias(int layer) const {
    checkLayer(layer);
    return biases[layer];
}

size_t ResidualMLP::getLayerParameterOffset(int layer) const {
    if (layer < 0 || layer >= getNumLayers())
        throw Error("ResidualMLP::getLayerParameterOffset: layer " + std::to_string(layer) + " is outside [0, " +
                    std::to_string(getNumLayers()) + ")");
    size_t offset = 0;
    for (int l = 0; l < layer; l++)
        offset += static_cast<size_t>(weights[l].size() + biases[l].size());
    return offset;
}

size_t ResidualMLP::getNumParameters() const {
    return countDenseParameters(weights, biases);
}

void ResidualMLP::getParameters(double* out) const {
    packDenseParameters(weights, biases, out);
}

void ResidualMLP::setParameters(const double* in) {
    unpackDenseParameters(in, weights, biases);
    if (precision == Precision::Mixed)
        buildPrecisionCopies();
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
    if (precision == Precision::Mixed)
        buildPrecisionCopies();
}

void ResidualMLP::setPrecision(Precision precisionIn) {
    precisionName(precisionIn); // throws for a value outside the enum
    precision = precisionIn;
    if (precision == Precision::Mixed) {
        buildPrecisionCopies();
    } else {
        weightsSingle = {};
        biasesSingle = {};
    }
}

void ResidualMLP::syncPrecisionCopies() {
    if (precision == Precision::Mixed)
        buildPrecisionCopies();
    precisionCopiesStale = false;
}

void ResidualMLP::buildPrecisionCopies() {
    weightsSingle.resize(weights.size());
    biasesSingle.resize(biases.size());
    for (size_t l = 0; l < weights.size(); l++) {
        weightsSingle[l] = weights[l].cast<float>();
        biasesSingle[l] = biases[l].cast<float>();
    }
    precisionCopiesStale = false;
}

void ResidualMLP::checkPrecisionCopies(const char* what) const {
    if (precisionCopiesStale)
        throw Error(std::string("ResidualMLP::") + what +
                    " in mixed precision: the non-const weight()/bias() accessors were used since the float32 "
                    "weight copies were built, so they may be out of date; call syncPrecisionCopies() (or "
                    "setParameters()) after changing weights that way");
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
    if (precision == Precision::Mixed)
        checkPrecisionCopies("forward");
    ws.batch = -1; // until this pass has completed, the workspace holds no usable forward pass
    if (precision == Precision::Mixed)
        forwardImpl<float>(X, Y, ws);
    else
        forwardImpl<double>(X, Y, ws);
    ws.precision = precision;
    ws.batch = batch;
}

template <class Scalar>
void ResidualMLP::forwardImpl(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::Ref<Eigen::MatrixXd> Y,
                              Workspace& ws) const {
    using Matrix = typename ResidualMLPBuffers<Scalar>::Matrix;
    ResidualMLPBuffers<Scalar>& b = buffersOf<Scalar>(ws);
    const auto& W = pickForScalar<Scalar>(weights, weightsSingle);
    const auto& B = pickForScalar<Scalar>(biases, biasesSingle);
    const Eigen::Index batch = X.cols();
    b.stream.resize(numBlocks + 1);
    b.outer.resize(numBlocks);
    b.inner.resize(numBlocks);
    b.innerActivated.resize(numBlocks);
    // Assignment and noalias products reuse the existing storage when the shape is unchanged. In
    // Mixed this is the one conversion of the input to float (for double, cast<double> is X itself).
    b.input = X.template cast<Scalar>();

    // Products are written with beta = 0 and the bias added after: OpenBLAS's small-matrix
    // kernels have a beta = 0 variant that never reads C, measurably faster than accumulating
    // onto a broadcast bias.
    Matrix& h0 = b.stream[0];
    h0.resize(hiddenSize, batch);
    gemm<Scalar>(1, W[0], false, b.input, false, 0, h0);
    h0.colwise() += B[0];
    for (int k = 0; k < numBlocks; k++) {
        const Matrix& h = b.stream[k];
        Matrix& outer = b.outer[k];
        Matrix& inner = b.inner[k];
        Matrix& innerActivated = b.innerActivated[k];
        outer.resize(hiddenSize, batch);
        activationValue(activation, h.array(), outer.array());
        inner.resize(hiddenSize, batch);
        gemm<Scalar>(1, W[1 + 2 * k], false, outer, false, 0, inner);
        inner.colwise() += B[1 + 2 * k];
        innerActivated.resize(hiddenSize, batch);
        activationValue(activation, inner.array(), innerActivated.array());
        // The skip connection and bias are written first so that the GEMM accumulates onto them
        // (beta = 1) instead of needing a separate addition pass.
        Matrix& next = b.stream[k + 1];
        next.resize(hiddenSize, batch);
        next = h.colwise() + B[2 + 2 * k];
        gemm<Scalar>(1, W[2 + 2 * k], false, innerActivated, false, 1, next);
    }
    const int last = getNumLayers() - 1;
    if constexpr (isDouble<Scalar>) {
        gemm<double>(1, W[last], false, b.stream[numBlocks], false, 0, Y);
        Y.colwise() += B[last];
    } else {
        // The bias is added in the same pass that converts the output to double.
        ws.single.output.resize(outputSize, batch);
        gemm<float>(1, W[last], false, b.stream[numBlocks], false, 0, ws.single.output);
        Y = (ws.single.output.colwise() + B[last]).template cast<double>();
    }
}

void ResidualMLP::backward(const Eigen::Ref<const Eigen::MatrixXd>& dY, Workspace& ws, Eigen::MatrixXd* dX,
                           double* paramGrad) const {
    checkBuilt("backward");
    const Eigen::Index batch = ws.batch;
    const bool mixed = precision == Precision::Mixed;
    if (batch >= 0 && ws.precision != precision)
        throw Error("ResidualMLP::backward: the workspace holds a forward pass in " + precisionName(ws.precision) +
                    " precision but the network is now in " + precisionName(precision) +
                    " precision; run forward() again");
    if (batch < 0 || !(mixed ? holdsForwardPass(ws.single, numBlocks, inputSize, hiddenSize, batch)
                             : holdsForwardPass<double>(ws, numBlocks, inputSize, hiddenSize, batch)))
        throw Error("ResidualMLP::backward: the workspace does not hold a forward pass of this network");
    if (dY.rows() != outputSize || dY.cols() != batch)
        throw Error("ResidualMLP::backward: dY is " + shapeString(dY.rows(), dY.cols()) + ", expected " +
                    shapeString(outputSize, batch) + " (outputSize x batch of the last forward)");
    if (dX == nullptr && paramGrad == nullptr)
        return;
    if (mixed) {
        checkPrecisionCopies("backward");
        ws.single.outputGrad = dY.cast<float>();
        backwardImpl<float>(ws.single.outputGrad, ws, dX, paramGrad);
    } else {
        backwardImpl<double>(dY, ws, dX, paramGrad);
    }
}

template <class Scalar>
void ResidualMLP::backwardImpl(const Eigen::Ref<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& dY,
                               Workspace& ws, Eigen::MatrixXd* dX, double* paramGrad) const {
    using Matrix = typename ResidualMLPBuffers<Scalar>::Matrix;
    ResidualMLPBuffers<Scalar>& b = buffersOf<Scalar>(ws);
    const auto& W = pickForScalar<Scalar>(weights, weightsSingle);

    // Flat offsets of each layer's weight (its bias follows it).
    const int numLayers = getNumLayers();
    auto layerOffset = [&](int layer) {
        size_t offset = 0;
        for (int l = 0; l < layer; l++)
            offset += static_cast<size_t>(weights[l].size() + biases[l].size());
        return offset;
    };
    if constexpr (!isDouble<Scalar>) {
        Eigen::Index largest = 0;
        for (const Eigen::MatrixXd& w : weights)
            largest = std::max(largest, w.size());
        ws.single.weightGrad.resize(largest); // allocates only the first time
    }
    // delta is dY (a Ref, possibly strided; the GEMM takes it as is) or a Matrix.
    auto accumulateLayerGradient = [&](int layer, const auto& delta, const Matrix& layerInput) {
        const Eigen::Index rows = weights[layer].rows(), cols = weights[layer].cols();
        double* g = paramGrad + layerOffset(layer);
        Eigen::Map<Eigen::VectorXd> biasGrad(g + rows * cols, rows);
        if constexpr (isDouble<Scalar>) {
            // The row-major (rows x cols) gradient is the column-major (cols x rows) matrix
            // layerInput delta^T.
            gemm<double>(1, layerInput, false, delta, true, 1, Eigen::Map<Eigen::MatrixXd>(g, cols, rows));
            biasGrad += delta.rowwise().sum();
        } else {
            // The float GEMM writes in the flat (row-major) order, so the addition is one contiguous pass.
            Eigen::Map<RowMajorMatrixXf> single(ws.single.weightGrad.data(), rows, cols);
            gemm<float>(1, layerInput, false, delta, true, 0, Eigen::Map<Eigen::MatrixXf>(single.data(), cols, rows));
            RowMajorMap(g, rows, cols) += single.template cast<double>();
            biasGrad += delta.rowwise().sum().template cast<double>();
        }
    };

    Matrix& streamGrad = b.streamGrad;
    Matrix& innerGrad = b.innerGrad;
    Matrix& scratch = b.scratch;
    const int last = numLayers - 1;
    if (paramGrad != nullptr)
        accumulateLayerGradient(last, dY, b.stream[numBlocks]);
    streamGrad.resize(hiddenSize, ws.batch);
    gemm<Scalar>(1, W[last], true, dY, false, 0, streamGrad);
    for (int k = numBlocks - 1; k >= 0; k--) {
        const int first = 1 + 2 * k, second = 2 + 2 * k;
        if (paramGrad != nullptr)
            accumulateLayerGradient(second, streamGrad, b.innerActivated[k]);
        innerGrad.resize(hiddenSize, ws.batch);
        gemm<Scalar>(1, W[second], true, streamGrad, false, 0, innerGrad);
        multiplyByDerivative(activation, b.inner[k], b.innerActivated[k], innerGrad, scratch);
        if (paramGrad != nullptr)
            accumulateLayerGradient(first, innerGrad, b.outer[k]);
        // dL/dh_k = dL/dh_{k+1} (skip) + f'(h_k) * W1^T dL/d(inner). For the identity the GEMM
        // accumulates straight into the stream gradient.
        if (activation == Activation::Identity) {
            gemm<Scalar>(1, W[first], true, innerGrad, false, 1, streamGrad);
        } else {
            scratch.resize(hiddenSize, ws.batch);
            gemm<Scalar>(1, W[first], true, innerGrad, false, 0, scratch);
            // innerGrad is no longer needed and serves as the f' buffer where one is needed.
            accumulateTimesDerivative(activation, b.stream[k], b.outer[k], scratch, streamGrad, innerGrad);
        }
    }
    if (paramGrad != nullptr)
        accumulateLayerGradient(0, streamGrad, b.input);
    if (dX != nullptr) {
        if constexpr (isDouble<Scalar>) {
            dX->resize(inputSize, ws.batch);
            gemm<double>(1, W[0], true, streamGrad, false, 0, *dX);
        } else {
            ws.single.inputGrad.resize(inputSize, ws.batch);
            gemm<float>(1, W[0], true, streamGrad, false, 0, ws.single.inputGrad);
            *dX = ws.single.inputGrad.template cast<double>();
        }
    }
}

} // namespace cgflow::nn
