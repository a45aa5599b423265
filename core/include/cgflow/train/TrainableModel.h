#ifndef CGFLOW_FLOWS_TRAINABLEMODEL_H_
#define CGFLOW_FLOWS_TRAINABLEMODEL_H_

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>

namespace cgflow::train {

/**
 * What reverse-KL training needs of a generative density q(x): reparametrized samples with their
 * log-densities, the pathwise backward pass, and one flat parameter vector. Flow and SlowFastModel
 * implement it, so one trainer (ModelTrainer) with one optimizer, guard and checkpoint format serves
 * every model.
 */
class TrainableModel {
public:
    virtual ~TrainableModel() = default;
    /** Dimension of x. */
    virtual int getDimension() const = 0;
    virtual size_t getNumParameters() const = 0;
    virtual void getParameters(double* out) const = 0;
    virtual void setParameters(const double* in) = 0;
    /**
     * n samples x (dimension x n) and log q(x) (n) from the counter-based stream of seed, keeping the
     * pass for backwardSample(). context: as for Flow::sample (models without a context: must be null).
     */
    virtual void sampleForTraining(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                                   Eigen::VectorXd& logQ) = 0;
    /**
     * The pathwise vector-Jacobian product of the last sampleForTraining(): gradX = dL/dx, gradLogQ =
     * dL/dlog q; dL/dparameters is ACCUMULATED into paramGrad; gradContext / gradBase as for
     * Flow::backwardSample (may be unsupported: then they must be null).
     */
    virtual void backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                                Eigen::MatrixXd* gradContext = nullptr, Eigen::MatrixXd* gradBase = nullptr) = 0;
    /**
     * Forward-KL (maximum-likelihood) training: the exact log q of given samples x (dimension x n),
     * keeping the pass for backwardLogProbForTraining(). Models without a tractable density (the
     * encoder-decoder model, whose q(x) is an integral over z) keep this default, which throws.
     */
    virtual void logProbForTraining(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context, Eigen::VectorXd& logQ);
    /** The VJP of the last logProbForTraining(): gradLogQ = dL/dlog q; dL/dparameters ACCUMULATED into paramGrad. */
    virtual void backwardLogProbForTraining(const Eigen::VectorXd& gradLogQ, double* paramGrad);
};

} // namespace cgflow::train

#endif
