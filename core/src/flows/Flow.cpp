#include "cgflow/flows/Flow.h"

#include "cgflow/Error.h"
#include "cgflow/util/Parallel.h"

#include <cmath>
#include <string>
#include <thread>

namespace cgflow::flows {

namespace {

// Below this many samples per chunk, thread start-up and the smaller GEMMs cost more than the
// parallelism gains (the small-batch, integrator regime runs on the calling thread).
constexpr int MinSamplesPerChunk = 8;

std::string layerName(int index, const Bijection& layer) {
    return "layer " + std::to_string(index) + " (" + layer.getTypeName() + ")";
}

std::string shapeString(Eigen::Index rows, Eigen::Index cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

} // namespace

Flow::Flow(BaseDensity baseIn, std::vector<std::unique_ptr<Bijection>> layersIn, std::vector<bool> contextCircularIn)
    : base(std::move(baseIn)), layers(std::move(layersIn)), contextCircular(std::move(contextCircularIn)) {
    if (base.getDimension() < 1)
        throw Error("Flow: the base density has no dimensions");
    for (bool c : contextCircular)
        contextFeatureSize += c ? 2 : 1;
    std::vector<bool> circular = base.getCircular();
    for (int l = 0; l < getNumLayers(); l++) {
        if (!layers[l])
            throw Error("Flow: layer " + std::to_string(l) + " is null");
        const Bijection& layer = *layers[l];
        if (layer.getDimension() != getDimension())
            throw Error("Flow: " + layerName(l, layer) + " has dimension " + std::to_string(layer.getDimension()) +
                        ", the base density " + std::to_string(getDimension()));
        if (layer.getInputCircular() != circular)
            throw Error("Flow: " + layerName(l, layer) +
                        " disagrees with its input about which dimensions are circular" +
                        (l == 0 ? " (the base density's uniform_circle dimensions)" : " (the previous layer's outputs)"));
        circular = layer.getOutputCircular();
        const int features = layer.getContextFeatureSize();
        if (features != 0 && features != contextFeatureSize)
            throw Error("Flow: " + layerName(l, layer) + " reads " + std::to_string(features) +
                        " context features, but the flow's context has " + std::to_string(contextFeatureSize));
        parameterOffsets.push_back(numParameters);
        numParameters += layer.getNumParameters();
    }
    numThreads = std::max(1u, std::thread::hardware_concurrency());
}

std::vector<bool> Flow::getCircular() const {
    return layers.empty() ? base.getCircular() : layers.back()->getOutputCircular();
}

const Bijection& Flow::getLayer(int index) const {
    if (index < 0 || index >= getNumLayers())
        throw Error("Flow: layer index " + std::to_string(index) + " out of range [0, " + std::to_string(getNumLayers()) +
                    ")");
    return *layers[index];
}

Bijection& Flow::getLayer(int index) {
    return const_cast<Bijection&>(static_cast<const Flow&>(*this).getLayer(index));
}

size_t Flow::getParameterOffset(int layer) const {
    getLayer(layer);
    return parameterOffsets[layer];
}

void Flow::getParameters(double* out) const {
    for (int l = 0; l < getNumLayers(); l++)
        layers[l]->getParameters(out + parameterOffsets[l]);
}

void Flow::setParameters(const double* in) {
    for (int l = 0; l < getNumLayers(); l++)
        layers[l]->setParameters(in + parameterOffsets[l]);
}

std::vector<double> Flow::getParameters() const {
    std::vector<double> params(numParameters);
    getParameters(params.data());
    return params;
}

void Flow::setParameters(const std::vector<double>& in) {
    if (in.size() != numParameters)
        throw Error("Flow::setParameters: got " + std::to_string(in.size()) + " values, expected " +
                    std::to_string(numParameters));
    setParameters(in.data());
}

void Flow::initializeParameters(uint64_t seed) {
    for (int l = 0; l < getNumLayers(); l++)
        layers[l]->initializeParameters(seed + static_cast<uint64_t>(l));
}

void Flow::setNumThreads(int threads) {
    if (threads < 1)
        throw Error("Flow::setNumThreads: numThreads must be >= 1, got " + std::to_string(threads));
    numThreads = threads;
}

void Flow::setPrecision(nn::Precision p) {
    for (auto& layer : layers)
        layer->setPrecision(p);
    precision = p;
}

int Flow::chooseChunks(int n) const {
    return std::max(1, std::min(numThreads, n / MinSamplesPerChunk));
}

void Flow::ensureWorkspaces(int numChunks) {
    while (static_cast<int>(workspaces.size()) < numChunks) {
        std::vector<std::unique_ptr<BijectionWorkspace>> chunk;
        for (const auto& layer : layers)
            chunk.push_back(layer->createWorkspace());
        workspaces.push_back(std::move(chunk));
    }
}

void Flow::prepareContext(const Eigen::MatrixXd* context, int n, int numChunks) {
    pass.contextFeatures.clear();
    pass.broadcastContext = false;
    if (getContextDimension() == 0) {
        if (context != nullptr && context->size() > 0)
            throw Error("Flow: this flow is not conditional, but a context was given");
        pass.contextValues.resize(0, 0);
        return;
    }
    if (context == nullptr)
        throw Error("Flow: this flow is conditional on " + std::to_string(getContextDimension()) +
                    " context variables; a context is required");
    if (context->rows() != getContextDimension() || (context->cols() != n && context->cols() != 1))
        throw Error("Flow: context is " + shapeString(context->rows(), context->cols()) + ", expected " +
                    shapeString(getContextDimension(), n) + " or " + shapeString(getContextDimension(), 1) +
                    " (one context for all samples)");
    pass.broadcastContext = context->cols() == 1 && n != 1;
    pass.contextValues = *context;
    for (int c = 0; c < numChunks; c++) {
        const int begin = util::chunkBegin(n, numChunks, c), end = util::chunkBegin(n, numChunks, c + 1);
        Eigen::MatrixXd features(contextFeatureSize, end - begin);
        for (int j = begin; j < end; j++) {
            const int source = pass.broadcastContext ? 0 : j;
            int row = 0;
            for (int v = 0; v < getContextDimension(); v++) {
                const double value = (*context)(v, source);
                if (contextCircular[v]) {
                    features(row++, j - begin) = std::cos(value);
                    features(row++, j - begin) = std::sin(value);
                } else {
                    features(row++, j - begin) = value;
                }
            }
        }
        pass.contextFeatures.push_back(std::move(features));
    }
}

void Flow::runForward(Eigen::MatrixXd& x, Eigen::VectorXd& logQ, bool drawBase, uint64_t seed, uint64_t firstIndex,
                      bool save) {
    const int n = static_cast<int>(x.cols());
    util::parallelChunks(n, pass.numChunks, [&](int c, int begin, int end) {
        auto block = x.middleCols(begin, end - begin);
        if (drawBase)
            base.sample(seed, firstIndex + static_cast<uint64_t>(begin), block);
        base.logProb(block, logQ.data() + begin);
        Eigen::VectorXd logDet = Eigen::VectorXd::Zero(end - begin);
        const Eigen::MatrixXd* context = pass.contextFeatures.empty() ? nullptr : &pass.contextFeatures[c];
        for (int l = 0; l < getNumLayers(); l++)
            layers[l]->apply(Direction::Forward, block, layers[l]->getContextFeatureSize() > 0 ? context : nullptr,
                             logDet.data(), *workspaces[c][l], save);
        logQ.segment(begin, end - begin) -= logDet;
    });
    pass.kind = save ? PassKind::Sample : PassKind::None;
}

void Flow::sample(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x, Eigen::VectorXd& logQ,
                  bool save, uint64_t firstIndex) {
    if (n < 0)
        throw Error("Flow::sample: n must be >= 0, got " + std::to_string(n));
    pass = Pass();
    pass.n = n;
    pass.numChunks = chooseChunks(n);
    prepareContext(context, n, pass.numChunks);
    ensureWorkspaces(pass.numChunks);
    x.resize(getDimension(), n);
    logQ.resize(n);
    runForward(x, logQ, true, seed, firstIndex, save);
}

void Flow::transformFromBase(const Eigen::MatrixXd& z, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                             Eigen::VectorXd& logQ, bool save) {
    if (z.rows() != getDimension())
        throw Error("Flow::transformFromBase: z has " + std::to_string(z.rows()) + " rows, expected the dimension " +
                    std::to_string(getDimension()) + " (one sample per column)");
    const int n = static_cast<int>(z.cols());
    pass = Pass();
    pass.n = n;
    pass.numChunks = chooseChunks(n);
    prepareContext(context, n, pass.numChunks);
    ensureWorkspaces(pass.numChunks);
    x = z;
    logQ.resize(n);
    runForward(x, logQ, false, 0, 0, save);
}

void Flow::logProb(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context, Eigen::VectorXd& logQ, bool save,
                   Eigen::MatrixXd* z) {
    if (x.rows() != getDimension())
        throw Error("Flow::logProb: x has " + std::to_string(x.rows()) + " rows, expected the dimension " +
                    std::to_string(getDimension()) + " (one sample per column)");
    const int n = static_cast<int>(x.cols());
    pass = Pass();
    pass.n = n;
    pass.numChunks = chooseChunks(n);
    prepareContext(context, n, pass.numChunks);
    ensureWorkspaces(pass.numChunks);
    Eigen::MatrixXd& work = pass.base;
    work = x;
    logQ.resize(n);
    util::parallelChunks(n, pass.numChunks, [&](int c, int begin, int end) {
        auto block = work.middleCols(begin, end - begin);
        Eigen::VectorXd logDet = Eigen::VectorXd::Zero(end - begin);
        const Eigen::MatrixXd* ctx = pass.contextFeatures.empty() ? nullptr : &pass.contextFeatures[c];
        for (int l = getNumLayers() - 1; l >= 0; l--)
            layers[l]->apply(Direction::Inverse, block, layers[l]->getContextFeatureSize() > 0 ? ctx : nullptr,
                             logDet.data(), *workspaces[c][l], save);
        base.logProb(block, logQ.data() + begin);
        logQ.segment(begin, end - begin) += logDet;
    });
    if (z != nullptr)
        *z = work;
    pass.kind = save ? PassKind::LogProb : PassKind::None;
    if (!save)
        work.resize(0, 0);
}

void Flow::reduceGradients(double* paramGrad, const std::vector<Eigen::VectorXd>& chunkGrads, int numChunks) const {
    if (paramGrad == nullptr)
        return;
    Eigen::Map<Eigen::VectorXd> total(paramGrad, static_cast<Eigen::Index>(numParameters));
    for (int c = 0; c < numChunks; c++)
        total += chunkGrads[c];
}

void Flow::contextGradient(const std::vector<Eigen::MatrixXd>& chunkFeatureGrads, Eigen::MatrixXd* gradContext) const {
    if (gradContext == nullptr || getContextDimension() == 0)
        return;
    if (gradContext->rows() != pass.contextValues.rows() || gradContext->cols() != pass.contextValues.cols())
        throw Error("Flow: gradContext is " + shapeString(gradContext->rows(), gradContext->cols()) +
                    ", expected the context's shape " +
                    shapeString(pass.contextValues.rows(), pass.contextValues.cols()));
    for (int c = 0; c < pass.numChunks; c++) {
        const int begin = util::chunkBegin(pass.n, pass.numChunks, c);
        const Eigen::MatrixXd& g = chunkFeatureGrads[c];
        for (Eigen::Index j = 0; j < g.cols(); j++) {
            const Eigen::Index column = pass.broadcastContext ? 0 : begin + j;
            int row = 0;
            for (int v = 0; v < getContextDimension(); v++) {
                if (contextCircular[v]) {
                    const double value = pass.contextValues(v, column);
                    (*gradContext)(v, column) += -std::sin(value) * g(row, j) + std::cos(value) * g(row + 1, j);
                    row += 2;
                } else {
                    (*gradContext)(v, column) += g(row++, j);
                }
            }
        }
    }
}

void Flow::backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                          Eigen::MatrixXd* gradContext, Eigen::MatrixXd* gradBase) {
    if (pass.kind != PassKind::Sample)
        throw Error("Flow::backwardSample: needs a preceding sample() or transformFromBase() with save = true "
                    "(each saved pass can be differentiated once)");
    const int n = pass.n;
    if (gradX.rows() != getDimension() || gradX.cols() != n || gradLogQ.size() != n)
        throw Error("Flow::backwardSample: gradX must be " + shapeString(getDimension(), n) + " and gradLogQ of size " +
                    std::to_string(n) + ", got " + shapeString(gradX.rows(), gradX.cols()) + " and " +
                    std::to_string(gradLogQ.size()));
    const int numChunks = pass.numChunks;
    chunkParamGrads.resize(numChunks);
    std::vector<Eigen::MatrixXd> featureGrads(numChunks);
    if (gradBase != nullptr)
        gradBase->resize(getDimension(), n);
    util::parallelChunks(n, numChunks, [&](int c, int begin, int end) {
        double* grads = nullptr;
        if (paramGrad != nullptr) {
            chunkParamGrads[c].setZero(static_cast<Eigen::Index>(numParameters));
            grads = chunkParamGrads[c].data();
        }
        Eigen::MatrixXd g = gradX.middleCols(begin, end - begin);
        // log q = log p(z) - sum of forward log-dets, and z does not depend on the parameters.
        Eigen::VectorXd gradLogDet = -gradLogQ.segment(begin, end - begin);
        Eigen::MatrixXd* featureGrad = nullptr;
        if (contextFeatureSize > 0) {
            featureGrads[c].setZero(contextFeatureSize, end - begin);
            featureGrad = &featureGrads[c];
        }
        for (int l = getNumLayers() - 1; l >= 0; l--)
            layers[l]->backward(g, gradLogDet.data(), featureGrad, grads == nullptr ? nullptr : grads + parameterOffsets[l],
                                *workspaces[c][l]);
        if (gradBase != nullptr)
            gradBase->middleCols(begin, end - begin) = g;
    });
    reduceGradients(paramGrad, chunkParamGrads, numChunks);
    contextGradient(featureGrads, gradContext);
    pass.kind = PassKind::None;
}

void Flow::backwardLogProb(const Eigen::VectorXd& gradLogQ, double* paramGrad, Eigen::MatrixXd* gradX,
                           Eigen::MatrixXd* gradContext) {
    if (pass.kind != PassKind::LogProb)
        throw Error("Flow::backwardLogProb: needs a preceding logProb() with save = true "
                    "(each saved pass can be differentiated once)");
    const int n = pass.n;
    if (gradLogQ.size() != n)
        throw Error("Flow::backwardLogProb: gradLogQ has size " + std::to_string(gradLogQ.size()) + ", expected " +
                    std::to_string(n));
    const int numChunks = pass.numChunks;
    chunkParamGrads.resize(numChunks);
    std::vector<Eigen::MatrixXd> featureGrads(numChunks);
    if (gradX != nullptr)
        gradX->resize(getDimension(), n);
    util::parallelChunks(n, numChunks, [&](int c, int begin, int end) {
        double* grads = nullptr;
        if (paramGrad != nullptr) {
            chunkParamGrads[c].setZero(static_cast<Eigen::Index>(numParameters));
            grads = chunkParamGrads[c].data();
        }
        const int m = end - begin;
        // log q = log p(z) + sum of inverse log-dets.
        Eigen::MatrixXd g = Eigen::MatrixXd::Zero(getDimension(), m);
        base.accumulateLogProbGradient(pass.base.middleCols(begin, m), gradLogQ.data() + begin, g);
        Eigen::VectorXd gradLogDet = gradLogQ.segment(begin, m);
        Eigen::MatrixXd* featureGrad = nullptr;
        if (contextFeatureSize > 0) {
            featureGrads[c].setZero(contextFeatureSize, m);
            featureGrad = &featureGrads[c];
        }
        for (int l = 0; l < getNumLayers(); l++)
            layers[l]->backward(g, gradLogDet.data(), featureGrad, grads == nullptr ? nullptr : grads + parameterOffsets[l],
                                *workspaces[c][l]);
        if (gradX != nullptr)
            gradX->middleCols(begin, m) = g;
    });
    reduceGradients(paramGrad, chunkParamGrads, numChunks);
    contextGradient(featureGrads, gradContext);
    pass.kind = PassKind::None;
}

} // namespace cgflow::flows
