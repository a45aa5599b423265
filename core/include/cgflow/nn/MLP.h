#ifndef CGFLOW_NN_MLP_H_
#define CGFLOW_NN_MLP_H_

#include "cgflow/nn/Activation.h"

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cgflow::nn {

/**
 * A fully connected feed-forward network y = f_out(W_{L-1} ... f_hid(W_0 x + b_0) ... + b_{L-1}).
 * Samples are stored one per column so that a batch is a single GEMM per layer.
 */
class MLP {
public:
    MLP() = default;
    /**
     * widths = {in, h1, ..., out}: at least 2 entries, all >= 1, else Error. Parameters start
     * at zero; call initializeParameters() or setParameters() to give them values.
     */
    MLP(std::vector<int> widths, Activation hidden, Activation output = Activation::Identity);

    const std::vector<int>& getWidths() const { return widths; }
    int getInputSize() const;
    int getOutputSize() const;
    /** Number of dense layers, widths.size() - 1. */
    int getNumLayers() const { return static_cast<int>(weights.size()); }
    Activation getHiddenActivation() const { return hidden; }
    Activation getOutputActivation() const { return output; }

    /** Shape (widths[layer+1], widths[layer]). Out-of-range layer -> Error. Do not resize it. */
    Eigen::MatrixXd& weight(int layer);
    const Eigen::MatrixXd& weight(int layer) const;
    /** Length widths[layer+1]. Out-of-range layer -> Error. Do not resize it. */
    Eigen::VectorXd& bias(int layer);
    const Eigen::VectorXd& bias(int layer) const;

    size_t getNumParameters() const;
    /** Flat parameter order: for layer 0..L-1, the weight row-major (out-major), then the bias. */
    void getParameters(double* out) const;
    void setParameters(const double* in);
    /**
     * Glorot/Xavier-uniform weights, U(-sqrt(6/(in+out)), +sqrt(6/(in+out))), and zero biases.
     * Uniforms are built from raw std::mt19937_64 output rather than a std distribution so the
     * values are the same with every standard library.
     */
    void initializeParameters(uint64_t seed);

    /**
     * Per-layer buffers, reused between calls so that the hot path does not allocate once the
     * batch size is stable. forward() leaves in it what backward() needs.
     */
    struct Workspace {
        std::vector<Eigen::MatrixXd> pre;   // pre-activations, per layer
        std::vector<Eigen::MatrixXd> post;  // activations, per layer
        Eigen::MatrixXd input;              // copy of X (needed for layer-0 weight gradients)
        std::vector<Eigen::MatrixXd> delta; // dL/d(pre-activation), per layer
        std::vector<Eigen::MatrixXd> deriv; // f'(pre-activation), per layer
        // Second-order passes (inputGradient(), mixedParameterGradient()): dU/d(post-activation)
        // per layer, f''(pre-activation), and the forward-mode tangents R{.} of Pearlmutter's
        // R-operator for the pre-activations, post-activations and deltas.
        std::vector<Eigen::MatrixXd> postGrad;
        std::vector<Eigen::MatrixXd> secondDeriv;
        std::vector<Eigen::MatrixXd> tangentPre;
        std::vector<Eigen::MatrixXd> tangentPost;
        std::vector<Eigen::MatrixXd> tangentDelta;
        // A layer's weight and bias gradients, computed here (aligned) before they are added to
        // paramGrad: computed straight into paramGrad, Eigen would split the batch sums (and the
        // coefficient-based products it uses for small layers) into a scalar prologue and packets
        // at a point set by paramGrad's heap address, and the two sum in different orders, so
        // the result would depend on where the caller's buffer happens to lie (and a trainer's
        // results on which thread allocated it).
        Eigen::MatrixXd weightGrad;
        Eigen::VectorXd biasGrad;
        // Set by inputGradient(), cleared by forward() and backward(), which overwrite what
        // mixedParameterGradient() reads.
        bool holdsInputGradient = false;
    };

    /** X: (inputSize x batch), one sample per column. Y is resized to (outputSize x batch). */
    void forward(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& Y, Workspace& ws) const;
    /**
     * dY = dL/dY (outputSize x batch), after forward() with the same ws. If dX is non-null it is
     * resized and set to dL/dX (inputSize x batch). If paramGrad is non-null, dL/dparams is
     * ACCUMULATED (+=) into paramGrad[0 .. getNumParameters()), in the flat order above.
     */
    void backward(const Eigen::Ref<const Eigen::MatrixXd>& dY, Workspace& ws, Eigen::MatrixXd* dX,
                  double* paramGrad) const;

    /**
     * Scalar-output networks (getOutputSize() == 1, else Error), after forward() with the same ws:
     * G is resized and set to the input gradient dU/dX (inputSize x batch), one column per sample,
     * and ws keeps this backward pass for mixedParameterGradient(). f' is taken from the
     * pre-activations for every activation, so G agrees with backward()'s dX to rounding only.
     */
    void inputGradient(Workspace& ws, Eigen::MatrixXd& G) const;
    /**
     * After inputGradient() with the same ws: ACCUMULATES (+=) into paramGrad (getNumParameters()
     * values, flat order, non-null) the parameter gradient of sum_s v_s . g_s, with g_s = dU/dx_s
     * the input gradient of sample s and the directions V (inputSize x batch) held fixed: the mixed
     * second derivative d/dtheta (dU/dx) applied to V. This is what force matching needs, where the
     * loss depends on the parameters only through the input gradient.
     *
     * Pearlmutter's R-operator (Neural Computation 6, 147 (1994)), batched, one sample per column:
     * forward tangents R{a_0} = V, R{z_l} = W_l R{a_l}, R{a_{l+1}} = f'(z_l) R{z_l}; then, down the
     * backward pass delta_l = f'(z_l) (W_{l+1}^T delta_{l+1}) (delta_{L-1} = f'(z_{L-1})), its tangent
     * R{delta_l} = f''(z_l) R{z_l} (W_{l+1}^T delta_{l+1}) + f'(z_l) (W_{l+1}^T R{delta_{l+1}}), and
     * dW_l += R{delta_l} a_l^T + delta_l R{a_l}^T, db_l += sum_s R{delta_l}.
     */
    void mixedParameterGradient(const Eigen::Ref<const Eigen::MatrixXd>& V, Workspace& ws, double* paramGrad) const;
    /**
     * Both in one call, for directions known before the gradient: G = dU/dX and, when paramGrad is
     * non-null, paramGrad += d/dtheta sum_s v_s . g_s. (Force matching, whose directions depend on G,
     * calls the two in turn.)
     */
    void inputGradientAndMixedParameterGradient(const Eigen::Ref<const Eigen::MatrixXd>& V, Workspace& ws,
                                                Eigen::MatrixXd& G, double* paramGrad) const;

private:
    void checkLayer(int layer) const;

    std::vector<int> widths;
    Activation hidden = Activation::Identity;
    Activation output = Activation::Identity;
    std::vector<Eigen::MatrixXd> weights;
    std::vector<Eigen::VectorXd> biases;
};

} // namespace cgflow::nn

#endif
