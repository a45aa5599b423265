#ifndef CGFLOW_FLOWS_BIJECTION_H_
#define CGFLOW_FLOWS_BIJECTION_H_

#include "cgflow/Error.h"
#include "cgflow/nn/Precision.h"

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cgflow::flows {

/**
 * Forward maps the base side to the data side (z -> x, the sampling direction); Inverse maps
 * data to base (x -> z, the density-evaluation direction).
 */
enum class Direction { Forward, Inverse };

/**
 * Per-thread scratch space of one bijection, and what its last apply() saved for backward().
 * Each bijection type derives its own; a Flow keeps one per layer per thread, so a batch split
 * into chunks runs every chunk on its own workspaces while the bijection itself stays const.
 */
struct BijectionWorkspace {
    virtual ~BijectionWorkspace() = default;
};

/**
 * One invertible layer of a flow, acting on a batch stored one sample per column (dimension x n),
 * as the conditioners' GEMMs want it.
 *
 * Every dimension is either real or circular (an angle on [-pi, pi], periodic); the layer is told
 * which at construction and a Flow checks that consecutive layers agree (getOutputCircular() of one
 * is getInputCircular() of the next, where "input" and "output" are meant in the Forward direction).
 *
 * Context: a conditional layer reads a context-feature matrix (contextFeatureSize x n) that the
 * Flow builds once per pass from the user's context vector (circular context variables as
 * (cos, sin)); getContextFeatureSize() = 0 means the layer ignores the context.
 *
 * Gradients: backward() is the vector-Jacobian product of the last apply() saved in the workspace,
 * for the loss L(output, logDet contribution): it turns dL/d(output) into dL/d(input) in place and
 * ACCUMULATES dL/d(parameters) and dL/d(context features), so chunks and several passes add up.
 */
class Bijection {
public:
    explicit Bijection(std::vector<bool> inputCircular) : inputCircular(std::move(inputCircular)) {}
    virtual ~Bijection() = default;
    Bijection(const Bijection&) = delete;
    Bijection& operator=(const Bijection&) = delete;

    int getDimension() const { return static_cast<int>(inputCircular.size()); }
    /** Which input dimensions (Forward direction) are circular. */
    const std::vector<bool>& getInputCircular() const { return inputCircular; }
    /** Which output dimensions are circular; the same as the input except for permutations. */
    virtual std::vector<bool> getOutputCircular() const { return inputCircular; }
    virtual int getContextFeatureSize() const { return 0; }

    /** The type name written to model files, e.g. "spline_coupling". */
    virtual std::string getTypeName() const = 0;
    /** Architecture (no weights) as JSON with a "type" field; Flow::fromConfig rebuilds it. */
    virtual nlohmann::json getConfig() const = 0;

    virtual size_t getNumParameters() const { return 0; }
    virtual void getParameters(double* /*out*/) const {}
    virtual void setParameters(const double* /*in*/) {}
    /** Deterministic initialization from a seed; layers with learnable maps start at (or near) the identity. */
    virtual void initializeParameters(uint64_t /*seed*/) {}
    /** Precision of the layer's matrix products (conditioners); layers without any ignore it. */
    virtual void setPrecision(nn::Precision /*precision*/) {}

    virtual std::unique_ptr<BijectionWorkspace> createWorkspace() const = 0;

    /**
     * Transform data (dimension x n) in place in the given direction and ADD each sample's
     * log|det J| of the map applied (Jacobian of that direction) to logDet[0 .. n). context is
     * null or (getContextFeatureSize() x n). With save, what backward() needs is kept in ws.
     */
    virtual void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                       double* logDet, BijectionWorkspace& ws, bool save) const = 0;

    /**
     * After apply(..., save = true) with the same ws: grad holds dL/d(output) on entry and dL/d(input)
     * on exit; gradLogDet[i] = dL/d(logDet contribution of sample i). If non-null, gradContext
     * (getContextFeatureSize() x n) and paramGrad (getNumParameters()) are ACCUMULATED.
     */
    virtual void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                          double* paramGrad, BijectionWorkspace& ws) const = 0;

protected:
    /** Error unless data is (getDimension() x n) and context matches getContextFeatureSize(). */
    void checkApplyArguments(const Eigen::Ref<Eigen::MatrixXd>& data, const Eigen::MatrixXd* context,
                             const double* logDet) const;

private:
    std::vector<bool> inputCircular;
};

/** A workspace of the expected derived type, or Error naming the bijection (a mixed-up workspace). */
template <class W>
W& workspaceAs(BijectionWorkspace& ws, const char* bijectionName) {
    W* typed = dynamic_cast<W*>(&ws);
    if (typed == nullptr)
        throw Error(std::string(bijectionName) + ": the workspace was not created by this bijection type");
    return *typed;
}

} // namespace cgflow::flows

#endif
