#include "cgflow/train/TrainableModel.h"

#include "cgflow/Error.h"

namespace cgflow::train {

void TrainableModel::logProbForTraining(const Eigen::MatrixXd&, const Eigen::MatrixXd*, Eigen::VectorXd&) {
    throw Error("forward-KL training needs the model's exact log-density, which this model does not have "
                "(e.g. the encoder-decoder model's q(x) is an integral over z)");
}

void TrainableModel::backwardLogProbForTraining(const Eigen::VectorXd&, double*) {
    throw Error("forward-KL training needs the model's exact log-density, which this model does not have");
}

} // namespace cgflow::train
