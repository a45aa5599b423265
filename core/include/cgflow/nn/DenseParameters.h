#ifndef CGFLOW_NN_DENSEPARAMETERS_H_
#define CGFLOW_NN_DENSEPARAMETERS_H_

#include <Eigen/Core>
#include <cstddef>
#include <vector>

namespace cgflow::nn {

// The flat parameter layout every network in nn/ shares, so optimizers and model files see
// one convention: for each dense layer in order, the weight (out x in) row-major, then the bias.
using RowMajorMap = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using ConstRowMajorMap = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

size_t countDenseParameters(const std::vector<Eigen::MatrixXd>& weights, const std::vector<Eigen::VectorXd>& biases);
void packDenseParameters(const std::vector<Eigen::MatrixXd>& weights, const std::vector<Eigen::VectorXd>& biases,
                         double* out);
/** Reads into the existing matrices; their shapes define how many values are read. */
void unpackDenseParameters(const double* in, std::vector<Eigen::MatrixXd>& weights, std::vector<Eigen::VectorXd>& biases);

} // namespace cgflow::nn

#endif
