#ifndef CGFLOW_NN_RESIDUALMLP_H_
#define CGFLOW_NN_RESIDUALMLP_H_

#include "cgflow/nn/Activation.h"
#include "cgflow/nn/Precision.h"

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cgflow::nn {

/**
 * The residual network used as the conditioner (parameter network) of coupling layers in FAB
 * (Midgley et al. 2023) and the conditional-flow paper (Schopmans & Friederich, A.6.5, Fig. 8),
 * both built on the normflows/nflows "ResidualNet":
 *
 *   h_0     = W_in x + b_in                                       (linear input layer)
 *   h_{k+1} = h_k + W_{k,2} f(W_{k,1} f(h_k) + b_{k,1}) + b_{k,2}  (k = 0 .. numBlocks-1)
 *   y       = W_out h_B + b_out                                   (linear output layer)
 *
 * This is the pre-activation residual block (He et al. 2016, "Identity mappings"): the skip path
 * from the input layer to the output layer carries no nonlinearity, so the gradient reaches the
 * input layer undamped however many blocks there are, and the block is exactly the one of the
 * networks whose published hyperparameters (1 block of width 256) we reproduce. Both the input and
 * output layers are linear: spline and affine parameters are unconstrained real numbers.
 * A context vector is simply concatenated to x by the caller (as nflows does at the input layer).
 *
 * Samples are stored one per column, so each dense layer is one GEMM over the whole batch.
 * numBlocks = 0 is allowed and gives the affine map W_out (W_in x + b_in) + b_out.
 * forward() and backward() are const and keep all per-call state in the Workspace, so one network
 * can serve several threads at once, each with its own Workspace (e.g. a batch split in chunks).
 *
 * Precision (setPrecision): Float64 (the default) computes everything in double. Mixed keeps the
 * double interface (X, Y, dY, dX and paramGrad stay double, and the double weights remain the
 * master copy that setParameters/optimizers update) but runs every dense layer's GEMM, bias add and
 * activation, forward and backward, in float32 on float copies of the weights: the input is
 * converted once, the output and the parameter gradients once back (paramGrad still ACCUMULATES).
 * Outputs then agree with Float64 to about 1e-6 relative to their scale, at roughly half the GEMM time.
 */
template <class Scalar>
struct ResidualMLPBuffers {
    using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
    Matrix input;                        // x, kept for the input layer's weight gradient
    std::vector<Matrix> stream;          // h_0 .. h_B, the residual stream (B + 1 entries)
    std::vector<Matrix> outer;           // f(h_k), input of block k's first layer
    std::vector<Matrix> inner;           // W_{k,1} f(h_k) + b_{k,1}
    std::vector<Matrix> innerActivated;  // f(inner), input of block k's second layer
    Matrix streamGrad;                   // dL/dh_k, swept backwards
    Matrix innerGrad;                    // dL/d(inner)
    Matrix scratch;                      // dL/d f(h_k), and f' where it needs its own buffer
};

class ResidualMLP {
public:
    ResidualMLP() = default;
    /**
     * All sizes >= 1 and numBlocks >= 0, else Error. With zeroInitialOutput the output layer is set
     * to zero by initializeParameters(), so the network outputs exactly 0 until trained: a coupling
     * layer then starts as the identity (or, for splines, as a fixed bijection independent of its
     * input), the usual way to start a deep flow from a well-conditioned map. Parameters start at zero.
     */
    ResidualMLP(int inputSize, int hiddenSize, int outputSize, int numBlocks, Activation activation = Activation::ReLU,
                bool zeroInitialOutput = false);

    int getInputSize() const { return inputSize; }
    int getHiddenSize() const { return hiddenSize; }
    int getOutputSize() const { return outputSize; }
    int getNumBlocks() const { return numBlocks; }
    Activation getActivation() const { return activation; }
    bool getZeroInitialOutput() const { return zeroInitialOutput; }

    /**
     * Dense layers in order: 0 = input layer (hidden x in); 1 + 2k and 2 + 2k = the two layers of
     * block k (hidden x hidden); getNumLayers() - 1 = output layer (out x hidden). Zero for a
     * default-constructed network.
     */
    int getNumLayers() const { return static_cast<int>(weights.size()); }
    /**
     * Where dense layer `layer` (0 .. getNumLayers() - 1) starts in the flat parameter vector of
     * getParameters(): its weight, row-major (out x in), then its bias (nn/DenseParameters.h). For
     * code that reads the parameters without the class, such as the GPU kernels. Error outside the range.
     */
    size_t getLayerParameterOffset(int layer) const;
    /**
     * Out-of-range layer -> Error. Do not resize. The non-const versions cannot see what the caller
     * writes, so every call of them (even one that only reads: read through a const reference)
     * marks the float copies used by Mixed precision as out of date; a Mixed forward() or backward()
     * then throws Error until syncPrecisionCopies() (or setParameters / initializeParameters) is
     * called. Float64 is not affected.
     */
    Eigen::MatrixXd& weight(int layer);
    const Eigen::MatrixXd& weight(int layer) const;
    Eigen::VectorXd& bias(int layer);
    const Eigen::VectorXd& bias(int layer) const;

    /**
     * Float64 (default) or Mixed, see the class comment. Switching to Mixed builds the float copies
     * of the weights, switching back to Float64 frees them (results are then bit-identical to a
     * network that never ran Mixed). Not thread-safe against concurrent forward()/backward(); a
     * Workspace filled by forward() in one precision cannot be used by backward() in the other.
     */
    void setPrecision(Precision precision);
    Precision getPrecision() const { return precision; }
    /**
     * Rebuilds the float copies from the double weights after they were changed through the
     * non-const weight()/bias(); a no-op in Float64. Not thread-safe against concurrent forward().
     */
    void syncPrecisionCopies();

    size_t getNumParameters() const;
    /**
     * Flat parameter order, the same convention as MLP: for each dense layer in the order above,
     * the weight row-major (out-major), then the bias.
     */
    void getParameters(double* out) const;
    void setParameters(const double* in);
    /** The same on vectors; the size must be getNumParameters(), else Error. */
    std::vector<double> getParameters() const;
    void setParameters(const std::vector<double>& in);
    /**
     * In Mixed precision setParameters and initializeParameters also rebuild the float copies.
     * Glorot/Xavier-uniform weights U(-sqrt(6/(in+out)), +sqrt(6/(in+out))) from the raw output of
     * std::mt19937_64 (identical with every standard library), zero biases, and a zero output layer
     * when getZeroInitialOutput().
     */
    void initializeParameters(uint64_t seed);

    /**
     * Buffers reused between calls: once a batch size has been seen, forward() and backward()
     * allocate nothing (in either precision). forward() leaves in it what backward() needs. The
     * inherited double buffers serve Float64, the float set `single` serves Mixed.
     */
    struct Workspace : ResidualMLPBuffers<double> {
        struct Single : ResidualMLPBuffers<float> {
            Eigen::MatrixXf output;      // W_out h_B before the bias is added and it is converted to double
            Eigen::MatrixXf outputGrad;  // dY converted to float
            Eigen::MatrixXf inputGrad;   // dL/dX before it is converted to double
            Eigen::VectorXf weightGrad;  // one layer's weight gradient (row-major), before it is added to paramGrad
        } single;
        Eigen::Index batch = -1;         // batch size of the forward pass held, -1 if none
        Precision precision = Precision::Float64; // precision of the forward pass held
    };

    /** X: (inputSize x batch), one sample per column. Y is resized to (outputSize x batch). */
    void forward(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::MatrixXd& Y, Workspace& ws) const;
    /**
     * The same, writing into caller-owned memory (e.g. a block of a larger buffer), which must
     * already be (outputSize x batch), else Error. Y must not alias X.
     */
    void forwardInto(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::Ref<Eigen::MatrixXd> Y, Workspace& ws) const;
    /**
     * dY = dL/dY (outputSize x batch), after forward() with the same ws. If dX is non-null it is
     * resized and set to dL/dX (inputSize x batch). If paramGrad is non-null, dL/dparams is
     * ACCUMULATED (+=) into paramGrad[0 .. getNumParameters()) in the flat order, so gradients of a
     * batch split into chunks, or of several losses, add up without a separate buffer. Work that
     * neither output needs (input gradient of layer 0, weight gradients) is not done.
     */
    void backward(const Eigen::Ref<const Eigen::MatrixXd>& dY, Workspace& ws, Eigen::MatrixXd* dX,
                  double* paramGrad) const;

private:
    void checkLayer(int layer) const;
    void checkBuilt(const char* what) const;
    void checkPrecisionCopies(const char* what) const;
    void buildPrecisionCopies();
    // The forward and backward math, once for both precisions (Scalar = double or float).
    template <class Scalar>
    void forwardImpl(const Eigen::Ref<const Eigen::MatrixXd>& X, Eigen::Ref<Eigen::MatrixXd> Y, Workspace& ws) const;
    template <class Scalar>
    void backwardImpl(const Eigen::Ref<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>>& dY,
                      Workspace& ws, Eigen::MatrixXd* dX, double* paramGrad) const;

    int inputSize = 0;
    int hiddenSize = 0;
    int outputSize = 0;
    int numBlocks = 0;
    Activation activation = Activation::ReLU;
    bool zeroInitialOutput = false;
    std::vector<Eigen::MatrixXd> weights;
    std::vector<Eigen::VectorXd> biases;
    Precision precision = Precision::Float64;
    // Float copies of weights/biases, built only in Mixed precision.
    std::vector<Eigen::MatrixXf> weightsSingle;
    std::vector<Eigen::VectorXf> biasesSingle;
    bool precisionCopiesStale = false; // set by the non-const weight()/bias()
};

} // namespace cgflow::nn

#endif
