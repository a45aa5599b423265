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
