#ifndef CGFLOW_FLOWS_CONTINUOUSFLOW_H_
#define CGFLOW_FLOWS_CONTINUOUSFLOW_H_

#include "cgflow/flows/Bijection.h"
#include "cgflow/flows/OdeIntegrator.h"
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/MLP.h"

#include <atomic>

namespace cgflow::flows {

/** The architecture of a ContinuousFlow's vector field and how it is integrated. */
struct ContinuousFlowOptions {
    std::vector<int> hidden = {96, 96, 96};          ///< hidden widths (the CG-BG paper's MB network)
    int timeEmbedding = 16;                          ///< even, >= 0: (cos, sin) of timeEmbedding / 2 frequencies
    nn::Activation activation = nn::Activation::SiLU; ///< smooth (the divergence is exact only where f' exists)
    OdeOptions ode;
};

/** Per-thread buffers of a ContinuousFlow. */
struct ContinuousFlowWorkspace : BijectionWorkspace {
    template <class Scalar>
    struct Buffers {
        using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
        Matrix activation, pre, derivative; // a_l, z_l and f'(z_l) of the layer being swept
        Matrix tangent, tangentNext;        // forward-mode tangents, one column per (sample, input dimension)
        Matrix output;
    };
    Buffers<double> dbl;
    Buffers<float> flt;
    Eigen::MatrixXd features, velocity, target;
    Eigen::VectorXd divergence;
    nn::MLP::Workspace network; // the training pass
    OdeWorkspace ode;
    Eigen::MatrixXd state;      // (dimension + 1) x n: x and the accumulated log-det
};

/**
 * A continuous normalizing flow (Chen et al. 2018) as one layer of a Flow: the map from base to data
 * is the solution at t = 1 of dx/dt = v_theta(x, t) from x(0) = z, and its log|det J| is
 * the integral of the divergence of v over the path (the instantaneous change of variables), so
 * log q(x) = log p(z) - int_0^1 (div v)(x(t), t) dt. Trained by conditional flow matching
 * (ModelTrainer::flowMatchingStep), not by differentiating through the solver: backward() is an Error.
 *
 * The vector field is an MLP (nn::MLP, hidden activation smooth, linear output) of the features
 * [x, time embedding]: a real dimension enters as its value, a circular one as (cos, sin), so v is
 * periodic in every angle and the flow is a diffeomorphism of the torus x R^k; outputs of circular
 * dimensions are angular velocities and are wrapped into [-pi, pi) at the end. The time embedding
 * is (cos(w_k t), sin(w_k t)) with w_k = pi (k + 1) / 2, k < timeEmbedding / 2 (fixed, not learned).
 *
 * The divergence is EXACT: the trace of the network's input Jacobian, propagated in forward mode
 * with one tangent per input dimension (for d dimensions, d tangent columns per sample, batched so
 * that every hidden layer is one GEMM of the weights with all tangents), never a Hutchinson estimate,
 * which would bias importance weights. Integration: integrateDormandPrince (adaptive DOPRI5 with
 * per-sample steps) on the state (x, log-det) with the layer's tolerances.
 *
 * Precision: Float64 (default), or Mixed: the network's GEMMs, activations and tangents in float32
 * on float copies of the weights, the ODE state, the error control and the divergence sum in double.
 *
 * Thread safety: apply() is const and keeps per-call state in its workspace; the statistics
 * counters are atomic, so chunks on several threads may run at once.
 */
class ContinuousFlow : public Bijection {
public:
    ContinuousFlow(std::vector<bool> inputCircular, const ContinuousFlowOptions& options);

    std::string getTypeName() const override { return "continuous_flow"; }
    /** {"type": "continuous_flow", "hidden": [...], "time_embedding", "activation", "atol", "rtol", "initial_step", "max_steps"}. */
    nlohmann::json getConfig() const override;
    /** Missing fields take the defaults of ContinuousFlowOptions; unknown fields and bad values -> Error naming them. */
    static std::unique_ptr<ContinuousFlow> fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular);

    const ContinuousFlowOptions& getOptions() const { return options; }
    /** Change the integrator's tolerances and limits (not part of the parameters). */
    void setOdeOptions(const OdeOptions& ode);
    const nn::MLP& getNetwork() const { return network; }
    /** Rows of the network input: dimension + circular dimensions + timeEmbedding. */
    int getFeatureSize() const { return featureSize; }

    size_t getNumParameters() const override { return network.getNumParameters(); }
    void getParameters(double* out) const override { network.getParameters(out); }
    void setParameters(const double* in) override;
    /** Glorot-uniform weights, zero biases (nn::MLP::initializeParameters). */
    void initializeParameters(uint64_t seed) override;
    void setPrecision(nn::Precision precision) override;
    nn::Precision getPrecision() const { return precision; }

    std::unique_ptr<BijectionWorkspace> createWorkspace() const override;
    /** Integrates from t = 0 to 1 (Forward) or 1 to 0 (Inverse); samples the integrator gives up on become NaN. */
    void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context, double* logDet,
               BijectionWorkspace& ws, bool save) const override;
    /** Error: a continuous flow is trained by flow matching, not through its solver. */
    void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                  double* paramGrad, BijectionWorkspace& ws) const override;

    /**
     * v(x, t) (dimension x n) for columns x with times t (n), and, if divergence is non-null, the
     * exact divergence d/dx . v of every column, in the layer's precision.
     */
    void velocity(const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& x,
                  Eigen::Ref<Eigen::MatrixXd> v, double* divergence, ContinuousFlowWorkspace& ws) const;
    /**
     * The conditional flow-matching loss of a batch, sum_i sum_d (v_d(x_i, t_i) - u_d,i)^2 (returned,
     * in float64 whatever the precision), and its parameter gradient times gradScale ACCUMULATED into
     * paramGrad (may be null).
     */
    double flowMatchingLoss(const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& x,
                            const Eigen::Ref<const Eigen::MatrixXd>& target, double gradScale, double* paramGrad,
                            ContinuousFlowWorkspace& ws) const;

    /** What the integrations cost since the last reset (OdeStatistics summed over every apply()). */
    OdeStatistics getStatistics() const;
    void resetStatistics();

private:
    void buildFeatures(const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& x,
                       Eigen::MatrixXd& features) const;
    template <class Scalar>
    void velocityImpl(const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& x,
                      Eigen::Ref<Eigen::MatrixXd> v, double* divergence, ContinuousFlowWorkspace& ws) const;
    void buildPrecisionCopies();

    ContinuousFlowOptions options;
    int featureSize = 0;
    std::vector<int> featureOfDimension; // first feature row of each dimension (cos row for circular ones)
    nn::MLP network;
    nn::Precision precision = nn::Precision::Float64;
    std::vector<Eigen::MatrixXf> weightsSingle;
    std::vector<Eigen::VectorXf> biasesSingle;
    mutable std::atomic<int64_t> countSamples{0}, countEvaluations{0}, countAccepted{0}, countRejected{0},
        countFailed{0};
};

} // namespace cgflow::flows

#endif
