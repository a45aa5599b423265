// EncoderDecoderModel: pathwise gradients of the bound against finite differences, the bound's
// surrogate as an importance weight for log Z, and training through ModelTrainer.
#include "CoreTestUtils.h"
#include "FlowTestUtils.h"
#include "cgflow/models/EncoderDecoderModel.h"
#include "cgflow/train/ModelTrainer.h"
#include "cgflow/stats/LogWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace cgflow::flows;
using namespace cgflow::models;
using namespace cgflow::train;
using cgflowtest::errorMessage;

namespace {

nlohmann::json config() {
    return {{"latent_dimension", 2}, {"data_dimension", 3},
            {"decoder", {{"hidden", 8}, {"activation", "tanh"}}},
            {"encoder", {{"hidden", 8}, {"activation", "tanh"}}}, {"seed", 4}};
}

void perturb(EncoderDecoderModel& model, unsigned seed, double scale) {
    std::vector<double> p(model.getNumParameters());
    model.getParameters(p.data());
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, scale);
    for (double& v : p)
        v += noise(rng);
    model.setParameters(p.data());
}

nlohmann::json configWithPrior() {
    nlohmann::json c = config();
    c["prior"] = {{"coupling", "spline"}, {"num_layers", 2}, {"hidden", 8}, {"bound", 4}, {"num_threads", 1}};
    return c;
}

} // namespace

TEST(EncoderDecoderModel, PathwiseGradientsMatchFiniteDifferences) {
    EncoderDecoderModel model(config());
    perturb(model, 1, 0.2);
    cgflowtest::expectPathwiseGradientsMatch(model, 5, 7, 3);
}

TEST(EncoderDecoderModel, PathwiseGradientsMatchFiniteDifferencesWithPriorFlow) {
    // z = T(base) now depends on the prior's parameters: dL/dz from the encoder (z is its output), from the
    // decoder (its condition) and from log q(z) must all reach the flow.
    EncoderDecoderModel model(configWithPrior());
    ASSERT_TRUE(model.hasPriorFlow());
    perturb(model, 2, 0.2);
    cgflowtest::expectPathwiseGradientsMatch(model, 5, 8, 3);
}

TEST(EncoderDecoderModel, PriorFlowDensityIsTheFlowsAndWeightsStayValid) {
    // The surrogate's log q(z) is the flow's exact density: log Z of a 3-D standard Gaussian energy from
    // the surrogate weights stays exact with a perturbed (non-Gaussian) prior.
    EncoderDecoderModel model(configWithPrior());
    perturb(model, 5, 0.1);
    Eigen::MatrixXd x, z;
    Eigen::VectorXd s;
    model.sample(200000, 13, x, s, &z);
    std::vector<double> logW(s.size());
    for (Eigen::Index i = 0; i < s.size(); i++)
        logW[i] = -0.5 * x.col(i).squaredNorm() - s[i];
    const cgflow::stats::Estimate logZ = cgflow::stats::logMeanExp(logW);
    EXPECT_LT(std::fabs(logZ.value - 1.5 * std::log(2 * M_PI)), 4 * logZ.error + 1e-3) << logZ.value << " +- " << logZ.error;
    // z is the flow's sample, not N(0, I) noise: the perturbed prior moves its moments.
    Eigen::MatrixXd zFlow;
    Eigen::VectorXd logQz;
    model.getPriorFlow().sample(200000, 13, nullptr, zFlow, logQz);
    EXPECT_LT((z - zFlow).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_NE(errorMessage([] {
                  nlohmann::json c = configWithPrior();
                  c["prior"]["dimension"] = 3;
                  EncoderDecoderModel m(c);
              }).find("latent_dimension = 2"),
              std::string::npos);
    EXPECT_NE(errorMessage([] {
                  EncoderDecoderModel m(config());
                  m.getPriorFlow();
              }).find("N(0, I)"), std::string::npos);
}

TEST(EncoderDecoderModel, SurrogateIsAnImportanceWeightForLogZ) {
    // U = |x|^2 / 2 in 3-D: Z = (2 pi)^(3/2) whatever the (perturbed) encoder and decoder.
    EncoderDecoderModel model(config());
    perturb(model, 3, 0.1);
    Eigen::MatrixXd x;
    Eigen::VectorXd s;
    model.sample(200000, 11, x, s);
    std::vector<double> logW(s.size());
    for (Eigen::Index i = 0; i < s.size(); i++)
        logW[i] = -0.5 * x.col(i).squaredNorm() - s[i];
    const cgflow::stats::Estimate logZ = cgflow::stats::logMeanExp(logW);
    EXPECT_LT(std::fabs(logZ.value - 1.5 * std::log(2 * M_PI)), 4 * logZ.error + 1e-3) << logZ.value << " +- " << logZ.error;
}

TEST(EncoderDecoderModel, TrainsAndValidatesItsConfig) {
    EncoderDecoderModel model(config());
    ModelTrainer trainer(model, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}}));
    double first = 0, last = 0;
    for (int step = 0; step < 80; step++) {
        Eigen::MatrixXd x;
        Eigen::VectorXd s;
        trainer.sample(128, 50 + step, nullptr, x, s);
        Eigen::VectorXd u = 2.0 * (x.array() - 1).square().colwise().sum().matrix().transpose();
        Eigen::MatrixXd f = -4.0 * (x.array() - 1).matrix();
        (step == 0 ? first : last) = trainer.reverseKLStep(u, f, 1.0).loss;
    }
    EXPECT_LT(last, first - 1.0);
    EXPECT_EQ(model.encode(Eigen::MatrixXd::Zero(3, 4)).rows(), 2);
    EXPECT_NE(errorMessage([] { EncoderDecoderModel m({{"latent_dimension", 0}, {"data_dimension", 3}}); })
                  .find("\"latent_dimension\" must be an integer >= 1"),
              std::string::npos);
}
