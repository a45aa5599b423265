#ifndef CGFLOW_FLOWS_GAUSSIANCONDITIONAL_H_
#define CGFLOW_FLOWS_GAUSSIANCONDITIONAL_H_

#include "cgflow/nn/Activation.h"
#include "cgflow/nn/Precision.h"
#include "cgflow/nn/ResidualMLP.h"

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cgflow::flows {

/** Architecture of a GaussianConditional. */
struct GaussianConditionalOptions {
    int conditionSize = 1;  // dim z (>= 1)
    int outputSize = 1;     // dim X (>= 1)
    int hiddenSize = 64;    // of the ResidualMLP
    int numBlocks = 1;      // residual blocks of the ResidualMLP (>= 0)
    nn::Activation activation = nn::Activation::ReLU;
    /**
     * true: the log-std s(z) is the second half of the network's output (the data-free CG paper,
     * Eq. 12); false: a learnable z-independent log-std vector (the decoder of the embedded-physics
     * paper, which learns the variances as free parameters).
     */
    bool conditionalStd = true;
    /** The log-std every output starts at after initializeParameters() (finite). */
    double initialLogStd = 0.0;
    /**
     * false: diagonal covariance (the papers' model). true: covariance D M M^T D, D = diag(exp(s(z))), with a
     * learnable z-independent unit-lower-triangular M, i.e. X = mu(z) + exp(s(z)) * (M eps): the correlations
     * of the fine-scale coordinates (bond lengths and angles of a molecule), which a diagonal Gaussian misses,
     * at d(d-1)/2 extra parameters and an unchanged log-determinant (det M = 1). M acts on the standardized
     * noise, so its entries are dimensionless whatever the scales of the coordinates (mixing the scaled
     * noise instead inflated Adam's second moments ~10^5-fold on alanine dipeptide and stalled training).
     */
    bool fullCovariance = false;
};

/**
 * A diagonal Gaussian conditional density q(X | z) = N(X; mu(z), diag(exp(2 s(z)))): the fine-scale
 * model q_theta(X | z) of the data-free coarse-graining paper (Stupp & Koutsourelakis, Eqs. 12-13) and
 * the probabilistic decoder q_theta(x | z) of the embedded-physics CG paper (Schoeberl et al., Eq. 21).
 *
 * mu(z) and s(z) (the log-std) are the two halves of the output of one nn::ResidualMLP of z (output
 * size 2 dim X, rows [0, dim X) = mu, [dim X, 2 dim X) = s), or, with conditionalStd = false, the
 * network outputs mu only and s is a learnable vector shared by all z.
 *
 * Batches are stored one sample per column: z (dim z x n), X and eps (dim X x n), logq (n).
 * Parameters: the network's (nn::ResidualMLP flat order), then, with conditionalStd = false, the dim X
 * log-stds, then, with fullCovariance, the strictly lower entries of M row by row (M(1,0), M(2,0), M(2,1), ...).
 * Like the network, the object is const during sample/logProb/backward and keeps all per-call
 * state in a Workspace, so threads can share it with one Workspace each.
 */
class GaussianConditional {
public:
    /** Per-call buffers; sample()/logProb() with save leave in it what the matching backward needs. */
    struct Workspace {
        nn::ResidualMLP::Workspace network;
        Eigen::MatrixXd out;      // the network's output (mu, and s when conditional)
        Eigen::MatrixXd noise;    // sample: eps; logProb: r = M^-1 (X - mu) exp(-s)
        Eigen::MatrixXd scale;    // sample: exp(s); logProb: exp(-s)
        Eigen::MatrixXd gradOut;  // dL/d(network output)
        Eigen::MatrixXd gradLogStd; // dL/ds (dim X x n)
        enum class Pass { None, Sample, LogProb } pass = Pass::None;
        Eigen::Index batch = -1;
        const GaussianConditional* owner = nullptr;
    };

    /** Sizes validated (Error naming the option); parameters start as after initializeParameters(0). */
    explicit GaussianConditional(const GaussianConditionalOptions& options);

    const GaussianConditionalOptions& getOptions() const { return options; }
    int getConditionSize() const { return options.conditionSize; }
    int getOutputSize() const { return options.outputSize; }
    const nn::ResidualMLP& getNetwork() const { return network; }

    size_t getNumParameters() const;
    void getParameters(double* out) const;
    void setParameters(const double* in);
    /** The same on vectors; the size must be getNumParameters(), else Error. */
    std::vector<double> getParameters() const;
    void setParameters(const std::vector<double>& in);
    /**
     * Glorot-uniform hidden layers (nn::ResidualMLP::initializeParameters(seed)), a zero output layer
     * (so mu(z) = 0), and the log-std at options.initialLogStd for every z: the bias of the log-std half
     * of the output layer, or the free log-std vector.
     */
    void initializeParameters(uint64_t seed);
    /**
     * The precision of the network's matrix products (nn::ResidualMLP::setPrecision); mu, s, X, logq
     * and every gradient stay double. Not thread-safe against concurrent calls, and a workspace
     * saved in one precision cannot be used by a backward in the other.
     */
    void setPrecision(nn::Precision precision) { network.setPrecision(precision); }
    nn::Precision getPrecision() const { return network.getPrecision(); }

    /** The mean mu(z) and log-std s(z) (dim X x n each) without touching any workspace state the caller keeps. */
    void meanAndLogStd(const Eigen::MatrixXd& z, Eigen::MatrixXd& mu, Eigen::MatrixXd& logStd) const;

    /**
     * Reparametrized sampling: X = mu(z) + exp(s(z)) * eps (elementwise; with fullCovariance
     * X = mu(z) + exp(s(z)) * (M eps)), and
     * logq = log N(X; mu, exp(s)^2) summed over dimensions = -sum(s) - sum(eps^2) / 2 - dim X log(2 pi) / 2.
     * eps: standard-normal noise from the caller (dim X x n). X and logq are resized.
     */
    void sample(const Eigen::MatrixXd& z, const Eigen::MatrixXd& eps, Eigen::MatrixXd& X, Eigen::VectorXd& logq,
                Workspace& ws, bool save) const;
    /** logq = log q(X | z) per sample (resized to n). */
    void logProb(const Eigen::MatrixXd& z, const Eigen::MatrixXd& X, Eigen::VectorXd& logq, Workspace& ws,
                 bool save) const;

    /**
     * Vector-Jacobian product of the last sample(..., save = true) with ws, with eps held fixed (the
     * pathwise gradient): gradX = dL/dX (dim X x n) and gradLogq = dL/dlogq (n), either null for zero.
     * X depends on z and the parameters through mu and s; logq only through s (d logq / d mu = 0 and
     * d logq / d s = -1 per dimension when eps is fixed). If gradZ is non-null it is resized and SET to
     * dL/dz (dim z x n); if paramGrad is non-null, dL/dparams is ACCUMULATED into
     * paramGrad[0 .. getNumParameters()). gradEps (if non-null) is resized and SET to dL/deps, the
     * gradient of L(X, logq) with respect to the noise passed to sample() (X through mu + exp(s) (M eps),
     * logq through -sum(eps^2)/2): for callers whose eps is itself the output of a trainable map (the
     * SlowFastModel's fast flow).
     */
    void backwardSample(const Eigen::MatrixXd* gradX, const Eigen::VectorXd* gradLogq, Eigen::MatrixXd* gradZ,
                        double* paramGrad, Workspace& ws, Eigen::MatrixXd* gradEps = nullptr) const;
    /**
     * Vector-Jacobian product of the last logProb(..., save = true) with ws: from gradLogq = dL/dlogq (n),
     * gradZ (if non-null) is resized and SET to dL/dz, gradX (if non-null) to dL/dX (the X passed to
     * logProb), and dL/dparams is ACCUMULATED into paramGrad (if non-null). gradNoise (if non-null,
     * dim X x n) is a further upstream gradient dL/dr with respect to the standardized noise
     * r = M^-1 (X - mu) exp(-s) that logProb() leaves in ws.noise, for callers that feed r on into a
     * trainable map (the SlowFastModel's fast flow); it is propagated to X, z and the parameters with
     * the gradient of logq.
     */
    void backwardLogProb(const Eigen::VectorXd& gradLogq, Eigen::MatrixXd* gradZ, Eigen::MatrixXd* gradX,
                         double* paramGrad, Workspace& ws, const Eigen::MatrixXd* gradNoise = nullptr) const;

    std::string getTypeName() const { return "gaussian_conditional"; }
    /**
     * {"type": "gaussian_conditional", "condition_dimension": dim z, "output_dimension": dim X,
     *  "hidden": h, "num_blocks": b, "activation": name, "std": "conditional" | "constant",
     *  "initial_log_std": s0, "covariance": "diagonal" | "full"}
     */
    nlohmann::json getConfig() const;
    /**
     * Rebuilds from getConfig(): "condition_dimension" and "output_dimension" required, the rest optional
     * with the defaults of GaussianConditionalOptions. Unknown keys, wrong types or values -> Error naming
     * the field.
     */
    static std::unique_ptr<GaussianConditional> fromConfig(const nlohmann::json& config);

private:
    void evaluateNetwork(const Eigen::MatrixXd& z, Workspace& ws) const;
    void checkSaved(const Workspace& ws, Workspace::Pass pass, const char* what) const;
    void backpropagate(Workspace& ws, Eigen::MatrixXd* gradZ, double* paramGrad) const;
    /** Accumulates the strictly lower part of g (dim X x dim X, dL/dM) into paramGrad's M block. */
    void accumulateMixingGradient(const Eigen::MatrixXd& g, double* paramGrad) const;
    size_t mixingOffset() const;

    GaussianConditionalOptions options;
    nn::ResidualMLP network;
    Eigen::VectorXd freeLogStd; // with !conditionalStd
    Eigen::MatrixXd mixing;     // M, unit lower triangular (with fullCovariance; else empty)
};

} // namespace cgflow::flows

#endif
