#ifndef CGFLOW_NN_ACTIVATION_H_
#define CGFLOW_NN_ACTIVATION_H_

#include <Eigen/Core>
#include <string>

namespace cgflow::nn {

enum class Activation { Identity, Tanh, Sigmoid, Softplus, SiLU, ReLU };

/**
 * Parse an activation name case-insensitively. Accepts "identity", "linear" (= identity),
 * "tanh", "sigmoid", "softplus", "silu", "swish" (= silu) and "relu"; anything else throws
 * Error listing the valid names.
 */
Activation parseActivation(const std::string& name);

/** The canonical lowercase name, which parseActivation() maps back to the same value. */
std::string activationName(Activation activation);

/** f(x). Sigmoid and softplus are evaluated in forms that stay finite and accurate for any |x|. */
double activationValue(Activation activation, double x);

/** f'(x), in forms that do not cancel catastrophically for large |x|. ReLU'(0) is taken as 0. */
double activationDerivative(Activation activation, double x);

/**
 * f''(x), exactly: identity'' = relu'' = 0 (ReLU'' is 0 everywhere it exists; at 0 it is taken as
 * 0 as for the first derivative), tanh'' = -2 t (1 - t^2), sigmoid'' = s (1 - s)(1 - 2s),
 * softplus'' = s (1 - s), silu'' = s (1 - s)(2 + x (1 - 2s)), with t = tanh(x) and s = sigmoid(x),
 * each written on exp(-|x|) so that nothing overflows or cancels for large |x|. Force matching
 * needs it: the parameter gradient of a loss on dU/dx passes through f''.
 */
double activationSecondDerivative(Activation activation, double x);

/**
 * Elementwise y = f(x). y must already have the shape of x (else Error); x and y may be the same
 * array. Vectorized with Eigen's exp, so results may differ from the scalar version in the last bit.
 */
void activationValue(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x, Eigen::Ref<Eigen::ArrayXXd> y);

/** Elementwise dydx = f'(x). dydx must already have the shape of x (else Error); they may be the same array. */
void activationDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                          Eigen::Ref<Eigen::ArrayXXd> dydx);

/** Elementwise d2ydx2 = f''(x). d2ydx2 must already have the shape of x (else Error); they may be the same array. */
void activationSecondDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXd>& x,
                                Eigen::Ref<Eigen::ArrayXXd> d2ydx2);

/**
 * The same two (value and first derivative) in float32 (used by mixed-precision networks): the same numerically stable forms,
 * evaluated in float with Eigen's vectorized float exp, log1p and tanh.
 */
void activationValue(Activation activation, const Eigen::Ref<const Eigen::ArrayXXf>& x, Eigen::Ref<Eigen::ArrayXXf> y);
void activationDerivative(Activation activation, const Eigen::Ref<const Eigen::ArrayXXf>& x,
                          Eigen::Ref<Eigen::ArrayXXf> dydx);

} // namespace cgflow::nn

#endif
