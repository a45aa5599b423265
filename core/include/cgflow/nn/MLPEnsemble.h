#ifndef CGFLOW_NN_MLPENSEMBLE_H_
#define CGFLOW_NN_MLPENSEMBLE_H_

#include "cgflow/nn/MLP.h"

#include <Eigen/Core>
#include <vector>

namespace cgflow::nn {

/**
 * An ensemble of MLPs with identical architecture and scalar output (a neural PMF): the
 * prediction is the ensemble mean, the spread is the population standard deviation (ddof=0).
 *
 * Threading: evaluation reuses scratch buffers owned by the object, so after the first call
 * evaluate() does not touch the heap. The price is that one object must not be evaluated from
 * several threads at once; distinct objects (including copies) may be used concurrently, as
 * there is no shared or static state.
 */
class MLPEnsemble {
public:
    MLPEnsemble() = default;
    /** >= 1 members, all with the same widths and activations, output size 1; else Error. */
    explicit MLPEnsemble(std::vector<MLP> members);

    int getNumMembers() const { return static_cast<int>(members.size()); }
    int getInputSize() const;
    /** Out-of-range index -> Error. */
    const MLP& getMember(int i) const;
    /** For changing parameters in place; the member's architecture must not be changed. */
    MLP& getMember(int i);

    struct Result {
        double mean = 0;
        double std = 0;
        std::vector<double> memberValues;
        Eigen::VectorXd gradMean;
    };
    /**
     * x has getInputSize() entries. gradMean = d(mean)/dx is only computed when wantGradient;
     * otherwise it is left untouched. Reusing the same Result avoids allocations too.
     */
    void evaluate(const Eigen::Ref<const Eigen::VectorXd>& x, bool wantGradient, Result& result) const;
    /** Batch: X (inputSize x batch) -> means and stds (length batch). */
    void evaluateBatch(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::VectorXd& means,
                       Eigen::VectorXd& stds) const;
    /**
     * Batch with every member's value: X (inputSize x batch) -> memberOutputs (numMembers x batch);
     * when gradMean is non-null it is set to d(mean)/dX (inputSize x batch), one column per sample.
     * This is what a PMFForce with several particle groups needs: each group is one column, and one
     * pass per member prices them all.
     */
    void evaluateMembers(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& memberOutputs,
                         Eigen::MatrixXd* gradMean) const;

private:
    void checkIndex(int i) const;

    std::vector<MLP> members;
    // Members share one architecture, so one workspace serves them all in turn.
    struct Scratch {
        MLP::Workspace workspace;
        Eigen::MatrixXd y, dy, dx;
        Eigen::MatrixXd memberOutputs; // (numMembers x batch) for evaluateBatch
    };
    mutable Scratch scratch;
};

} // namespace cgflow::nn

#endif
