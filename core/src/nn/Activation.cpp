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

// 1 - 2 sigmoid(x) = sigmoid(-x) - sigmoid(x): both terms from the pair, so no 1 - s cancels.
inline double oneMinusTwoSigmoid(double x) {
    SigmoidPair s = sigmoidPair(x);
    return s.negative - s.positive;
}

inline double tanhSecondDerivative(double x) {
    return -2.0 * std::tanh(x) * tanhDerivative(x);
}

inline double siluSecondDerivative(double x) {
    return sigmoidDerivative(x) * (2.0 + x * oneMinusTwoSigmoid(x));
}

template <class Array>
void checkSameShape(const Eigen::Ref<const Array>& x, const Eigen::Ref<Array>& y, const char* what) {
    if (x.rows() != y.rows() || x.cols() != y.cols())
        throw Error(std::string(what) + ": output array is " + std::to_string(y.rows()) + "x" +
                    std::to_string(y.cols()) + ", expected the input's shape " + std::to_string(x.rows()) + "x" +
                    std::to_string(x.cols()));
}

// The array versions run in fixed-size chunks so that Eigen's vectorized exp can be used with a
// stack buffer for exp(-|x|): no heap allocation, exp evaluated once per element, and x may
// alias y because each chunk reads x before writing y.
constexpr Eigen::Index chunkSize = 64;
template <class Scalar>
using Chunk = Eigen::Array<Scalar, Eigen::Dynamic, 1, 0, chunkSize, 1>;

template <class Scalar, class Kernel>
void applyChunked(const Eigen::Ref<const Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& x,
                  Eigen::Ref<Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>> y, Kernel kernel, const char* what) {
    checkSameShape<Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>>(x, y, what);
    Chunk<Scalar> e;
    for (Eigen::Index j = 0; j < x.cols(); j++)
        for (Eigen::Index start = 0; start < x.rows(); start += chunkSize) {
            const Eigen::Index n = std::min(chunkSize, x.rows() - start);
            auto xs = x.col(j).segment(start, n);
            auto ys = y.col(j).segment(start, n);
            e = (-xs.abs()).exp();
            kernel(xs, ys, e);
        }
}

// One implementation for double and float (the float one serves mixed-precision networks), with
// the same formulas as the scalar versions, written on e = exp(-|x|) <= 1 so nothing overflows.
template <class Scalar>
void activationValueArray(Activation activation,
                          const Eigen::Ref<const Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& x,
                          Eigen::Ref<Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>> y) {
    using Array = Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
    using E = Chunk<Scalar>;
    const Scalar zero(0), one(1);
    const char* what = "activationValue";
    switch (activation) {
    case Activation::Identity:
        checkSameShape<Array>(x, y, what);
        y = x;
        return;
    case Activation::Tanh:
        checkSameShape<Array>(x, y, what);
        y = x.tanh();
        return;
    case Activation::ReLU:
        checkSameShape<Array>(x, y, what);
        y = x.max(zero);
        return;
    case Activation::Sigmoid:
        applyChunked<Scalar>(x, y, [&](const auto& xs, auto& ys, const E& e) {
            ys = (xs >= zero).select((one + e).inverse(), e / (one + e));
        }, what);
        return;
    case Activation::Softplus:
        applyChunked<Scalar>(x, y, [&](const auto& xs, auto& ys, const E& e) { ys = xs.max(zero) + e.log1p(); }, what);
        return;
    case Activation::SiLU:
        applyChunked<Scalar>(x, y, [&](const auto& xs, auto& ys, const E& e) {
            ys = xs * (xs >= zero).select((one + e).inverse(), e / (one + e));
        }, what);
        return;
    }
    throw Error("activationValue: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

template <class Scalar>
void activationDerivativeArray(Activation activation,
                               const Eigen::Ref<const Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& x,
                               Eigen::Ref<Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>> dydx) {
    using Array = Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
    using E = Chunk<Scalar>;
    const Scalar zero(0), one(1), four(4);
    const char* what = "activationDerivative";
    switch (activation) {
    case Activation::Identity:
        checkSameShape<Array>(x, dydx, what);
        dydx.setOnes();
        return;
    case Activation::ReLU:
        checkSameShape<Array>(x, dydx, what);
        dydx = (x > zero).template cast<Scalar>();
        return;
    case Activation::Tanh:
        applyChunked<Scalar>(x, dydx, [&](const auto&, auto& ds, const E& e) {
            // e^2 = exp(-2|x|)
            ds = four * e.square() / (one + e.square()).square();
        }, what);
        return;
    case Activation::Sigmoid:
        applyChunked<Scalar>(x, dydx, [&](const auto&, auto& ds, const E& e) { ds = e / (one + e).square(); }, what);
        return;
    case Activation::Softplus:
        applyChunked<Scalar>(x, dydx, [&](const auto& xs, auto& ds, const E& e) {
            ds = (xs >= zero).select((one + e).inverse(), e / (one + e));
        }, what);
        return;
    case Activation::SiLU:
        applyChunked<Scalar>(x, dydx, [&](const auto& xs, auto& ds, const E& e) {
            // s(x) (1 + x s(-x)), with s(x) and s(-x) each taken from the side that does not cancel.
            ds = (xs >= zero).select((one + xs * e / (one + e)) / (one + e), e * (one + xs / (one + e)) / (one + e));
        }, what);
        return;
    }
    throw Error("activationDerivative: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

void activationSecondDerivativeArray(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                                     Eigen::Ref<Eigen::ArrayXXd> d2ydx2) {
    using E = Chunk<double>;
    const char* what = "activationSecondDerivative";
    switch (activation) {
    case Activation::Identity:
    case Activation::ReLU:
        checkSameShape<Eigen::ArrayXXd>(x, d2ydx2, what);
        d2ydx2.setZero();
        return;
    case Activation::Tanh:
        applyChunked<double>(x, d2ydx2, [&](const auto& xs, auto& ds, const E& e) {
            // With e2 = exp(-2|x|): tanh = sign(x) (1 - e2) / (1 + e2), tanh' = 4 e2 / (1 + e2)^2.
            const E e2 = e.square();
            const E t = (xs >= 0.0).select((1.0 - e2) / (1.0 + e2), (e2 - 1.0) / (1.0 + e2));
            ds = -2.0 * t * (4.0 * e2 / (1.0 + e2).square());
        }, what);
        return;
    case Activation::Sigmoid:
        applyChunked<double>(x, d2ydx2, [&](const auto& xs, auto& ds, const E& e) {
            // s (1 - s) = e / (1 + e)^2; 1 - 2s = s(-x) - s(x) = -sign(x) (1 - e) / (1 + e).
            const E oneMinusTwoS = (xs >= 0.0).select((e - 1.0) / (1.0 + e), (1.0 - e) / (1.0 + e));
            ds = e / (1.0 + e).square() * oneMinusTwoS;
        }, what);
        return;
    case Activation::Softplus:
        applyChunked<double>(x, d2ydx2, [&](const auto&, auto& ds, const E& e) { ds = e / (1.0 + e).square(); }, what);
        return;
    case Activation::SiLU:
        applyChunked<double>(x, d2ydx2, [&](const auto& xs, auto& ds, const E& e) {
            const E oneMinusTwoS = (xs >= 0.0).select((e - 1.0) / (1.0 + e), (1.0 - e) / (1.0 + e));
            ds = e / (1.0 + e).square() * (2.0 + xs * oneMinusTwoS);
        }, what);
        return;
    }
    throw Error("activationSecondDerivative: invalid Activation value " + std::to_string(static_cast<int>(activation)));
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

double activationSecondDerivative(Activation activation, double x) {
    switch (activation) {
    case Activation::Identity: return 0.0;
    case Activation::Tanh: return tanhSecondDerivative(x);
    case Activation::Sigmoid: return sigmoidDerivative(x) * oneMinusTwoSigmoid(x);
    case Activation::Softplus: return sigmoidDerivative(x);
    case Activation::SiLU: return siluSecondDerivative(x);
    case Activation::ReLU: return 0.0;
    }
    throw Error("activationSecondDerivative: invalid Activation value " + std::to_string(static_cast<int>(activation)));
}

void activationValue(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                     Eigen::Ref<Eigen::ArrayXXd> y) {
    activationValueArray<double>(activation, x, y);
}

void activationValue(Activation activation, const Eigen::Ref<const Eigen::ArrayXXf>& x,
                     Eigen::Ref<Eigen::ArrayXXf> y) {
    activationValueArray<float>(activation, x, y);
}

void activationDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                          Eigen::Ref<Eigen::ArrayXXd> dydx) {
    activationDerivativeArray<double>(activation, x, dydx);
}

void activationDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXf>& x,
                          Eigen::Ref<Eigen::ArrayXXf> dydx) {
    activationDerivativeArray<float>(activation, x, dydx);
}

void activationSecondDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                                Eigen::Ref<Eigen::ArrayXXd> d2ydx2) {
    activationSecondDerivativeArray(activation, x, d2ydx2);
}

} // namespace cgflow::nn
