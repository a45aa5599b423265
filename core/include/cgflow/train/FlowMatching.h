#ifndef CGFLOW_TRAIN_FLOWMATCHING_H_
#define CGFLOW_TRAIN_FLOWMATCHING_H_

#include <Eigen/Core>

#include <cstdint>
#include <vector>

namespace cgflow::train {

/**
 * Conditional flow matching (Lipman et al. 2022; Tong et al. 2023), the training targets: for pairs
 * (x0_i, x1_i) (base and data, dimension x n) and times t_i, the linear interpolant
 * x_t = (1 - t) x0 + t x1 with target velocity u = x1 - x0. On circular dimensions the straight line
 * is the geodesic of the circle: delta = wrap(x1 - x0) into [-pi, pi), x_t = wrap(x0 + t delta), u = delta
 * (Riemannian flow matching on the flat torus, Chen & Lipman 2023).
 */
void flowMatchingTargets(const Eigen::MatrixXd& x0, const Eigen::MatrixXd& x1, const Eigen::VectorXd& t,
                         const std::vector<bool>& circular, Eigen::MatrixXd& xt, Eigen::MatrixXd& u);

/** Squared distances (n0 x n1) between the columns of a and b, circular dimensions by their shortest arc. */
Eigen::MatrixXd pairwiseSquaredDistances(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b,
                                         const std::vector<bool>& circular);

/**
 * The minimum-cost perfect matching of a square cost matrix (Kuhn-Munkres with potentials, O(n^3)):
 * result[i] is the column matched to row i. The exact optimal-transport plan between two equal-sized
 * empirical samples with uniform weights is such a permutation, which is what minibatch OT coupling
 * (Tong et al. 2023) pairs base and data points with. Non-finite costs or a non-square matrix -> Error.
 */
std::vector<int> minimumCostAssignment(const Eigen::MatrixXd& cost);

} // namespace cgflow::train

#endif
