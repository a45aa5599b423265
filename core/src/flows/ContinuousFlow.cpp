#include "cgflow/flows/ContinuousFlow.h"

#include "cgflow/Error.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/flows/RQSpline.h"
#include "cgflow/io/JsonFields.h"

#include <cmath>
#include <limits>

namespace cgflow::flows {

namespace {

// Generous limits for the config reader, so that a few bytes of JSON cannot ask for absurd networks.
constexpr int MaxHiddenLayers = 64;
constexpr int MaxWidth = 1 << 16;
constexpr int MaxTimeEmbedding = 1024;

double frequency(int k) {
    return M_PI * (k + 1) / 2.0;
}

template <class Scalar>
ContinuousFlowWorkspace::Buffers<Scalar>& buffersOf(ContinuousFlowWorkspace& ws);
template <>
ContinuousFlowWorkspace::Buffers<double>& buffersOf<double>(ContinuousFlowWorkspace& ws) {
    return ws.dbl;
}
template <>
ContinuousFlowWorkspace::Buffers<float>& buffersOf<float>(ContinuousFlowWorkspace& ws) {
    return ws.flt;
}

} // namespace

ContinuousFlow::ContinuousFlow(std::vector<bool> inputCircularIn, const ContinuousFlowOptions& optionsIn)
    : Bijection(std::move(inputCircularIn)), options(optionsIn) {
    const int d = getDimension();
    if (d < 1)
        throw Error("ContinuousFlow: the dimension must be >= 1");
    if (static_cast<int>(options.hidden.size()) > MaxHiddenLayers)
        throw Error("ContinuousFlow: \"hidden\" has " + std::to_string(options.hidden.size()) +
                    " layers, more than the limit " + std::to_string(MaxHiddenLayers));
    for (int width : options.hidden)
        if (width < 1 || width > MaxWidth)
            throw Error("ContinuousFlow: \"hidden\" widths must be in [1, " + std::to_string(MaxWidth) + "], got " +
                        std::to_string(width));
    if (options.timeEmbedding < 0 || options.timeEmbedding % 2 != 0 || options.timeEmbedding > MaxTimeEmbedding)
        throw Error("ContinuousFlow: \"time_embedding\" must be even and in [0, " + std::to_string(MaxTimeEmbedding) +
                    "], got " + std::to_string(options.timeEmbedding));
    if (options.activation == nn::Activation::ReLU)
        throw Error("ContinuousFlow: \"activation\" relu has no derivative at 0 and a zero second derivative, so "
                    "the vector field would be only piecewise smooth; use silu, softplus, tanh or sigmoid");
    options.ode.check("ContinuousFlow");
    int row = 0;
    for (int j = 0; j < d; j++) {
        featureOfDimension.push_back(row);
        row += getInputCircular()[j] ? 2 : 1;
    }
    featureSize = row + options.timeEmbedding;
    std::vector<int> widths = {featureSize};
    widths.insert(widths.end(), options.hidden.begin(), options.hidden.end());
    widths.push_back(d);
    double count = 0;
    for (size_t l = 0; l + 1 < widths.size(); l++)
        count += (static_cast<double>(widths[l]) + 1.0) * widths[l + 1];
    ParameterBudget::charge(count, "continuous_flow (" + std::to_string(options.hidden.size()) + " hidden layers)");
    network = nn::MLP(widths, options.activation, nn::Activation::Identity);
}

nlohmann::json ContinuousFlow::getConfig() const {
    return {{"type", getTypeName()},
            {"hidden", options.hidden},
            {"time_embedding", options.timeEmbedding},
            {"activation", nn::activationName(options.activation)},
            {"atol", options.ode.absoluteTolerance},
            {"rtol", options.ode.relativeTolerance},
            {"initial_step", options.ode.initialStep},
            {"max_steps", options.ode.maxSteps}};
}

std::unique_ptr<ContinuousFlow> ContinuousFlow::fromConfig(const nlohmann::json& config,
                                                           std::vector<bool> inputCircular) {
    const std::string where = "flow config: continuous_flow layer";
    io::checkKeys(config, {"type", "hidden", "time_embedding", "activation", "atol", "rtol", "initial_step", "max_steps"},
                  where);
    ContinuousFlowOptions options;
    if (config.contains("hidden")) {
        if (!config["hidden"].is_array() || config["hidden"].size() > static_cast<size_t>(MaxHiddenLayers))
            throw Error(where + ": \"hidden\" must be a list of at most " + std::to_string(MaxHiddenLayers) +
                        " layer widths");
        options.hidden = io::readIntArray(config, "hidden", where);
    }
    options.timeEmbedding = io::readInt(config, "time_embedding", options.timeEmbedding, where);
    if (config.contains("activation")) {
        if (!config["activation"].is_string())
            throw Error(where + ": \"activation\" must be a string");
        options.activation = nn::parseActivation(config["activation"].get<std::string>());
    }
    options.ode.absoluteTolerance = io::readNumber(config, "atol", options.ode.absoluteTolerance, where);
    options.ode.relativeTolerance = io::readNumber(config, "rtol", options.ode.relativeTolerance, where);
    options.ode.initialStep = io::readNumber(config, "initial_step", options.ode.initialStep, where);
    options.ode.maxSteps = io::readInt(config, "max_steps", options.ode.maxSteps, where);
    return std::make_unique<ContinuousFlow>(std::move(inputCircular), options);
}

void ContinuousFlow::setOdeOptions(const OdeOptions& ode) {
    ode.check("ContinuousFlow::setOdeOptions");
    options.ode = ode;
}

void ContinuousFlow::setParameters(const double* in) {
    network.setParameters(in);
    if (precision == nn::Precision::Mixed)
        buildPrecisionCopies();
}

void ContinuousFlow::initializeParameters(uint64_t seed) {
    network.initializeParameters(seed);
    if (precision == nn::Precision::Mixed)
        buildPrecisionCopies();
}

void ContinuousFlow::setPrecision(nn::Precision p) {
    precision = p;
    if (precision == nn::Precision::Mixed) {
        buildPrecisionCopies();
    } else {
        weightsSingle.clear();
        biasesSingle.clear();
    }
}

void ContinuousFlow::buildPrecisionCopies() {
    weightsSingle.clear();
    biasesSingle.clear();
    for (int l = 0; l < network.getNumLayers(); l++) {
        weightsSingle.push_back(network.weight(l).cast<float>());
        biasesSingle.push_back(network.bias(l).cast<float>());
    }
}

std::unique_ptr<BijectionWorkspace> ContinuousFlow::createWorkspace() const {
    return std::make_unique<ContinuousFlowWorkspace>();
}

void ContinuousFlow::buildFeatures(const Eigen::Ref<const Eigen::VectorXd>& t,
                                   const Eigen::Ref<const Eigen::MatrixXd>& x, Eigen::MatrixXd& features) const {
    const int d = getDimension();
    const Eigen::Index n = x.cols();
    features.resize(featureSize, n);
    const std::vector<bool>& circular = getInputCircular();
    const int timeRow = featureSize - options.timeEmbedding;
    for (Eigen::Index i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) {
            const int row = featureOfDimension[j];
            if (circular[j]) {
                features(row, i) = std::cos(x(j, i));
                features(row + 1, i) = std::sin(x(j, i));
            } else {
                features(row, i) = x(j, i);
            }
        }
        for (int k = 0; k < options.timeEmbedding / 2; k++) {
            features(timeRow + 2 * k, i) = std::cos(frequency(k) * t[i]);
            features(timeRow + 2 * k + 1, i) = std::sin(frequency(k) * t[i]);
        }
    }
}

template <class Scalar>
void ContinuousFlow::velocityImpl(const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& x,
                                  Eigen::Ref<Eigen::MatrixXd> v, double* divergence,
                                  ContinuousFlowWorkspace& ws) const {
    using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
    constexpr bool single = std::is_same_v<Scalar, float>;
    auto W = [&](int l) -> const Matrix& {
        if constexpr (single)
            return weightsSingle[l];
        else
            return network.weight(l);
    };
    auto B = [&](int l) -> const Eigen::Matrix<Scalar, Eigen::Dynamic, 1>& {
        if constexpr (single)
            return biasesSingle[l];
        else
            return network.bias(l);
    };
    auto& b = buffersOf<Scalar>(ws);
    const int d = getDimension();
    const Eigen::Index n = x.cols();
    const int numLayers = network.getNumLayers();
    const std::vector<bool>& circular = getInputCircular();

    buildFeatures(t, x, ws.features);
    b.activation = ws.features.template cast<Scalar>();
    if (divergence != nullptr) {
        // R{z_0}: the first layer's pre-activation differentiated along each input dimension. A real
        // dimension is one feature (its weight column); a circular one enters as (cos, sin), whose
        // derivative is (-sin, cos).
        const Matrix& W0 = W(0);
        b.tangent.resize(W0.rows(), static_cast<Eigen::Index>(d) * n);
        for (Eigen::Index i = 0; i < n; i++)
            for (int j = 0; j < d; j++) {
                const int row = featureOfDimension[j];
                auto column = b.tangent.col(i * d + j);
                if (circular[j])
                    column = W0.col(row) * static_cast<Scalar>(-std::sin(x(j, i))) +
                             W0.col(row + 1) * static_cast<Scalar>(std::cos(x(j, i)));
                else
                    column = W0.col(row);
            }
        Eigen::Map<Eigen::VectorXd>(divergence, n).setZero();
    }
    for (int l = 0; l < numLayers; l++) {
        b.pre.noalias() = W(l) * b.activation;
        b.pre.colwise() += B(l);
        if (l + 1 == numLayers)
            break;
        b.derivative.resize(b.pre.rows(), n);
        nn::activationDerivative(options.activation, b.pre.array(), b.derivative.array());
        b.activation.resize(b.pre.rows(), n);
        nn::activationValue(options.activation, b.pre.array(), b.activation.array());
        if (divergence == nullptr)
            continue;
        for (Eigen::Index i = 0; i < n; i++)
            b.tangent.middleCols(i * d, d).array().colwise() *= b.derivative.col(i).array();
        if (l + 2 < numLayers) {
            b.tangentNext.noalias() = W(l + 1) * b.tangent;
            b.tangent.swap(b.tangentNext);
        } else {
            // The output layer: only the diagonal of W_out R{a} is needed, one dot product per entry.
            const Matrix& Wout = W(l + 1);
            for (Eigen::Index i = 0; i < n; i++) {
                double sum = 0;
                for (int j = 0; j < d; j++)
                    sum += static_cast<double>(Wout.row(j).dot(b.tangent.col(i * d + j)));
                divergence[i] = sum;
            }
        }
    }
    if (divergence != nullptr && numLayers == 1)
        for (Eigen::Index i = 0; i < n; i++) {
            double sum = 0;
            for (int j = 0; j < d; j++)
                sum += static_cast<double>(b.tangent(j, i * d + j));
            divergence[i] = sum;
        }
    v = b.pre.template cast<double>();
}

void ContinuousFlow::velocity(const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& x,
                              Eigen::Ref<Eigen::MatrixXd> v, double* divergence, ContinuousFlowWorkspace& ws) const {
    if (x.rows() != getDimension() || t.size() != x.cols() || v.rows() != x.rows() || v.cols() != x.cols())
        throw Error("ContinuousFlow::velocity: x must be (" + std::to_string(getDimension()) +
                    " x n), t of length n and v of x's shape; got x " + std::to_string(x.rows()) + " x " +
                    std::to_string(x.cols()) + ", t " + std::to_string(t.size()) + ", v " +
                    std::to_string(v.rows()) + " x " + std::to_string(v.cols()));
    if (precision == nn::Precision::Mixed)
        velocityImpl<float>(t, x, v, divergence, ws);
    else
        velocityImpl<double>(t, x, v, divergence, ws);
}

double ContinuousFlow::flowMatchingLoss(const Eigen::Ref<const Eigen::VectorXd>& t,
                                        const Eigen::Ref<const Eigen::MatrixXd>& x,
                                        const Eigen::Ref<const Eigen::MatrixXd>& target, double gradScale,
                                        double* paramGrad, ContinuousFlowWorkspace& ws) const {
    if (x.rows() != getDimension() || t.size() != x.cols() || target.rows() != x.rows() || target.cols() != x.cols())
        throw Error("ContinuousFlow::flowMatchingLoss: x and target must be (" + std::to_string(getDimension()) +
                    " x n) and t of length n");
    buildFeatures(t, x, ws.features);
    network.forward(ws.features, ws.velocity, ws.network);
    ws.target = ws.velocity - target;
    const double loss = ws.target.squaredNorm();
    if (paramGrad != nullptr) {
        ws.target *= 2.0 * gradScale;
        network.backward(ws.target, ws.network, nullptr, paramGrad);
    }
    return loss;
}

void ContinuousFlow::apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                           double* logDet, BijectionWorkspace& wsBase, bool /*save*/) const {
    checkApplyArguments(data, context, logDet);
    if (precision == nn::Precision::Mixed && weightsSingle.size() != static_cast<size_t>(network.getNumLayers()))
        throw Error("ContinuousFlow: the float copies of the weights are missing");
    auto& ws = workspaceAs<ContinuousFlowWorkspace>(wsBase, "ContinuousFlow");
    const int d = getDimension();
    const Eigen::Index n = data.cols();
    ws.state.resize(d + 1, n);
    ws.state.topRows(d) = data;
    ws.state.row(d).setZero();
    // The state is (x, log-det): dx/dt = v, d(log-det)/dt = div v; integrated from t0 to t1 the
    // last row is the log|det J| of the map applied (negative of the forward one for Inverse).
    auto field = [&](const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& y,
                     Eigen::Ref<Eigen::MatrixXd> dydt) {
        ws.divergence.resize(y.cols());
        velocity(t, y.topRows(d), dydt.topRows(d), ws.divergence.data(), ws);
        dydt.row(d) = ws.divergence.transpose();
    };
    OdeStatistics stats;
    const bool forward = direction == Direction::Forward;
    integrateDormandPrince(field, ws.state, forward ? 0.0 : 1.0, forward ? 1.0 : 0.0, options.ode, ws.ode, &stats);
    const std::vector<bool>& circular = getInputCircular();
    for (Eigen::Index i = 0; i < n; i++) {
        for (int j = 0; j < d; j++)
            data(j, i) = circular[j] ? RQSpline::wrapAngle(ws.state(j, i)) : ws.state(j, i);
        logDet[i] += ws.state(d, i);
    }
    countSamples += stats.samples;
    countEvaluations += stats.evaluations;
    countAccepted += stats.accepted;
    countRejected += stats.rejected;
    countFailed += stats.failed;
}

void ContinuousFlow::backward(Eigen::Ref<Eigen::MatrixXd>, const double*, Eigen::MatrixXd*, double*,
                              BijectionWorkspace&) const {
    throw Error("ContinuousFlow: gradients through the ODE solution are not implemented; a continuous flow is "
                "trained by conditional flow matching (ModelTrainer::flowMatchingStep), not by reverse or forward KL");
}

OdeStatistics ContinuousFlow::getStatistics() const {
    OdeStatistics s;
    s.samples = countSamples;
    s.evaluations = countEvaluations;
    s.accepted = countAccepted;
    s.rejected = countRejected;
    s.failed = countFailed;
    return s;
}

void ContinuousFlow::resetStatistics() {
    countSamples = 0;
    countEvaluations = 0;
    countAccepted = 0;
    countRejected = 0;
    countFailed = 0;
}

} // namespace cgflow::flows
