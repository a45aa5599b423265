#include "cgflow/flows/CouplingLayer.h"

#include "cgflow/Error.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/io/JsonFields.h"

#include <cmath>
#include <limits>
#include <string>

namespace cgflow::flows {

void Bijection::checkApplyArguments(const Eigen::Ref<Eigen::MatrixXd>& data, const Eigen::MatrixXd* context,
                                    const double* logDet) const {
    const std::string name = getTypeName();
    if (data.rows() != getDimension())
        throw Error(name + ": data has " + std::to_string(data.rows()) + " rows, expected the dimension " +
                    std::to_string(getDimension()) + " (one sample per column)");
    if (logDet == nullptr && data.cols() > 0)
        throw Error(name + ": logDet must not be null");
    const int contextSize = getContextFeatureSize();
    if (contextSize > 0) {
        if (context == nullptr)
            throw Error(name + ": this layer is conditional and needs a context (" + std::to_string(contextSize) +
                        " context features per sample)");
        if (context->rows() != contextSize || context->cols() != data.cols())
            throw Error(name + ": context is " + std::to_string(context->rows()) + "x" + std::to_string(context->cols()) +
                        ", expected " + std::to_string(contextSize) + "x" + std::to_string(data.cols()));
    }
}

CouplingLayer::CouplingLayer(const char* nameIn, std::vector<bool> inputCircularIn, const CouplingOptions& options,
                             int rawPerReal, int rawPerCircular)
    : Bijection(std::move(inputCircularIn)), name(nameIn), transformed(options.transformed),
      contextFeatureSize(options.contextFeatureSize) {
    const int dim = getDimension();
    if (dim < 1)
        throw Error(std::string(name) + ": the dimension must be >= 1");
    if (static_cast<int>(transformed.size()) != dim)
        throw Error(std::string(name) + ": the transformed mask has " + std::to_string(transformed.size()) +
                    " entries, expected the dimension " + std::to_string(dim));
    if (contextFeatureSize < 0)
        throw Error(std::string(name) + ": contextFeatureSize must be >= 0, got " + std::to_string(contextFeatureSize));
    const std::vector<bool>& circular = getInputCircular();
    for (int pass = 0; pass < 2; pass++)
        for (int d = 0; d < dim; d++)
            if (transformed[d] && circular[d] == (pass == 1)) {
                transformedDims.push_back(d);
                (pass == 0 ? numReal : numCircular)++;
            }
    if (transformedDims.empty())
        throw Error(std::string(name) + ": the transformed mask selects no dimension");
    for (int d = 0; d < dim; d++)
        if (!transformed[d]) {
            passDims.push_back(d);
            conditionerInputSize += circular[d] ? 2 : 1;
        }
    conditionerInputSize += contextFeatureSize;
    // Counted in double before anything is allocated (ParameterBudget: decoders bound it by the file).
    const double raw = static_cast<double>(numReal) * rawPerReal + static_cast<double>(numCircular) * rawPerCircular;
    if (raw > std::numeric_limits<int>::max())
        throw Error(std::string(name) + ": " + std::to_string(transformedDims.size()) +
                    " transformed dimensions need too many spline/affine parameters per sample");
    rawSize = numReal * rawPerReal + numCircular * rawPerCircular;
    if (conditionerInputSize > 0) {
        if (options.hiddenSize < 1 || options.numBlocks < 0)
            throw Error(std::string(name) + ": the conditioner needs hiddenSize >= 1 and numBlocks >= 0, got " +
                        std::to_string(options.hiddenSize) + " and " + std::to_string(options.numBlocks));
        const double hidden = options.hiddenSize;
        ParameterBudget::charge(hidden * (conditionerInputSize + 1) + 2.0 * options.numBlocks * hidden * (hidden + 1) +
                                    raw * (hidden + 1),
                                std::string(name) + " (hidden " + std::to_string(options.hiddenSize) + ", num_blocks " +
                                    std::to_string(options.numBlocks) + ")");
        conditioner = nn::ResidualMLP(conditionerInputSize, options.hiddenSize, rawSize, options.numBlocks,
                                      options.activation, true);
    } else {
        ParameterBudget::charge(raw, std::string(name));
        freeRaw = Eigen::VectorXd::Zero(rawSize);
    }
}

const nn::ResidualMLP& CouplingLayer::getConditioner() const {
    if (!hasConditioner())
        throw Error(std::string(name) + ": this layer has free parameters, not a conditioner network");
    return conditioner;
}

size_t CouplingLayer::getNumParameters() const {
    return hasConditioner() ? conditioner.getNumParameters() : static_cast<size_t>(rawSize);
}

void CouplingLayer::getParameters(double* out) const {
    if (hasConditioner())
        conditioner.getParameters(out);
    else
        Eigen::Map<Eigen::VectorXd>(out, rawSize) = freeRaw;
}

void CouplingLayer::setParameters(const double* in) {
    if (hasConditioner())
        conditioner.setParameters(in);
    else
        freeRaw = Eigen::Map<const Eigen::VectorXd>(in, rawSize);
}

void CouplingLayer::initializeParameters(uint64_t seed) {
    Eigen::VectorXd identity(rawSize);
    identityRawParameters(identity.data());
    if (hasConditioner()) {
        conditioner.initializeParameters(seed);
        std::vector<double> params = conditioner.getParameters();
        // The output bias is the last block of the flat parameters.
        Eigen::Map<Eigen::VectorXd>(params.data() + params.size() - rawSize, rawSize) = identity;
        conditioner.setParameters(params);
    } else {
        freeRaw = identity;
    }
}

void CouplingLayer::setPrecision(nn::Precision precision) {
    if (hasConditioner())
        conditioner.setPrecision(precision);
}

std::unique_ptr<BijectionWorkspace> CouplingLayer::createWorkspace() const {
    return std::make_unique<CouplingWorkspace>();
}

void CouplingLayer::buildFeatures(const Eigen::Ref<Eigen::MatrixXd>& data, const Eigen::MatrixXd* context,
                                  Eigen::MatrixXd& features) const {
    const Eigen::Index n = data.cols();
    features.resize(conditionerInputSize, n);
    const std::vector<bool>& circular = getInputCircular();
    for (Eigen::Index j = 0; j < n; j++) {
        int row = 0;
        for (int d : passDims) {
            const double v = data(d, j);
            if (circular[d]) {
                features(row++, j) = std::cos(v);
                features(row++, j) = std::sin(v);
            } else {
                features(row++, j) = v;
            }
        }
    }
    if (contextFeatureSize > 0)
        features.bottomRows(contextFeatureSize) = *context;
}

void CouplingLayer::apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                          double* logDet, BijectionWorkspace& wsBase, bool save) const {
    checkApplyArguments(data, context, logDet);
    CouplingWorkspace& ws = workspaceAs<CouplingWorkspace>(wsBase, name);
    const Eigen::Index n = data.cols();
    ws.savedBatch = -1;
    if (hasConditioner()) {
        buildFeatures(data, context, ws.features);
        conditioner.forward(ws.features, ws.raw, ws.conditioner);
    } else {
        ws.raw = freeRaw.replicate(1, n);
    }
    const int numT = static_cast<int>(transformedDims.size());
    ws.in.resize(numT, n);
    ws.out.resize(numT, n);
    for (Eigen::Index j = 0; j < n; j++)
        for (int t = 0; t < numT; t++)
            ws.in(t, j) = data(transformedDims[t], j);
    transform(direction, ws, logDet);
    for (Eigen::Index j = 0; j < n; j++)
        for (int t = 0; t < numT; t++)
            data(transformedDims[t], j) = ws.out(t, j);
    if (save) {
        ws.direction = direction;
        ws.savedBatch = n;
    }
}

void CouplingLayer::backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                             double* paramGrad, BijectionWorkspace& wsBase) const {
    CouplingWorkspace& ws = workspaceAs<CouplingWorkspace>(wsBase, name);
    const Eigen::Index n = ws.savedBatch;
    if (n < 0)
        throw Error(std::string(name) + ": backward() needs a preceding apply(..., save = true) with this workspace");
    if (grad.rows() != getDimension() || grad.cols() != n)
        throw Error(std::string(name) + ": grad is " + std::to_string(grad.rows()) + "x" + std::to_string(grad.cols()) +
                    ", expected " + std::to_string(getDimension()) + "x" + std::to_string(n));
    if (gradLogDet == nullptr && n > 0)
        throw Error(std::string(name) + ": gradLogDet must not be null");
    if (gradContext != nullptr && contextFeatureSize > 0 &&
        (gradContext->rows() != contextFeatureSize || gradContext->cols() != n))
        throw Error(std::string(name) + ": gradContext must be " + std::to_string(contextFeatureSize) + "x" +
                    std::to_string(n));
    const int numT = static_cast<int>(transformedDims.size());
    ws.gradOut.resize(numT, n);
    for (Eigen::Index j = 0; j < n; j++)
        for (int t = 0; t < numT; t++)
            ws.gradOut(t, j) = grad(transformedDims[t], j);
    transformBackward(ws, gradLogDet);
    for (Eigen::Index j = 0; j < n; j++)
        for (int t = 0; t < numT; t++)
            grad(transformedDims[t], j) = ws.gradIn(t, j);

    if (!hasConditioner()) {
        if (paramGrad != nullptr)
            Eigen::Map<Eigen::VectorXd>(paramGrad, rawSize) += ws.gradRaw.rowwise().sum();
        return;
    }
    conditioner.backward(ws.gradRaw, ws.conditioner, &ws.gradFeatures, paramGrad);
    // The pass-through dimensions reach the output directly (grad already holds that part) and
    // through the conditioner's features.
    const std::vector<bool>& circular = getInputCircular();
    for (Eigen::Index j = 0; j < n; j++) {
        int row = 0;
        for (int d : passDims) {
            if (circular[d]) {
                const double c = ws.features(row, j), s = ws.features(row + 1, j);
                grad(d, j) += -s * ws.gradFeatures(row, j) + c * ws.gradFeatures(row + 1, j);
                row += 2;
            } else {
                grad(d, j) += ws.gradFeatures(row++, j);
            }
        }
    }
    if (gradContext != nullptr && contextFeatureSize > 0)
        *gradContext += ws.gradFeatures.bottomRows(contextFeatureSize);
}

nlohmann::json CouplingLayer::couplingConfig() const {
    nlohmann::json indices = nlohmann::json::array();
    for (int d = 0; d < getDimension(); d++)
        if (transformed[d])
            indices.push_back(d);
    nlohmann::json config = {{"type", getTypeName()}, {"transformed", indices}, {"context_features", contextFeatureSize}};
    if (hasConditioner()) {
        config["hidden"] = conditioner.getHiddenSize();
        config["num_blocks"] = conditioner.getNumBlocks();
        config["activation"] = nn::activationName(conditioner.getActivation());
    }
    return config;
}

namespace {

} // namespace

CouplingOptions CouplingLayer::parseCouplingOptions(const nlohmann::json& config, int dimension, const char* layerType) {
    CouplingOptions options;
    if (!config.contains("transformed") || !config["transformed"].is_array())
        throw Error(std::string(layerType) + " config: \"transformed\" must be an array of dimension indices");
    options.transformed.assign(dimension, false);
    for (const auto& v : config["transformed"]) {
        if (!io::isInt(v) || v.get<int>() < 0 || v.get<int>() >= dimension)
            throw Error(std::string(layerType) + " config: \"transformed\" entries must be integers in [0, " +
                        std::to_string(dimension) + ")");
        if (options.transformed[v.get<int>()])
            throw Error(std::string(layerType) + " config: dimension " + std::to_string(v.get<int>()) +
                        " is listed twice in \"transformed\"");
        options.transformed[v.get<int>()] = true;
    }
    options.contextFeatureSize = io::readInt(config, "context_features", 0, std::string(layerType) + " config");
    options.hiddenSize = io::readInt(config, "hidden", options.hiddenSize, std::string(layerType) + " config");
    options.numBlocks = io::readInt(config, "num_blocks", options.numBlocks, std::string(layerType) + " config");
    if (config.contains("activation")) {
        if (!config["activation"].is_string())
            throw Error(std::string(layerType) + " config: \"activation\" must be a string");
        options.activation = nn::parseActivation(config["activation"].get<std::string>());
    }
    return options;
}

} // namespace cgflow::flows
