#ifndef CGFLOW_FLOWS_ENCODERDECODERMODEL_H_
#define CGFLOW_FLOWS_ENCODERDECODERMODEL_H_

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

/**
 * The hierarchical variational model of the embedded-physics CG paper (Schoeberl, Zabaras &
 * Koutsourelakis, Sec. 1.5): latent CVs z ~ q(z) = N(0, I), a Gaussian decoder q_theta(x | z) and a
 * Gaussian encoder r_phi(z | x). Training minimizes the upper bound of the reverse KL (Eq. 42)
 *
 *   beta <U(x)> + <log q(z) + log q_theta(x | z) - log r_phi(z | x)>   over (z, x) ~ q(z) q_theta(x | z),
 *
 * so the "log q" this model reports per sample is that surrogate s = log q(z) + log q(x|z) - log r(z|x)
 * (>= log q(x) on average). It is also a valid importance weight: E_q[exp(-beta U) / exp(s)] = Z
 * because r integrates to one over z, which is what the tempering estimators need.
 *
 * Optional flow prior (not in the paper, whose q(z) is fixed): "prior": an unconditional flow config of
 * dimension d ("dimension" filled in), so q(z) is learned and may be multimodal. With N(0, I), the
 * decoder's smooth mean has to pass through the barrier between two conformations over a region of z that
 * holds prior mass, and reverse KL pays for every sample decoded there; a learned q(z) can leave that
 * region empty. log q(z) is the flow's exact density, so the bound and the importance weight stay valid.
 *
 * Config: {"latent_dimension": d, "data_dimension": D, "decoder": gaussian_conditional config (sizes
 * filled in; default a z-independent log-std, as in the paper), "encoder": gaussian_conditional config
 * (sizes filled in), "prior" (optional): flow config, "seed": s}. Noise: z from the seed's stream (the
 * prior flow's base draws when there is one), the decoder's noise from a second one.
 * Parameters: [decoder | encoder | prior flow].
 */
class EncoderDecoderModel : public TrainableModel {
public:
    explicit EncoderDecoderModel(const nlohmann::json& config);
    nlohmann::json getConfig() const;

    int getDimension() const override { return decoder->getOutputSize(); }
    int getLatentDimension() const { return decoder->getConditionSize(); }
    const GaussianConditional& getDecoder() const { return *decoder; }
    const GaussianConditional& getEncoder() const { return *encoder; }
    bool hasPriorFlow() const { return prior != nullptr; }
    /** The flow q(z); Error when the model has the fixed N(0, I) prior (no "prior" in its config). */
    Flow& getPriorFlow();
    size_t getNumParameters() const override;
    void getParameters(double* out) const override;
    void setParameters(const double* in) override;
    /** Decoder from seed, encoder from seed + 1, prior flow from seed + 2. */
    void initializeParameters(uint64_t seed);

    /** Samples without keeping the pass: x (D x n), the surrogate log q, and optionally z. */
    void sample(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& surrogateLogQ, Eigen::MatrixXd* z = nullptr);
    /** The encoder's mean of z for given x (D x n): the learned collective variables. */
    Eigen::MatrixXd encode(const Eigen::MatrixXd& x) const;

    void sampleForTraining(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                           Eigen::VectorXd& logQ) override;
    void backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                        Eigen::MatrixXd* gradContext = nullptr, Eigen::MatrixXd* gradBase = nullptr) override;

private:
    void run(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* z, bool save);

    size_t priorOffset() const { return decoder->getNumParameters() + encoder->getNumParameters(); }

    std::unique_ptr<GaussianConditional> decoder, encoder;
    std::unique_ptr<Flow> prior;  // null: q(z) = N(0, I)
    GaussianConditional::Workspace decoderWorkspace, encoderWorkspace;
    Eigen::VectorXd gradientBuffer; // aligned, for bit-reproducible accumulation (see SlowFastModel)
    int savedBatch = -1;
};

} // namespace cgflow::models

#endif
