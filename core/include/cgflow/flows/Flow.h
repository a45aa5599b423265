#ifndef CGFLOW_FLOWS_FLOW_H_
#define CGFLOW_FLOWS_FLOW_H_

#include "cgflow/flows/BaseDensity.h"
#include "cgflow/flows/Bijection.h"
#include "cgflow/train/TrainableModel.h"

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

namespace cgflow::flows {

/**
 * A normalizing flow: a base density p(z) and bijections f_1 .. f_L, x = f_L(...f_1(z)), with
 * log q(x) = log p(z) - sum_l log|det J_{f_l}|, optionally conditioned on a context vector c that
 * every conditional layer reads (real context variables as values, circular ones as (cos, sin)).
 *
 * Batches are (dimension x n) matrices, one sample per column (the memory layout of a row-major
 * numpy array of shape (n, dimension)). Passes are split into contiguous column chunks run on up to
 * getNumThreads() threads, each with its own layer workspaces; base samples come from counter-based
 * Philox streams indexed by sample, so results do not depend on the thread count.
 *
 * Training: a pass run with save = true can be differentiated once by the matching backward call:
 *  - backwardSample(): pathwise gradients of L(x, log q) for samples drawn by sample() or
 *    transformFromBase() (reverse KL: dL/dx = -beta F / n from forces, dL/dlog q = 1 / n);
 *  - backwardLogProb(): gradients of L(log q(x)) for given x (forward KL / maximum likelihood).
 * The saved pass lives in the Flow, so a Flow runs one pass at a time (it is not re-entrant).
 */
class Flow : public train::TrainableModel {
public:
    /**
     * Checks, with Errors naming the layer: the base dimension equals each layer's dimension; the
     * base's circular dimensions (UniformCircle) are the first layer's circular inputs and each
     * layer's circular outputs are the next one's inputs; every conditional layer reads exactly
     * getContextFeatureSize() features.
     */
    Flow(BaseDensity base, std::vector<std::unique_ptr<Bijection>> layers, std::vector<bool> contextCircular = {});
    /** Builds a flow from a config (see FlowConfig.h); parameters are initialized from "seed" (default 0). */
    static std::unique_ptr<Flow> fromConfig(const nlohmann::json& config);
    /** The explicit config (base, context, every layer) that fromConfig() rebuilds this architecture from. */
    nlohmann::json getConfig() const;
    /**
     * An independent copy with the same layers, parameters, precision and thread count. A Flow keeps
     * per-pass workspaces, so every user that runs passes concurrently (a kernel per Context, the
     * integrator's inverse pass) takes its own copy of one decoded model instead of decoding again.
     */
    std::unique_ptr<Flow> clone() const;

    int getDimension() const override { return base.getDimension(); }
    /** Circular flags of the data side (x). */
    std::vector<bool> getCircular() const;
    int getContextDimension() const { return static_cast<int>(contextCircular.size()); }
    const std::vector<bool>& getContextCircular() const { return contextCircular; }
    /** Rows of context features the layers read: 1 per real, 2 per circular context variable. */
    int getContextFeatureSize() const { return contextFeatureSize; }
    const BaseDensity& getBase() const { return base; }
    int getNumLayers() const { return static_cast<int>(layers.size()); }
    const Bijection& getLayer(int index) const;
    Bijection& getLayer(int index);

    size_t getNumParameters() const override { return numParameters; }
    /** Offset of layer l's parameters in the flat vector (layers in order, each in its own layout). */
    size_t getParameterOffset(int layer) const;
    void getParameters(double* out) const override;
    void setParameters(const double* in) override;
    std::vector<double> getParameters() const;
    /** Size must be getNumParameters(), else Error. */
    void setParameters(const std::vector<double>& in);
    /** Layer l gets seed + l (so every layer's networks differ). */
    void initializeParameters(uint64_t seed);

    /** >= 1, else Error. Default: the hardware concurrency. */
    void setNumThreads(int numThreads);
    int getNumThreads() const { return numThreads; }
    void setPrecision(nn::Precision precision);
    nn::Precision getPrecision() const { return precision; }

    /**
     * n samples (n >= 0) with their log-densities: x is resized to (dimension x n), logQ to n.
     * Sample i uses base draw firstIndex + i of the seed's stream. context: null for an
     * unconditional flow, else (getContextDimension() x n), or x 1 to use one context for all.
     */
    void sample(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x, Eigen::VectorXd& logQ,
                bool save = false, uint64_t firstIndex = 0);
    /** The same from given base points z (dimension x n) instead of drawing them. */
    void transformFromBase(const Eigen::MatrixXd& z, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                           Eigen::VectorXd& logQ, bool save = false);
    /** log q(x) of every column of x; z (if non-null) receives the base points f^-1(x). */
    void logProb(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context, Eigen::VectorXd& logQ, bool save = false,
                 Eigen::MatrixXd* z = nullptr);

    /**
     * After sample()/transformFromBase() with save: gradX (dimension x n) = dL/dx, gradLogQ (n) =
     * dL/dlog q. ACCUMULATES dL/dparameters into paramGrad (getNumParameters(), may be null) and
     * dL/dcontext into gradContext (the context's shape, may be null); gradBase (may be null)
     * receives dL/dz. The saved pass is consumed.
     */
    void backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                        Eigen::MatrixXd* gradContext = nullptr, Eigen::MatrixXd* gradBase = nullptr) override;
    /** sample(n, seed, context, x, logQ, save = true): the TrainableModel entry point. */
    void sampleForTraining(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                           Eigen::VectorXd& logQ) override {
        sample(n, seed, context, x, logQ, true);
    }
    /**
     * After logProb() with save: gradLogQ (n) = dL/dlog q. ACCUMULATES into paramGrad and
     * gradContext (may be null); gradX (may be null) receives dL/dx. The saved pass is consumed.
     */
    void backwardLogProb(const Eigen::VectorXd& gradLogQ, double* paramGrad, Eigen::MatrixXd* gradX = nullptr,
                         Eigen::MatrixXd* gradContext = nullptr);
    /** logProb(x, context, logQ, true) and backwardLogProb(gradLogQ, paramGrad): the TrainableModel entry points. */
    void logProbForTraining(const Eigen::MatrixXd& x, const Eigen::MatrixXd* context, Eigen::VectorXd& logQ) override {
        logProb(x, context, logQ, true);
    }
    void backwardLogProbForTraining(const Eigen::VectorXd& gradLogQ, double* paramGrad) override {
        backwardLogProb(gradLogQ, paramGrad);
    }

private:
    enum class PassKind { None, Sample, LogProb };
    struct Pass {
        PassKind kind = PassKind::None;
        int n = 0;
        int numChunks = 1;
        bool broadcastContext = false;
        std::vector<Eigen::MatrixXd> contextFeatures; // per chunk (empty for unconditional flows)
        Eigen::MatrixXd contextValues;                // the context as given, for its gradient
        Eigen::MatrixXd base;                         // z of a log-prob pass (for d log p / dz)
    };

    int chooseChunks(int n) const;
    void prepareContext(const Eigen::MatrixXd* context, int n, int numChunks);
    void ensureWorkspaces(int numChunks);
    void runForward(Eigen::MatrixXd& x, Eigen::VectorXd& logQ, bool drawBase, uint64_t seed, uint64_t firstIndex,
                    bool save);
    void reduceGradients(double* paramGrad, const std::vector<Eigen::VectorXd>& chunkGrads, int numChunks) const;
    void contextGradient(const std::vector<Eigen::MatrixXd>& chunkFeatureGrads, Eigen::MatrixXd* gradContext) const;

    BaseDensity base;
    std::vector<std::unique_ptr<Bijection>> layers;
    std::vector<bool> contextCircular;
    int contextFeatureSize = 0;
    std::vector<size_t> parameterOffsets;
    size_t numParameters = 0;
    int numThreads = 1;
    nn::Precision precision = nn::Precision::Float64;

    std::vector<std::vector<std::unique_ptr<BijectionWorkspace>>> workspaces; // [chunk][layer]
    // Every chunk accumulates its parameter gradient in a buffer of its own, allocated by Eigen (so
    // packet-aligned) and only then added to the caller's: Eigen's vectorized reductions peel a
    // scalar prologue that depends on the destination's address, so accumulating straight into
    // arbitrary caller memory would make the last bits depend on where that memory happens to be.
    std::vector<Eigen::VectorXd> chunkParamGrads;
    Pass pass;
};

} // namespace cgflow::flows

#endif
