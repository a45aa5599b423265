#include "cgflow/nn/Activation.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace cgflow::nn {

namespace {

// With e = exp(-|x|) <= 1 nothing overflows, and both sigmoid(x) and sigmoid(-x) = 1 - sigmoid(x)
// come out without the cancellation of computing 1 - s.
struct SigmoidPair {
    double positive; // sigmoid(x)
    double negative; // sigmoid(-x)
};

inline SigmoidPair sigmoidPair(double x) {
    double e = std::exp(-std::abs(x));
    double big = 1.0 / (1.0 + e);
    double small = e / (1.0 + e);
    return x >= 0 ? SigmoidPair{big, small} : SigmoidPair{small, big};
}

inline double sigmoid(double x) {
    return sigmoidPair(x).positive;
}

inline double softplus(double x) {
    return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x)));
}

inline double sigmoidDerivative(double x) {
    double e = std::exp(-std::abs(x));
    return e / ((1.0 + e) * (1.0 + e));
}

// 1 - tanh(x)^2 rounds to 0 long before the true value underflows; 1/cosh^2 written with
// exp(-2|x|) does not.
inline double tanhDerivative(double x) {
    double e = std::exp(-2.0 * std::abs(x));
    return 4.0 * e / ((1.0 + e) * (1.0 + e));
}

inline double siluDerivative(double x) {
    SigmoidPair s = sigmoidPair(x);
    return s.positive * (1.0 + x * s.negative);
}

template <class F>
void applyElementwise(const Eigen::Ref<const Eigen::ArrayXXd>& x, Eigen::Ref<Eigen::ArrayXXd> y, F f,
                      const char* what) {
    if (x.rows() != y.rows() || x.cols() != y.cols())
        throw Error(std::string(what) + ": output array is " + std::to_string(y.rows()) + "x" +
                    std::to_string(y.cols()) + ", expected the input's shape " + std::to_string(x.rows()) + "x" +
                    std::to_string(x.cols()));
    for (Eigen::Index j = 0; j < x.cols(); j++)
        for (Eigen::Index i = 0; i < x.rows(); i++)
            y(i, j) = f(x(i, j));
}

} // namespace

Activation parseActivation(const std::string& name) {
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "identity" || lower == "linear")
        return Activation::Identity;
    if (lower == "tanh")
        return Activation::Tanh;
    if (lower == "sigmoid")
        return Activation::Sigmoid;
    if (lower == "softplus")
        return Activation::Softplus;
    if (lower == "silu" || lower == "swish")
        return Activation::SiLU;
    if (lower == "relu")
        return Activation::ReLU;
    throw Error("unknown activation '" + name +
                "'; expected one of identity, linear, tanh, sigmoid, softplus, silu, swish, relu");
}

std::string activationName(Activation activation) {
    switch (activation) {
    case Activation::Identity: return "identity";
    case Activation::Tanh: return "tanh";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Softplus: return "softplus";
    case Activation::SiLU: return "silu";
    case Activation::ReLU: return "relu";
    }
    throw Error("activationName: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

double activationValue(Activation activation, double x) {
    switch (activation) {
    case Activation::Identity: return x;
    case Activation::Tanh: return std::tanh(x);
    case Activation::Sigmoid: return sigmoid(x);
    case Activation::Softplus: return softplus(x);
    case Activation::SiLU: return x * sigmoid(x);
    case Activation::ReLU: return x > 0 ? x : 0.0;
    }
    throw Error("activationValue: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

double activationDerivative(Activation activation, double x) {
    switch (activation) {
    case Activation::Identity: return 1.0;
    case Activation::Tanh: return tanhDerivative(x);
    case Activation::Sigmoid: return sigmoidDerivative(x);
    case Activation::Softplus: return sigmoid(x);
    case Activation::SiLU: return siluDerivative(x);
    case Activation::ReLU: return x > 0 ? 1.0 : 0.0;
    }
    throw Error("activationDerivative: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

// The switch sits outside the loops so that each loop body is a plain inlinable function.
void activationValue(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                     Eigen::Ref<Eigen::ArrayXXd> y) {
    const char* what = "activationValue";
    switch (activation) {
    case Activation::Identity: applyElementwise(x, y, [](double v) { return v; }, what); return;
    case Activation::Tanh: applyElementwise(x, y, [](double v) { return std::tanh(v); }, what); return;
    case Activation::Sigmoid: applyElementwise(x, y, sigmoid, what); return;
    case Activation::Softplus: applyElementwise(x, y, softplus, what); return;
    case Activation::SiLU: applyElementwise(x, y, [](double v) { return v * sigmoid(v); }, what); return;
    case Activation::ReLU: applyElementwise(x, y, [](double v) { return v > 0 ? v : 0.0; }, what); return;
    }
    throw Error("activationValue: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

void activationDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                          Eigen::Ref<Eigen::ArrayXXd> dydx) {
    const char* what = "activationDerivative";
    switch (activation) {
    case Activation::Identity: applyElementwise(x, dydx, [](double) { return 1.0; }, what); return;
    case Activation::Tanh: applyElementwise(x, dydx, tanhDerivative, what); return;
    case Activation::Sigmoid: applyElementwise(x, dydx, sigmoidDerivative, what); return;
    case Activation::Softplus: applyElementwise(x, dydx, sigmoid, what); return;
    case Activation::SiLU: applyElementwise(x, dydx, siluDerivative, what); return;
    case Activation::ReLU: applyElementwise(x, dydx, [](double v) { return v > 0 ? 1.0 : 0.0; }, what); return;
    }
    throw Error("activationDerivative: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

} // namespace cgflow::nn
