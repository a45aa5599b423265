// SlowFastModel: log q of samples against the exact change of variables, pathwise gradients against
// finite differences, and training through ModelTrainer's generic (TrainableModel) path.
#include "CoreTestUtils.h"
#include "FlowTestUtils.h"
#include "cgflow/train/ModelTrainer.h"
#include "cgflow/flows/RightStochasticLinear.h"
#include "cgflow/models/SlowFastModel.h"
#include "cgflow/io/SafeTensors.h"
#include "cgflow/io/models/SlowFastModelFile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace cgflow::flows;
using namespace cgflow::models;
using namespace cgflow::train;
using cgflowtest::errorMessage;

namespace {

nlohmann::json smallConfig() {
    return {{"slow", {{"dimension", 2}, {"num_layers", 2}, {"hidden", 8}, {"base", "truncated_normal"}, {"num_threads", 1}}},
            {"fast", {{"hidden", 8}, {"num_blocks", 1}, {"activation", "relu"}}},
            {"map", {{"type", "right_stochastic_linear"}, {"num_atoms", 4}, {"components_per_atom", 1},
                     {"initial_logit_noise", 0.5}}},
            {"seed", 3}};
}

/**
 * With the fast flow: circular slow variables (so the flow's context carries angle features), a full-covariance
 * Gaussian and affine couplings on the 3 fast coordinates.
 */
nlohmann::json fastFlowConfig() {
    return {{"slow", {{"dimension", 2}, {"circular", {0}}, {"num_layers", 2}, {"hidden", 8}, {"num_threads", 1}}},
            {"fast", {{"hidden", 8}, {"num_blocks", 1}, {"activation", "relu"}, {"covariance", "full"}}},
            {"fast_flow", {{"coupling", "affine"}, {"num_layers", 2}, {"hidden", 8}, {"num_threads", 1}}},
            {"map", {{"type", "right_stochastic_linear"}, {"num_atoms", 5}, {"components_per_atom", 1},
                     {"initial_logit_noise", 0.5}}},
            {"seed", 3}};
}

/** Non-trivial parameters: small noise on everything, so no network outputs exactly zero. */
void perturb(SlowFastModel& model, unsigned seed) {
    std::vector<double> p(model.getNumParameters());
    model.getParameters(p.data());
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 0.1);
    for (double& v : p)
        v += noise(rng);
    model.setParameters(p.data());
}

} // namespace

TEST(SlowFastModel, LogQOfSamplesIsTheExactChangeOfVariables) {
    SlowFastModel model(smallConfig());
    perturb(model, 1);
    ASSERT_EQ(model.getDimension(), 4);
    ASSERT_EQ(model.getSlowDimension(), 2);
    Eigen::MatrixXd x, latent, latentBack;
    Eigen::VectorXd logQ, logQBack;
    model.sample(50, 9, x, logQ, &latent);
    model.logProb(x, logQBack, &latentBack);
    EXPECT_LT((logQ - logQBack).cwiseAbs().maxCoeff(), 1e-9);
    EXPECT_LT((latent - latentBack).cwiseAbs().maxCoeff(), 1e-10);
    // x = A y with the map's matrix.
    const auto& A = dynamic_cast<const RightStochasticLinear&>(model.getMap()).getMatrix();
    EXPECT_LT((A * latent - x).cwiseAbs().maxCoeff(), 1e-12);
    // Deterministic for a seed.
    Eigen::MatrixXd x2;
    Eigen::VectorXd logQ2;
    model.sample(50, 9, x2, logQ2);
    EXPECT_EQ(x, x2);
}

TEST(SlowFastModel, SampleGivenSlowBackMapsWithTheSameFastNoiseAndExactDensities) {
    SlowFastModel model(smallConfig());
    perturb(model, 2);
    Eigen::MatrixXd x, latent;
    Eigen::VectorXd logQ;
    model.sample(40, 11, x, logQ, &latent);
    // The seed's fast stream is shared with sample(): given sample()'s own z, the same x comes back.
    Eigen::MatrixXd xGiven;
    Eigen::VectorXd logQGiven, logQFast;
    const Eigen::MatrixXd z = latent.topRows(2);
    model.sampleGivenSlow(z, 11, xGiven, logQGiven, &logQFast);
    EXPECT_LT((xGiven - x).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((logQGiven - logQ).cwiseAbs().maxCoeff(), 1e-10);
    // Any z, here one slow point repeated: the fast parts differ, z is kept, and log q is the model's density.
    Eigen::MatrixXd zRepeated = z.col(0).replicate(1, 6), xRepeated, latentBack;
    Eigen::VectorXd logQRepeated, logQBack, logQFastRepeated;
    model.sampleGivenSlow(zRepeated, 12, xRepeated, logQRepeated, &logQFastRepeated);
    model.logProb(xRepeated, logQBack, &latentBack);
    EXPECT_LT((logQRepeated - logQBack).cwiseAbs().maxCoeff(), 1e-9);
    EXPECT_LT((latentBack.topRows(2) - zRepeated).cwiseAbs().maxCoeff(), 1e-10);
    EXPECT_GT((latentBack.bottomRows(2).col(0) - latentBack.bottomRows(2).col(1)).norm(), 1e-3);
    // log q(x) - log q(X | z) is the same for every fast draw: log q(z) - log|det J| does not depend on X.
    const Eigen::VectorXd rest = logQRepeated - logQFastRepeated;
    EXPECT_LT(rest.maxCoeff() - rest.minCoeff(), 1e-10);
    EXPECT_NE(errorMessage([&] { model.sampleGivenSlow(Eigen::MatrixXd::Zero(3, 2), 1, xGiven, logQGiven); })
                  .find("slow dimension"),
              std::string::npos);
}

TEST(SlowFastModel, PathwiseGradientsMatchFiniteDifferences) {
    SlowFastModel model(smallConfig());
    perturb(model, 2);
    // A spread of all parameters and the last 16 (map logits and the conditional's output layer).
    cgflowtest::expectPathwiseGradientsMatch(model, 6, 17, model.getNumParameters() / 40, 16);
}

TEST(SlowFastModel, TrainsThroughFlowTrainerAndRejectsBadConfigs) {
    SlowFastModel model(smallConfig());
    ModelTrainer trainer(model, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}}));
    // U = 0.5 |x - 1|^2 at beta = 1: the loss must fall.
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        Eigen::MatrixXd x;
        Eigen::VectorXd logQ;
        trainer.sample(128, 100 + step, nullptr, x, logQ);
        Eigen::VectorXd u = 0.5 * (x.array() - 1).square().colwise().sum().matrix().transpose();
        Eigen::MatrixXd f = -(x.array() - 1).matrix();
        const TrainStepReport r = trainer.reverseKLStep(u, f, 1.0);
        (step == 0 ? first : last) = r.loss;
    }
    EXPECT_LT(last, first - 0.5);
    EXPECT_NE(errorMessage([&] { trainer.getFlow(); }).find("not a Flow"), std::string::npos);
    nlohmann::json bad = smallConfig();
    bad["map"]["num_atoms"] = 2;
    EXPECT_NE(errorMessage([&] { SlowFastModel m(bad); }).find("must exceed the slow dimension"), std::string::npos);
    bad = smallConfig();
    bad["extra"] = 1;
    EXPECT_NE(errorMessage([&] { SlowFastModel m(bad); }).find("unknown key \"extra\""), std::string::npos);
    // An unknown map type is reported by name (before num_atoms, which such a map need not have).
    bad = smallConfig();
    bad["map"] = {{"type", "bogus"}};
    std::string message = errorMessage([&] { SlowFastModel m(bad); });
    EXPECT_NE(message.find("map type must be"), std::string::npos) << message;
    EXPECT_NE(message.find("\"bogus\""), std::string::npos) << message;
}

namespace {

/** L = sum_i w_i log q(x_i) on points near the model's samples: logProbForTraining's gradients against central differences. */
void expectLogProbGradientsMatch(const nlohmann::json& config) {
    SlowFastModel model(config);
    perturb(model, 5);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    model.sample(12, 21, x, logQ);
    x += 0.05 * Eigen::MatrixXd::Random(x.rows(), x.cols()); // not only the model's own samples
    Eigen::VectorXd weights = Eigen::VectorXd::Random(x.cols()); // L = sum_i w_i log q(x_i)
    const size_t P = model.getNumParameters();
    std::vector<double> grad(P, 0.0), params(P);
    model.logProbForTraining(x, nullptr, logQ);
    model.backwardLogProbForTraining(weights, grad.data());
    model.getParameters(params.data());
    auto loss = [&]() {
        Eigen::VectorXd lq;
        model.logProb(x, lq);
        return weights.dot(lq);
    };
    const double h = 1e-6;
    int checked = 0;
    // Every 7th parameter, and all of the map's (the last ones): flow, conditional and map all covered.
    for (size_t k = 0; k < P; k += (k + 40 < P ? 7 : 1)) {
        const double saved = params[k];
        params[k] = saved + h;
        model.setParameters(params.data());
        const double plus = loss();
        params[k] = saved - h;
        model.setParameters(params.data());
        const double minus = loss();
        params[k] = saved;
        model.setParameters(params.data());
        const double numeric = (plus - minus) / (2 * h);
        EXPECT_NEAR(grad[k], numeric, 1e-5 * (1 + std::abs(numeric))) << "parameter " << k;
        checked++;
    }
    EXPECT_GT(checked, 50);
    // The pass is consumed; a second backward is an error naming what is missing.
    EXPECT_NE(errorMessage([&] { model.backwardLogProbForTraining(weights, grad.data()); })
                  .find("needs a preceding logProbForTraining"), std::string::npos);
}

} // namespace

TEST(SlowFastModel, LogProbGradientsForForwardKLMatchFiniteDifferences) {
    expectLogProbGradientsMatch(smallConfig());
}

TEST(SlowFastModel, FastFlowStartsAtTheIdentityAndKeepsLogQExact) {
    nlohmann::json withoutFlow = fastFlowConfig();
    withoutFlow.erase("fast_flow");
    SlowFastModel model(fastFlowConfig()), plain(withoutFlow);
    ASSERT_TRUE(model.hasFastFlow());
    ASSERT_FALSE(plain.hasFastFlow());
    EXPECT_EQ(model.getFastFlow().getDimension(), 3);
    EXPECT_EQ(model.getFastFlow().getContextCircular(), (std::vector<bool>{true, false}));
    EXPECT_EQ(model.getNumParameters(), plain.getNumParameters() + model.getFastFlow().getNumParameters());
    // A fresh fast flow is the identity: the same samples and densities as the model without it.
    Eigen::MatrixXd x, xPlain;
    Eigen::VectorXd logQ, logQPlain;
    model.sample(30, 4, x, logQ);
    plain.sample(30, 4, xPlain, logQPlain);
    EXPECT_LT((x - xPlain).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((logQ - logQPlain).cwiseAbs().maxCoeff(), 1e-10);
    // Trained (perturbed) parameters: log q of the samples equals logProb's inverse pass, the config round-trips.
    perturb(model, 7);
    Eigen::MatrixXd latent, latentBack;
    Eigen::VectorXd logQBack;
    model.sample(40, 5, x, logQ, &latent);
    model.logProb(x, logQBack, &latentBack);
    EXPECT_LT((logQ - logQBack).cwiseAbs().maxCoeff(), 1e-9);
    EXPECT_LT((latent - latentBack).cwiseAbs().maxCoeff(), 1e-10);
    SlowFastModel rebuilt(model.getConfig());
    std::vector<double> p(model.getNumParameters());
    model.getParameters(p.data());
    rebuilt.setParameters(p.data());
    Eigen::MatrixXd xRebuilt;
    Eigen::VectorXd logQRebuilt;
    rebuilt.sample(40, 5, xRebuilt, logQRebuilt);
    EXPECT_EQ(x, xRebuilt);
    EXPECT_EQ(logQ, logQRebuilt);
}

TEST(SlowFastModel, FastFlowConditionalDensityIsNormalized) {
    // x = [z; X] (identity permutation), dim z = 1, dim X = 2: at a fixed z0, the integral over X of q(z0, X)
    // is q(z0), i.e. log q(X | z) with the fast flow is a normalized density (a missing or doubled noise
    // density term would scale it by a z- and X-dependent factor).
    const nlohmann::json config = {
        {"slow", {{"dimension", 1}, {"num_layers", 2}, {"coupling", "elementwise"}, {"hidden", 8}, {"num_threads", 1}}},
        {"fast", {{"hidden", 8}, {"num_blocks", 1}, {"activation", "tanh"}, {"covariance", "full"}}},
        {"fast_flow", {{"coupling", "spline"}, {"num_layers", 2}, {"hidden", 8}, {"num_threads", 1}}},
        {"map", {{"type", "atom_permutation"}, {"num_atoms", 3}, {"components_per_atom", 1}, {"permutation", {0, 1, 2}}}},
        {"seed", 1}};
    SlowFastModel model(config);
    perturb(model, 3);
    const double z0 = 0.3;
    Eigen::MatrixXd xz;
    Eigen::VectorXd logQz, logQFast;
    model.sampleGivenSlow(Eigen::MatrixXd::Constant(1, 1, z0), 1, xz, logQz, &logQFast);
    const double logQOfZ = logQz[0] - logQFast[0];
    const int m = 321;
    const double lo = -8, h = 16.0 / (m - 1);
    Eigen::MatrixXd grid(3, m * m);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            grid.col(i * m + j) << z0, lo + i * h, lo + j * h;
    Eigen::VectorXd logQ;
    model.logProb(grid, logQ);
    const double integral = (logQ.array() - logQOfZ).exp().sum() * h * h;
    EXPECT_NEAR(integral, 1.0, 2e-3);
}

TEST(SlowFastModel, FastFlowGradientsMatchFiniteDifferences) {
    // Both Gaussians: the noise gradients of GaussianConditional differ with and without the mixing M.
    for (const char* covariance : {"full", "diagonal"}) {
        SCOPED_TRACE(covariance);
        nlohmann::json config = fastFlowConfig();
        config["fast"]["covariance"] = covariance;
        SlowFastModel model(config);
        perturb(model, 4);
        // Pathwise (reverse KL): every 5th parameter and the last 60 (the fast flow's output layers and the map).
        cgflowtest::expectPathwiseGradientsMatch(model, 6, 19, 5, 60);
        // log q for forward KL: every 7th and the last 40.
        expectLogProbGradientsMatch(config);
    }
}

TEST(SlowFastModel, FastFlowConfigErrorsNameTheProblem) {
    nlohmann::json bad = fastFlowConfig();
    bad["fast_flow"] = 3;
    EXPECT_NE(errorMessage([&] { SlowFastModel m(bad); }).find("\"fast_flow\" must be a flow config"), std::string::npos);
    bad = fastFlowConfig();
    bad["fast_flow"]["dimension"] = 2;
    EXPECT_NE(errorMessage([&] { SlowFastModel m(bad); }).find("dimension dim X = 3"), std::string::npos);
    bad = fastFlowConfig();
    bad["fast_flow"]["base"] = "truncated_normal";
    EXPECT_NE(errorMessage([&] { SlowFastModel m(bad); }).find("base must be standard normal"), std::string::npos);
    nlohmann::json plain = fastFlowConfig();
    plain.erase("fast_flow");
    SlowFastModel model(plain);
    EXPECT_NE(errorMessage([&] { model.getFastFlow(); }).find("no fast flow"), std::string::npos);
}

// Found writing tests/fuzz (reproduced with fuzz_model_file on a crafted seed): decodeSlowFastModel built the
// model from the architecture before looking at the parameters, so a 5 KB file claiming a fast conditioner with
// hidden 200000000 or a map over 200000000 atoms allocated gigabytes (std::bad_alloc / OOM). The file's
// "parameters" tensor now bounds the model (ParameterBudget), and the decoder refuses with an Error.
TEST(SlowFastModelFile, ArchitectureLargerThanTheFileIsAnErrorNotAnAllocation) {
    SlowFastModel model(smallConfig());
    const std::string bytes = cgflow::io::encodeSlowFastModel(model);
    EXPECT_EQ(cgflow::io::decodeSlowFastModel(bytes, "m")->getNumParameters(), model.getNumParameters());
    auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
        cgflow::io::SafeTensors file = cgflow::io::SafeTensors::parse(bytes, "encoded");
        nlohmann::json header = nlohmann::json::parse(file.metadata.at("cgflow"));
        edit(header["architecture"]["model"]);
        file.metadata["cgflow"] = header.dump();
        return file.serialize();
    };
    const std::string hugeFast = edited([](nlohmann::json& m) { m["fast"]["hidden"] = 200000000; });
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeSlowFastModel(hugeFast, "big.safetensors"); })
                  .find("GaussianConditional (hidden 200000000"),
              std::string::npos);
    const std::string hugeMap = edited([](nlohmann::json& m) { m["map"]["num_atoms"] = 200000000; });
    const std::string message = errorMessage([&] { cgflow::io::decodeSlowFastModel(hugeMap, "big.safetensors"); });
    EXPECT_EQ(message.rfind("big.safetensors", 0), 0u) << message;
    EXPECT_NE(message.find("more than 1048576"), std::string::npos) << message;
    // "num_atoms" was read with json::value(), which let nlohmann's type_error escape for a string.
    const std::string stringAtoms = edited([](nlohmann::json& m) { m["map"]["num_atoms"] = "four"; });
    EXPECT_THROW(cgflow::io::decodeSlowFastModel(stringAtoms, "m"), cgflow::Error);
}
