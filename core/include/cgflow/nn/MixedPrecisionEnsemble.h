#ifndef CGFLOW_NN_MIXEDPRECISIONENSEMBLE_H_
#define CGFLOW_NN_MIXEDPRECISIONENSEMBLE_H_

#include "cgflow/nn/MLPEnsemble.h"

#include <Eigen/Core>
#include <vector>

namespace cgflow::nn {

/**
 * An MLPEnsemble evaluated in mixed precision: a float32 copy of the weights, the dense layers'
 * products and activations in float32, and everything that is summed across layers' outputs in
 * double — each member's scalar output (its last layer's dot product), the ensemble mean, the
 * members' input gradients accumulated into d(mean)/dX. Inputs arrive and results leave in double,
 * so it is a drop-in for MLPEnsemble::evaluateMembers().
 *
 * Why: a PMF ensemble evaluated for one configuration is a chain of matrix-vector products whose
 * weights do not fit a core's L2 cache, so its time is the time to stream the weights (twice: the
 * forward and the backward pass). Float32 halves the bytes and doubles the SIMD width. The price is
 * ~1e-7 relative rounding per layer; measured on the phi/psi PMF of the conditional-flow paper,
 * the energies differ from float64 by ~1e-6 kJ/mol (docs/workflows/pmf-force.md).
 *
 * The copy is taken at construction: later changes to the source ensemble are not seen (build a
 * new one). Threading as MLPEnsemble: scratch buffers owned by the object, so one object must not
 * be evaluated from several threads at once.
 */
class MixedPrecisionEnsemble {
public:
    MixedPrecisionEnsemble() = default;
    /** Copies (and rounds to float) the parameters of every member; an empty ensemble -> Error. */
    explicit MixedPrecisionEnsemble(const MLPEnsemble& ensemble);

    int getNumMembers() const { return static_cast<int>(members.size()); }
    int getInputSize() const;

    /**
     * As MLPEnsemble::evaluateMembers(): X (inputSize x batch) -> memberOutputs (numMembers x
     * batch); when gradMean is non-null it is set to d(mean)/dX (inputSize x batch).
     */
    void evaluateMembers(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& memberOutputs,
                         Eigen::MatrixXd* gradMean) const;

private:
    struct Member {
        std::vector<Eigen::MatrixXf> weights; // hidden layers, float32
        std::vector<Eigen::VectorXf> biases;
        Eigen::RowVectorXd outputWeight;      // the last layer (1 x width), kept in double
        double outputBias = 0;
    };
    std::vector<Member> members;
    Activation hidden = Activation::Identity;
    Activation output = Activation::Identity;

    struct Scratch {
        Eigen::MatrixXf input;
        std::vector<Eigen::MatrixXf> pre, post; // per hidden layer
        Eigen::MatrixXf delta, next, buffer, dx;
        Eigen::MatrixXd lastPost;              // the last hidden layer's activations in double
        Eigen::RowVectorXd y, dy;
    };
    mutable Scratch scratch;
};

} // namespace cgflow::nn

#endif
