// Flow: base densities, configs, sample/log-prob consistency, whole-flow log-det and gradients.
#include "CoreTestUtils.h"
#include "FlowTestUtils.h"

#include "cgflow/flows/FlowConfig.h"

#include <gtest/gtest.h>

using namespace cgflow::flows;
using cgflowtest::errorMessage;
using nlohmann::json;

namespace {

constexpr double Pi = 3.14159265358979323846;

json smallConfig(int contextDimension = 0) {
    json config = {{"dimension", 5},     {"circular", {1, 3}}, {"num_layers", 4},
                   {"hidden", 8},        {"num_bins", 4},      {"bound", 3.0},
                   {"activation", "tanh"}, {"mask_seed", 3},   {"shift_seed", 4}};
    if (contextDimension > 0) {
        config["context_dimension"] = contextDimension;
        config["context_circular"] = {0};
    }
    return config;
}

// Random weights of this scale make every layer clearly non-trivial while keeping the spline
// derivatives well inside [1e-2, 1e2], where central differences are accurate.
std::unique_ptr<Flow> randomFlow(const json& config, uint64_t seed) {
    auto flow = Flow::fromConfig(config);
    Eigen::VectorXd p = cgflowtest::randomMatrix(static_cast<int>(flow->getNumParameters()), 1, 0.15, seed);
    flow->setParameters(p.data());
    flow->setNumThreads(1);
    return flow;
}

} // namespace

TEST(BaseDensity, QuantileInvertsCdf) {
    for (double p : {1e-300, 1e-20, 1e-8, 0.01, 0.02425, 0.3, 0.5, 0.7, 0.97575, 0.999, 1 - 1e-12}) {
        const double x = standardNormalQuantile(p);
        const double back = x <= 0 ? standardNormalCdf(x) : 1 - standardNormalCdf(-x);
        EXPECT_NEAR(back / p, 1.0, p < 0.5 ? 1e-13 : 1e-12 / p) << p;
    }
    EXPECT_EQ(standardNormalQuantile(0.5), 0.0);
    EXPECT_NE(errorMessage([] { standardNormalQuantile(1.0); }).find("(0, 1)"), std::string::npos);
}

TEST(BaseDensity, SamplesHaveTheRightMomentsAndSupport) {
    BaseDensity base({BaseKind::StandardNormal, BaseKind::TruncatedNormal, BaseKind::UniformCircle}, 1.0);
    const int n = 40000;
    Eigen::MatrixXd z(3, n);
    base.sample(17, 0, z);
    const double se = 1.0 / std::sqrt(static_cast<double>(n));
    EXPECT_NEAR(z.row(0).mean(), 0.0, 4 * se);
    EXPECT_NEAR(z.row(0).array().square().mean(), 1.0, 4 * std::sqrt(2.0) * se);
    // Truncated to [-1, 1]: variance 1 - 2 phi(1) / (2 Phi(1) - 1) = 0.29112509.
    EXPECT_LE(z.row(1).cwiseAbs().maxCoeff(), 1.0);
    EXPECT_NEAR(z.row(1).array().square().mean(), 0.29112509, 4 * 0.25 * se);
    EXPECT_GE(z.row(2).minCoeff(), -Pi);
    EXPECT_LT(z.row(2).maxCoeff(), Pi);
    EXPECT_NEAR(z.row(2).array().square().mean(), Pi * Pi / 3, 4 * 2.9 * se);
    // Counter-based: samples 100.. of the stream equal a call starting at index 100.
    Eigen::MatrixXd tail(3, 50);
    base.sample(17, 100, tail);
    EXPECT_EQ(tail, z.middleCols(100, 50));
    // log p: normal + truncated normal (mass 0.6826894921) + uniform circle.
    Eigen::MatrixXd point(3, 2);
    point << 0.5, 0.0, 0.2, 1.5, 3.0, 0.0;
    double logP[2];
    base.logProb(point, logP);
    const double expected = -0.5 * 0.25 - 0.5 * std::log(2 * Pi) - 0.5 * 0.04 - 0.5 * std::log(2 * Pi) -
                            std::log(0.6826894921370859) - std::log(2 * Pi);
    EXPECT_NEAR(logP[0], expected, 1e-12);
    EXPECT_EQ(logP[1], -std::numeric_limits<double>::infinity()); // 1.5 is outside [-1, 1]
}

TEST(FlowConfig, BuilderExpandsToTheExplicitForm) {
    json expanded = expandFlowConfig(smallConfig());
    ASSERT_EQ(expanded["layers"].size(), 5u); // 2 pairs + 1 shift between them
    EXPECT_EQ(expanded["layers"][2]["type"], "circular_shift");
    EXPECT_EQ(expanded["base"]["kinds"][1], "uniform_circle");
    auto flow = Flow::fromConfig(smallConfig());
    EXPECT_EQ(flow->getConfig()["layers"], expanded["layers"]);
    // The explicit form rebuilds the same architecture.
    auto again = Flow::fromConfig(flow->getConfig());
    EXPECT_EQ(again->getConfig(), flow->getConfig());
    EXPECT_EQ(again->getNumParameters(), flow->getNumParameters());
}

TEST(FlowConfig, Errors) {
    json config = smallConfig();
    config["hiden"] = 3;
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(config); }).find("unknown key \"hiden\""), std::string::npos);
    config = smallConfig();
    config["num_layers"] = 3;
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(config); }).find("must be even"), std::string::npos);
    config = smallConfig();
    config["masks"] = {{true, true, true, true, true}, {true, false, true, false, true}};
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(config); }).find("some but not all"), std::string::npos);
    config = smallConfig();
    config.erase("dimension");
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(config); }).find("\"dimension\""), std::string::npos);
    config = smallConfig();
    config["layers"] = json::array({{{"type", "spline_coupling"}, {"transformed", {0, 9}}}});
    config["base"] = {{"kinds", {"normal", "uniform_circle", "normal", "uniform_circle", "normal"}}};
    for (const char* key : {"num_layers", "hidden", "num_bins", "bound", "activation", "mask_seed", "shift_seed"})
        config.erase(key);
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(config); }).find("integers in [0, 5)"), std::string::npos);
}

// Found reviewing the flow-config parser for its fuzz target (tests/fuzz): index lists were read with
// json::get<int>(), which wraps 4294967296 to 0, so "circular": [4294967296] or "transformed": [4294967296]
// silently meant dimension 0. They are refused now.
TEST(FlowConfig, IndicesOutsideTheIntRangeAreRefusedNotWrapped) {
    json config = {{"dimension", 2}, {"num_layers", 2}, {"hidden", 4}, {"circular", {4294967296LL}}};
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(config); }).find("\"circular\" entries must be integers in [0, 2)"),
              std::string::npos);
    json explicitConfig = Flow::fromConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 4}})->getConfig();
    explicitConfig["layers"][0]["transformed"] = {4294967296LL};
    EXPECT_NE(errorMessage([&] { Flow::fromConfig(explicitConfig); }).find("\"transformed\" entries must be integers"),
              std::string::npos);
}

TEST(Flow, LogProbOfSamplesEqualsTheirLogQ) {
    auto flow = randomFlow(smallConfig(), 1);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ, logQAgain;
    flow->sample(300, 5, nullptr, x, logQ);
    flow->logProb(x, nullptr, logQAgain);
    EXPECT_LT((logQ - logQAgain).cwiseAbs().maxCoeff(), 1e-10);
    EXPECT_LE(x.row(1).cwiseAbs().maxCoeff(), Pi);
    EXPECT_LE(x.row(3).cwiseAbs().maxCoeff(), Pi);
}

TEST(Flow, LogProbMatchesFiniteDifferenceJacobianOfTheWholeFlow) {
    auto flow = randomFlow(smallConfig(), 2);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    flow->sample(4, 9, nullptr, x, logQ);
    const std::vector<bool> circular = flow->getCircular();
    const double h = 1e-6;
    for (int j = 0; j < 4; j++) {
        Eigen::MatrixXd z;
        Eigen::VectorXd lq;
        flow->logProb(x.col(j), nullptr, lq, false, &z);
        Eigen::MatrixXd jac(5, 5);
        for (int k = 0; k < 5; k++) {
            Eigen::MatrixXd plus = x.col(j), minus = x.col(j), zp, zm;
            plus(k, 0) += h;
            minus(k, 0) -= h;
            flow->logProb(plus, nullptr, lq, false, &zp);
            flow->logProb(minus, nullptr, lq, false, &zm);
            for (int i = 0; i < 5; i++)
                jac(i, k) = cgflowtest::dimDifference(zp(i, 0), zm(i, 0), circular[i]) / (2 * h);
        }
        double logP;
        flow->getBase().logProb(z, &logP);
        EXPECT_NEAR(logQ[j], logP + std::log(std::abs(jac.determinant())), 1e-6) << "sample " << j;
    }
}

TEST(Flow, ResultsDoNotDependOnTheThreadCount) {
    auto flow = randomFlow(smallConfig(1), 3);
    Eigen::MatrixXd ctx = cgflowtest::randomMatrix(1, 200, 1.0, 4);
    Eigen::MatrixXd x1, x2;
    Eigen::VectorXd q1, q2;
    flow->sample(200, 8, &ctx, x1, q1);
    flow->setNumThreads(3);
    flow->sample(200, 8, &ctx, x2, q2);
    EXPECT_LT((x1 - x2).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((q1 - q2).cwiseAbs().maxCoeff(), 1e-12);
}

namespace {

// L = sum(c .* x) + sum(g .* log q) for the samples of a fixed seed, as a function of the flow's state.
double sampleLoss(Flow& flow, const Eigen::MatrixXd* ctx, const Eigen::MatrixXd& c, const Eigen::VectorXd& g,
                  const Eigen::MatrixXd& reference) {
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    flow.sample(static_cast<int>(c.cols()), 21, ctx, x, logQ);
    const std::vector<bool> circular = flow.getCircular();
    double value = g.dot(logQ);
    for (int j = 0; j < x.cols(); j++)
        for (int i = 0; i < x.rows(); i++)
            value += c(i, j) * (reference(i, j) + cgflowtest::dimDifference(x(i, j), reference(i, j), circular[i]));
    return value;
}

double relativeError(double analytic, double numeric) {
    return std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
}

} // namespace

TEST(Flow, SampleGradientsMatchFiniteDifferences) {
    for (int threads : {1, 2}) {
        auto flow = randomFlow(smallConfig(2), 6);
        flow->setNumThreads(threads);
        const int n = 70; // two chunks with 2 threads
        Eigen::MatrixXd ctx = cgflowtest::randomMatrix(2, n, 1.0, 7);
        Eigen::MatrixXd c = cgflowtest::randomMatrix(5, n, 1.0, 8);
        Eigen::VectorXd g = cgflowtest::randomMatrix(n, 1, 1.0, 9);
        Eigen::MatrixXd x;
        Eigen::VectorXd logQ;
        flow->sample(n, 21, &ctx, x, logQ, true);
        std::vector<double> paramGrad(flow->getNumParameters(), 0.0);
        Eigen::MatrixXd gradCtx = Eigen::MatrixXd::Zero(2, n);
        flow->backwardSample(c, g, paramGrad.data(), &gradCtx);

        std::vector<double> params = flow->getParameters();
        const double h = 1e-6;
        double worst = 0;
        for (size_t p = 0; p < params.size(); p += 13) {
            const double saved = params[p];
            params[p] = saved + h;
            flow->setParameters(params);
            const double up = sampleLoss(*flow, &ctx, c, g, x);
            params[p] = saved - h;
            flow->setParameters(params);
            const double down = sampleLoss(*flow, &ctx, c, g, x);
            params[p] = saved;
            flow->setParameters(params);
            worst = std::max(worst, relativeError(paramGrad[p], (up - down) / (2 * h)));
        }
        for (int j = 0; j < n; j += 9)
            for (int i = 0; i < 2; i++) {
                Eigen::MatrixXd plus = ctx, minus = ctx;
                plus(i, j) += h;
                minus(i, j) -= h;
                const double numeric = (sampleLoss(*flow, &plus, c, g, x) - sampleLoss(*flow, &minus, c, g, x)) / (2 * h);
                worst = std::max(worst, relativeError(gradCtx(i, j), numeric));
            }
        EXPECT_LT(worst, 1e-5) << threads << " threads";
        EXPECT_NE(errorMessage([&] { flow->backwardSample(c, g, paramGrad.data()); }).find("differentiated once"),
                  std::string::npos);
    }
}

TEST(Flow, LogProbGradientsMatchFiniteDifferences) {
    for (int threads : {1, 2}) {
        auto flow = randomFlow(smallConfig(2), 10);
        flow->setNumThreads(threads);
        const int n = 66;
        Eigen::MatrixXd ctx = cgflowtest::randomMatrix(2, n, 1.0, 11);
        Eigen::MatrixXd x;
        Eigen::VectorXd logQ;
        flow->sample(n, 12, &ctx, x, logQ);
        Eigen::VectorXd g = cgflowtest::randomMatrix(n, 1, 1.0, 13);
        flow->logProb(x, &ctx, logQ, true);
        std::vector<double> paramGrad(flow->getNumParameters(), 0.0);
        Eigen::MatrixXd gradX, gradCtx = Eigen::MatrixXd::Zero(2, n);
        flow->backwardLogProb(g, paramGrad.data(), &gradX, &gradCtx);

        auto loss = [&](const Eigen::MatrixXd& xs, const Eigen::MatrixXd& cs) {
            Eigen::VectorXd lq;
            flow->logProb(xs, &cs, lq);
            return g.dot(lq);
        };
        std::vector<double> params = flow->getParameters();
        const double h = 1e-6;
        double worst = 0;
        for (size_t p = 0; p < params.size(); p += 11) {
            const double saved = params[p];
            params[p] = saved + h;
            flow->setParameters(params);
            const double up = loss(x, ctx);
            params[p] = saved - h;
            flow->setParameters(params);
            const double down = loss(x, ctx);
            params[p] = saved;
            flow->setParameters(params);
            worst = std::max(worst, relativeError(paramGrad[p], (up - down) / (2 * h)));
        }
        for (int j = 0; j < n; j += 7)
            for (int i = 0; i < 5; i++) {
                Eigen::MatrixXd plus = x, minus = x;
                plus(i, j) += h;
                minus(i, j) -= h;
                worst = std::max(worst, relativeError(gradX(i, j), (loss(plus, ctx) - loss(minus, ctx)) / (2 * h)));
            }
        for (int j = 0; j < n; j += 7)
            for (int i = 0; i < 2; i++) {
                Eigen::MatrixXd plus = ctx, minus = ctx;
                plus(i, j) += h;
                minus(i, j) -= h;
                worst = std::max(worst, relativeError(gradCtx(i, j), (loss(x, plus) - loss(x, minus)) / (2 * h)));
            }
        EXPECT_LT(worst, 1e-5) << threads << " threads";
    }
}

TEST(Flow, ContextIsRequiredAndChecked) {
    auto flow = randomFlow(smallConfig(2), 14);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    EXPECT_NE(errorMessage([&] { flow->sample(3, 1, nullptr, x, logQ); }).find("context is required"),
              std::string::npos);
    Eigen::MatrixXd wrong(2, 2);
    EXPECT_NE(errorMessage([&] { flow->sample(3, 1, &wrong, x, logQ); }).find("expected 2x3 or 2x1"),
              std::string::npos);
    // One context column is used for every sample.
    Eigen::MatrixXd one = cgflowtest::randomMatrix(2, 1, 1.0, 1);
    Eigen::MatrixXd many = one.replicate(1, 3);
    Eigen::MatrixXd x1, x2;
    Eigen::VectorXd q1, q2;
    flow->sample(3, 1, &one, x1, q1);
    flow->sample(3, 1, &many, x2, q2);
    EXPECT_EQ(x1, x2);
    auto plain = randomFlow(smallConfig(), 1);
    EXPECT_NE(errorMessage([&] { plain->sample(3, 1, &one, x, logQ); }).find("not conditional"), std::string::npos);
}

TEST(FlowConfig, RightStochasticLinearAndAtomPermutationLayers) {
    // A flow over two 3-D atoms: a coupling pair, then the learnable per-atom linear map.
    json config = {{"dimension", 6},
                   {"base", {{"kinds", {"normal", "normal", "normal", "normal", "normal", "normal"}}}},
                   {"layers",
                    {{{"type", "spline_coupling"}, {"transformed", {0, 1, 2}}, {"hidden", 8}},
                     {{"type", "atom_permutation"}, {"num_atoms", 2}, {"permutation", {1, 0}}},
                     {{"type", "right_stochastic_linear"}, {"num_atoms", 2}}}}};
    auto flow = randomFlow(config, 3);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ, again;
    flow->sample(40, 1, nullptr, x, logQ);
    flow->logProb(x, nullptr, again);
    EXPECT_LT((logQ - again).cwiseAbs().maxCoeff(), 1e-10);
    EXPECT_EQ(Flow::fromConfig(flow->getConfig())->getConfig(), flow->getConfig());
}

TEST(Flow, ASamplesValuesDoNotDependOnTheBatchItIsDrawnIn) {
    // The base draws are exactly the same (tested bitwise above) and the spline treats every
    // position alike; what remains is the GEMM backend, whose kernels may round a column
    // differently by its position in the batch (Eigen's do in the last bit; OpenBLAS's here
    // do not). Any real batching error is O(1).
    auto flow = randomFlow(smallConfig(), 4);
    Eigen::MatrixXd all, part;
    Eigen::VectorXd qAll, qPart;
    flow->sample(203, 6, nullptr, all, qAll);
    for (int first : {1, 37, 150}) {
        flow->sample(203 - first, 6, nullptr, part, qPart, false, first);
        EXPECT_LT((part - all.rightCols(203 - first)).cwiseAbs().maxCoeff(), 1e-12) << "first index " << first;
        EXPECT_LT((qPart - qAll.tail(203 - first)).cwiseAbs().maxCoeff(), 1e-11) << "first index " << first;
    }
}

// Found writing tests/fuzz (reproduced with fuzz_model_file on a crafted seed): a model file whose flow
// architecture was the builder form {"dimension": 2000000000} made decodeFlow expand billions of masks and
// base kinds (a hang, then gigabytes) before any check could refuse it. Dimensions and builder layers are
// bounded now.
TEST(FlowConfig, HugeDimensionsAndLayerCountsAreRefusedBeforeExpanding) {
    EXPECT_NE(errorMessage([] { expandFlowConfig({{"dimension", 2000000000}, {"num_layers", 2}}); })
                  .find("\"dimension\" must be <= 1048576, got 2000000000"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { expandFlowConfig({{"dimension", 2}, {"context_dimension", 2000000000}}); })
                  .find("\"context_dimension\" must be in [0, 1048576]"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { expandFlowConfig({{"dimension", 2}, {"num_layers", 2000000000}}); })
                  .find("\"num_layers\" must be in [1, 10000]"),
              std::string::npos);
    EXPECT_NO_THROW(expandFlowConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 4}}));
}
