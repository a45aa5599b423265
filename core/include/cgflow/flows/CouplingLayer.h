#ifndef CGFLOW_FLOWS_COUPLINGLAYER_H_
#define CGFLOW_FLOWS_COUPLINGLAYER_H_

#include "cgflow/flows/Bijection.h"
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/ResidualMLP.h"

namespace cgflow::flows {

/** What every coupling layer shares: which dimensions it transforms and its conditioner. */
struct CouplingOptions {
    /** One entry per dimension: true = transformed elementwise, false = passed through and fed to the conditioner. */
    std::vector<bool> transformed;
    /** Rows of context features the conditioner also reads (0 = not conditional). */
    int contextFeatureSize = 0;
    int hiddenSize = 256;
    int numBlocks = 1;
    nn::Activation activation = nn::Activation::ReLU;
};

/** Per-thread buffers of a coupling layer; apply() leaves in it what backward() needs. */
struct CouplingWorkspace : BijectionWorkspace {
    nn::ResidualMLP::Workspace conditioner;
    Eigen::MatrixXd features;     // conditioner input: pass-through dims (circular as cos, sin), then context
    Eigen::MatrixXd raw;          // conditioner output: the elementwise transforms' raw parameters
    Eigen::MatrixXd in, out;      // transformed dims gathered (real dims first, then circular)
    Eigen::MatrixXd gradOut, gradIn, gradRaw, gradFeatures;
    Eigen::VectorXd scratch;      // per-scalar log-dets and upstream log-det gradients of one sample
    Direction direction = Direction::Forward;
    Eigen::Index savedBatch = -1; // columns of the saved pass, -1 if none
};

/**
 * A coupling layer (Dinh et al.; Durkan et al.): the transformed dimensions T go through an
 * elementwise bijection whose raw parameters are the output of a conditioner network (a residual
 * MLP, nn::ResidualMLP) of the pass-through dimensions and the context; the pass-through
 * dimensions are copied. The Jacobian is triangular, so log|det J| is the sum of the elementwise
 * log-derivatives.
 *
 * Conditioner input: each pass-through dimension in order, a real one as its value and a circular
 * one as (cos, sin) so the network sees the angle continuously across +-pi, followed by the context
 * features. When there is no input at all (every dimension transformed and no context), the raw
 * parameters are free learnable parameters shared by all samples: an elementwise flow layer.
 *
 * Transformed dimensions are handled real ones first (ascending), then circular ones (ascending);
 * the conditioner's output is laid out in that order. Subclasses supply the elementwise transform.
 */
class CouplingLayer : public Bijection {
public:
    const std::vector<bool>& getTransformed() const { return transformed; }
    int getContextFeatureSize() const override { return contextFeatureSize; }
    /** Raw parameters per sample (the conditioner's output size). */
    int getRawSize() const { return rawSize; }
    /** Whether a network computes the raw parameters (false: free parameters). */
    bool hasConditioner() const { return conditionerInputSize > 0; }
    /** Error if !hasConditioner(). */
    const nn::ResidualMLP& getConditioner() const;

    size_t getNumParameters() const override;
    void getParameters(double* out) const override;
    void setParameters(const double* in) override;
    /**
     * Glorot-uniform hidden layers, zero output weights, and output biases from
     * identityRawParameters(): the layer starts as the identity map whatever its input.
     */
    void initializeParameters(uint64_t seed) override;
    /** The conditioner's precision (free raw parameters have no matrix products). */
    void setPrecision(nn::Precision precision) override;

    std::unique_ptr<BijectionWorkspace> createWorkspace() const override;
    void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context, double* logDet,
               BijectionWorkspace& ws, bool save) const override;
    void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                  double* paramGrad, BijectionWorkspace& ws) const override;

protected:
    /**
     * rawPerReal / rawPerCircular: raw parameters per transformed real / circular dimension. Error
     * for a transformed mask of the wrong size, nothing transformed, or bad conditioner sizes.
     */
    CouplingLayer(const char* name, std::vector<bool> inputCircular, const CouplingOptions& options, int rawPerReal,
                  int rawPerCircular);

    /**
     * Elementwise transform of ws.in (|T| x n) into ws.out with raw parameters ws.raw (getRawSize() x n),
     * adding each sample's summed log-derivative to logDet[0 .. n).
     */
    virtual void transform(Direction direction, CouplingWorkspace& ws, double* logDet) const = 0;
    /**
     * Its VJP at the saved pass: from ws.gradOut and gradLogDet, WRITE ws.gradIn (|T| x n) and
     * ws.gradRaw (getRawSize() x n).
     */
    virtual void transformBackward(CouplingWorkspace& ws, const double* gradLogDet) const = 0;
    /** The raw parameters of one sample that make the elementwise transform the identity. */
    virtual void identityRawParameters(double* raw) const = 0;
    /** The fields every coupling layer writes to its config. */
    nlohmann::json couplingConfig() const;
    /** Parses the fields of couplingConfig() (context_features, hidden, num_blocks, activation, transformed). */
    static CouplingOptions parseCouplingOptions(const nlohmann::json& config, int dimension, const char* layerType);

    int numRealTransformed() const { return numReal; }
    int numCircularTransformed() const { return numCircular; }

private:
    void buildFeatures(const Eigen::Ref<Eigen::MatrixXd>& data, const Eigen::MatrixXd* context,
                       Eigen::MatrixXd& features) const;

    const char* name;
    std::vector<bool> transformed;
    int contextFeatureSize;
    std::vector<int> transformedDims; // real first, then circular
    std::vector<int> passDims;
    int numReal = 0, numCircular = 0;
    int rawSize = 0;
    int conditionerInputSize = 0;
    nn::ResidualMLP conditioner;      // when conditionerInputSize > 0
    Eigen::VectorXd freeRaw;          // otherwise
};

} // namespace cgflow::flows

#endif
