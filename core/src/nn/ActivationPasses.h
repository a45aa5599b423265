#ifndef CGFLOW_NN_ACTIVATIONPASSES_H_
#define CGFLOW_NN_ACTIVATIONPASSES_H_

// Internal to the core's networks: the elementwise derivative passes of a backward pass, shared by
// the residual conditioners and the mixed-precision ensemble, in double or float.

#include "cgflow/nn/Activation.h"

#include <Eigen/Core>

namespace cgflow::nn {

// The elementwise passes between GEMMs are memory-bound, so each helper below touches its operands
// once. Tanh, sigmoid and ReLU derivatives come from the stored outputs without another exp; the
// ~1e-16 absolute error (~1e-7 in float) of 1 - tanh^2 only matters for saturated units, which
// contribute nothing. Matrix is Eigen::MatrixXd (Float64) or Eigen::MatrixXf (Mixed).

/** delta *= f'(pre), where post = f(pre); buffer is scratch space for f' where it is needed. */
template <class Matrix>
void multiplyByDerivative(Activation activation, const Matrix& pre, const Matrix& post, Matrix& delta,
                          Matrix& buffer) {
    using Scalar = typename Matrix::Scalar;
    const Scalar zero(0), one(1);
    switch (activation) {
    case Activation::Identity:
        return;
    case Activation::Tanh:
        delta.array() *= one - post.array().square();
        return;
    case Activation::Sigmoid:
        delta.array() *= post.array() * (one - post.array());
        return;
    case Activation::ReLU:
        delta.array() = (pre.array() > zero).select(delta.array(), zero);
        return;
    default:
        buffer.resize(pre.rows(), pre.cols());
        activationDerivative(activation, pre.array(), buffer.array());
        delta.array() *= buffer.array();
    }
}

/** target += delta * f'(pre), where post = f(pre); buffer as above. */
template <class Matrix>
void accumulateTimesDerivative(Activation activation, const Matrix& pre, const Matrix& post, const Matrix& delta,
                               Matrix& target, Matrix& buffer) {
    using Scalar = typename Matrix::Scalar;
    const Scalar zero(0), one(1);
    switch (activation) {
    case Activation::Identity:
        target += delta;
        return;
    case Activation::Tanh:
        target.array() += delta.array() * (one - post.array().square());
        return;
    case Activation::Sigmoid:
        target.array() += delta.array() * post.array() * (one - post.array());
        return;
    case Activation::ReLU:
        target.array() += (pre.array() > zero).select(delta.array(), zero);
        return;
    default:
        buffer.resize(pre.rows(), pre.cols());
        activationDerivative(activation, pre.array(), buffer.array());
        target.array() += delta.array() * buffer.array();
    }
}

} // namespace cgflow::nn

#endif
