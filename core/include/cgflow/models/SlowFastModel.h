#ifndef CGFLOW_FLOWS_SLOWFASTMODEL_H_
#define CGFLOW_FLOWS_SLOWFASTMODEL_H_

#include "cgflow/flows/Flow.h"
#include "cgflow/flows/GaussianConditional.h"
#include "cgflow/train/TrainableModel.h"

#include <nlohmann/json.hpp>

#include <memory>

namespace cgflow::models {

// The building blocks these models are made of.
using flows::Flow;
using flows::GaussianConditional;
using train::TrainableModel;
using flows::Bijection;
using flows::BijectionWorkspace;

/**
 * The latent model of data-free coarse-graining (Stupp & Koutsourelakis, Sec. 2.1, Eqs. 5-13):
 *
 *   z ~ q_theta(z)          a normalizing flow on the slow variables (multimodal),
 *   X | z ~ q_theta(X | z)  a diagonal Gaussian whose mean and log-std are networks of z (fast, unimodal),
 *   x = f_phi(y), y = [z; X] a learnable linear bijection acting per atom: the right-stochastic matrix
 *                           (rigid-motion equivariant) or its permutation special case.
 *
 * so log q(x) = log q(z) + log q(X | z) - log|det J_f|. The pseudo-atoms of y are z first, then X, in
 * the map's atom-major order (for the 2-D double well with one slow and one fast coordinate and
 * componentsPerAtom = 1, y = (z, X) and x = A y with a 2 x 2 right-stochastic A: z = x1 and X = x2
 * when A is the identity).
 *
 * Reparametrized sampling from counter-based streams: z uses the flow's base draws of seed; the fast
 * noise eps ~ N(0, I) uses the seed's own second stream (seed + 0x9E3779B97F4A7C15), so a seed fixes
 * every sample independently of batch splits. Parameters: [flow | conditional | map], in one vector.
 *
 * Optional fast flow (not in the papers): X = mu(z) + exp(s(z)) * (M g(eps; z)) with g a conditional
 * normalizing flow (context z) on the standardized fast noise, started at the identity, so
 * log q(X | z) = log q_g(g(eps; z) | z) - sum(s(z)). The Gaussian's correlations and shape are then
 * z-dependent and non-Gaussian: what a conformation-dependent fine-scale distribution (the bond angles
 * of a peptide in alphaL against C7eq) needs, and what a single z-independent M cannot give.
 *
 * Config: {"slow": flow config (builder or explicit), "fast": gaussian_conditional config (its
 * condition/output dimensions are filled in from the flow and the map when omitted), "fast_flow"
 * (optional): flow config with a standard-normal base of dim X and context z ("dimension",
 * "context_dimension" and "context_circular" filled in from the fast conditional and the slow flow when
 * omitted), "map": {"type": "right_stochastic_linear" | "atom_permutation", ...}, "seed": s}. getConfig()
 * is explicit. Parameters: [slow flow | fast conditional | fast flow | map].
 */
class SlowFastModel : public TrainableModel {
public:
    explicit SlowFastModel(const nlohmann::json& config);
    nlohmann::json getConfig() const;

    int getDimension() const override { return dimension; }
    int getSlowDimension() const { return flow->getDimension(); }
    int getFastDimension() const { return dimension - flow->getDimension(); }
    Flow& getSlowFlow() { return *flow; }
    const GaussianConditional& getFastConditional() const { return *fast; }
    bool hasFastFlow() const { return fastFlow != nullptr; }
    /** The conditional flow on the fast noise; Error when the model has none. */
    Flow& getFastFlow();
    const Bijection& getMap() const { return *map; }

    size_t getNumParameters() const override;
    void getParameters(double* out) const override;
    void setParameters(const double* in) override;
    /** Each part from its own seed: flow seed, conditional seed + 1, map seed + 2, fast flow seed + 3. */
    void initializeParameters(uint64_t seed);

    /** Samples without keeping the pass: x (dimension x n), log q(x), and optionally y = [z; X]. */
    void sample(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent = nullptr);
    /**
     * Back-mapping: all-atom samples for given slow variables z (slowDimension x n). X | z is drawn from
     * the seed's fast stream (the same noise sample() uses for that seed), x = f([z; X]); logQ receives
     * the joint log q(x) = log q(z) + log q(X | z) - log|det J_f| and logQFast (if non-null) log q(X | z).
     * Nothing is kept for training.
     */
    void sampleGivenSlow(const Eigen::MatrixXd& z, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ,
                         Eigen::VectorXd* logQFast = nullptr);
    /** Exact log q(x): y = f^-1(x), then log q(z) + log q(X | z) - log|det J_f|. */
    void logProb(const Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent = nullptr);

    void sampleForTraining(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                           Eigen::VectorXd& logQ) override;
    /** Exact log q(x) as logProb(), keeping the pass (map, flow and conditional) for forward-KL gradients. */
    void logProbForTraining(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context, Eigen::VectorXd& logQ) override;
    void backwardLogProbForTraining(const Eigen::VectorXd& gradLogQ, double* paramGrad) override;
    void backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                        Eigen::MatrixXd* gradContext = nullptr, Eigen::MatrixXd* gradBase = nullptr) override;

private:
    void run(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent, bool save);
    /** The fast half of a sample at slow z with log q(z) = logQz: X | z from the seed's fast stream, x = f([z; X]). */
    void completeSample(const Eigen::MatrixXd& z, const Eigen::VectorXd& logQz, uint64_t seed, Eigen::MatrixXd& x,
                        Eigen::VectorXd& logQ, Eigen::MatrixXd* latent, Eigen::VectorXd* logQFast, bool save);

    size_t fastFlowOffset() const;  // of the fast flow's parameters in the flat vector
    size_t mapOffset() const;

    std::unique_ptr<Flow> flow;
    std::unique_ptr<GaussianConditional> fast;
    std::unique_ptr<Flow> fastFlow;  // null without "fast_flow"
    std::unique_ptr<Bijection> map;
    int dimension = 0;
    GaussianConditional::Workspace fastWorkspace;
    std::unique_ptr<BijectionWorkspace> mapWorkspace;
    Eigen::MatrixXd savedZ;
    // The parts accumulate their gradients here, not straight into the caller's array: Eigen's vectorized
    // reductions round differently with the destination's alignment, and an aligned buffer owned here
    // makes training bit-reproducible wherever the caller's array happens to lie.
    Eigen::VectorXd gradientBuffer;
    /** y = f^-1(x), log q(x) and optionally y; with save, the map, flow and conditional keep the pass. */
    void evaluateLogProb(const Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* latent, bool save);
    int savedBatch = -1;          // batch of the last sampleForTraining(), -1 when consumed
    int savedLogProbBatch = -1;   // batch of the last logProbForTraining(), -1 when consumed
};

} // namespace cgflow::models

#endif
