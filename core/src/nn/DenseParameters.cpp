#include "cgflow/nn/DenseParameters.h"

namespace cgflow::nn {

size_t countDenseParameters(const std::vector<Eigen::MatrixXd>& weights, const std::vector<Eigen::VectorXd>& biases) {
    size_t n = 0;
    for (size_t l = 0; l < weights.size(); l++)
        n += static_cast<size_t>(weights[l].size() + biases[l].size());
    return n;
}

void packDenseParameters(const std::vector<Eigen::MatrixXd>& weights, const std::vector<Eigen::VectorXd>& biases,
                         double* out) {
    for (size_t l = 0; l < weights.size(); l++) {
        const Eigen::MatrixXd& w = weights[l];
        RowMajorMap(out, w.rows(), w.cols()) = w;
        out += w.size();
        Eigen::Map<Eigen::VectorXd>(out, biases[l].size()) = biases[l];
        out += biases[l].size();
    }
}

void unpackDenseParameters(const double* in, std::vector<Eigen::MatrixXd>& weights, std::vector<Eigen::VectorXd>& biases) {
    for (size_t l = 0; l < weights.size(); l++) {
        Eigen::MatrixXd& w = weights[l];
        w = ConstRowMajorMap(in, w.rows(), w.cols());
        in += w.size();
        biases[l] = Eigen::Map<const Eigen::VectorXd>(in, biases[l].size());
        in += biases[l].size();
    }
}

} // namespace cgflow::nn
