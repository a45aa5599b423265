#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/flows/GaussianConditional.h"

#include <Eigen/Cholesky>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::flows::GaussianConditional;
using cgflow::flows::GaussianConditionalOptions;
using cgflow::nn::Activation;
using cgflowtest::errorMessage;

namespace {

const double halfLogTwoPi = 0.5 * std::log(2 * 3.14159265358979323846);

Eigen::MatrixXd randomMatrix(Eigen::Index rows, Eigen::Index cols, uint64_t seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, scale);
    Eigen::MatrixXd m(rows, cols);
    for (Eigen::Index j = 0; j < cols; j++)
        for (Eigen::Index i = 0; i < rows; i++)
            m(i, j) = normal(rng);
    return m;
}

GaussianConditionalOptions smallOptions(bool conditionalStd, bool fullCovariance = false) {
    GaussianConditionalOptions options;
    options.conditionSize = 3;
    options.outputSize = 4;
    options.hiddenSize = 6;
    options.numBlocks = 2;
    options.activation = Activation::Tanh; // smooth, for finite differences
    options.conditionalStd = conditionalStd;
    options.initialLogStd = -0.5;
    options.fullCovariance = fullCovariance;
    return options;
}

// Random parameters (moderate, so that exp(s) stays O(1)), every term of the gradient exercised.
void randomize(GaussianConditional& q, uint64_t seed) {
    std::vector<double> params(q.getNumParameters());
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.4);
    for (double& p : params)
        p = normal(rng);
    q.setParameters(params);
}

const char* modeName(bool conditionalStd) {
    return conditionalStd ? "conditional std" : "constant std";
}

} // namespace

TEST(GaussianConditional, InitializationGivesZeroMeanAndTheInitialLogStd) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditionalOptions options = smallOptions(conditionalStd);
        GaussianConditional q(options);
        const size_t networkParams = q.getNetwork().getNumParameters();
        EXPECT_EQ(q.getNumParameters(), networkParams + (conditionalStd ? 0 : 4));
        EXPECT_EQ(q.getNetwork().getOutputSize(), conditionalStd ? 8 : 4);
        q.initializeParameters(5);
        Eigen::MatrixXd z = randomMatrix(3, 7, 1, 3.0), mu, s;
        q.meanAndLogStd(z, mu, s);
        EXPECT_EQ(mu.norm(), 0.0);
        EXPECT_EQ((s.array() + 0.5).matrix().norm(), 0.0);
        // Hidden layers are random (seeded): different seeds give different parameters.
        std::vector<double> a = q.getParameters();
        q.initializeParameters(6);
        EXPECT_NE(a, q.getParameters());
        q.initializeParameters(5);
        EXPECT_EQ(a, q.getParameters());
    }
}

TEST(GaussianConditional, LogProbMatchesTheDirectFormula) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditional q(smallOptions(conditionalStd));
        randomize(q, 11);
        const int n = 5;
        Eigen::MatrixXd z = randomMatrix(3, n, 12), X = randomMatrix(4, n, 13, 2.0), mu, s;
        q.meanAndLogStd(z, mu, s);
        GaussianConditional::Workspace ws;
        Eigen::VectorXd logq;
        q.logProb(z, X, logq, ws, false);
        ASSERT_EQ(logq.size(), n);
        for (int j = 0; j < n; j++) {
            double expected = 0.0;
            for (int d = 0; d < 4; d++) {
                const double sigma = std::exp(s(d, j));
                const double u = (X(d, j) - mu(d, j)) / sigma;
                expected += -0.5 * u * u - std::log(sigma) - halfLogTwoPi;
            }
            EXPECT_NEAR(logq[j], expected, 1e-12);
        }
        if (!conditionalStd) { // the log-std does not depend on z
            for (int j = 1; j < n; j++)
                EXPECT_EQ((s.col(j) - s.col(0)).norm(), 0.0);
        }
    }
}

TEST(GaussianConditional, SampleIsReparametrizedAndItsLogqIsLogProb) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditional q(smallOptions(conditionalStd));
        randomize(q, 21);
        const int n = 6;
        Eigen::MatrixXd z = randomMatrix(3, n, 22), eps = randomMatrix(4, n, 23), X, mu, s;
        GaussianConditional::Workspace ws;
        Eigen::VectorXd logq, check;
        q.sample(z, eps, X, logq, ws, true);
        q.meanAndLogStd(z, mu, s);
        EXPECT_LT((X - mu - (s.array().exp() * eps.array()).matrix()).cwiseAbs().maxCoeff(), 1e-14);
        q.logProb(z, X, check, ws, false);
        EXPECT_LT((logq - check).cwiseAbs().maxCoeff(), 1e-12);
    }
}

TEST(GaussianConditional, SampleGradientsMatchFiniteDifferences) {
    const double h = 1e-6;
    for (int mode = 0; mode < 4; mode++) {
        const bool conditionalStd = mode % 2 == 0, full = mode >= 2;
        SCOPED_TRACE(std::string(modeName(conditionalStd)) + (full ? ", full covariance" : ", diagonal"));
        GaussianConditional q(smallOptions(conditionalStd, full));
        randomize(q, 31);
        const int n = 3;
        Eigen::MatrixXd z = randomMatrix(3, n, 32), eps = randomMatrix(4, n, 33);
        Eigen::MatrixXd C = randomMatrix(4, n, 34);
        Eigen::VectorXd g = randomMatrix(n, 1, 35);
        // L = sum(C .* X) + sum(g .* logq), eps fixed.
        auto loss = [&](const GaussianConditional& model, const Eigen::MatrixXd& zz) {
            GaussianConditional::Workspace w;
            Eigen::MatrixXd X;
            Eigen::VectorXd logq;
            model.sample(zz, eps, X, logq, w, false);
            return (C.array() * X.array()).sum() + g.dot(logq);
        };
        GaussianConditional::Workspace ws;
        Eigen::MatrixXd X, gradZ;
        Eigen::VectorXd logq;
        q.sample(z, eps, X, logq, ws, true);
        std::vector<double> paramGrad(q.getNumParameters(), 1.0); // accumulation
        q.backwardSample(&C, &g, &gradZ, paramGrad.data(), ws);
        ASSERT_EQ(gradZ.rows(), 3);
        ASSERT_EQ(gradZ.cols(), n);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < n; j++) {
                Eigen::MatrixXd plus = z, minus = z;
                plus(i, j) += h;
                minus(i, j) -= h;
                const double numeric = (loss(q, plus) - loss(q, minus)) / (2 * h);
                EXPECT_NEAR(gradZ(i, j), numeric, 1e-7 * (1 + std::abs(numeric))) << "dz(" << i << "," << j << ")";
            }
        std::vector<double> params = q.getParameters();
        for (size_t p = 0; p < params.size(); p++) {
            std::vector<double> plus = params, minus = params;
            plus[p] += h;
            minus[p] -= h;
            q.setParameters(plus);
            const double lossPlus = loss(q, z);
            q.setParameters(minus);
            const double lossMinus = loss(q, z);
            q.setParameters(params);
            const double numeric = (lossPlus - lossMinus) / (2 * h);
            EXPECT_NEAR(paramGrad[p] - 1.0, numeric, 1e-7 * (1 + std::abs(numeric))) << "parameter " << p;
        }
        // Each term alone: only dL/dX, and only dL/dlogq (null = zero), add up to both together.
        std::vector<double> onlyX(params.size(), 0.0), onlyLogq(params.size(), 0.0);
        Eigen::MatrixXd gzX, gzLogq;
        q.backwardSample(&C, nullptr, &gzX, onlyX.data(), ws);
        q.backwardSample(nullptr, &g, &gzLogq, onlyLogq.data(), ws);
        EXPECT_LT((gzX + gzLogq - gradZ).cwiseAbs().maxCoeff(), 1e-12);
        for (size_t p = 0; p < params.size(); p++)
            EXPECT_NEAR(onlyX[p] + onlyLogq[p], paramGrad[p] - 1.0, 1e-12);
        // d logq / d mu = 0 on the sample path: with dL/dX = 0 the output-layer rows of mu get no gradient.
        const auto& net = q.getNetwork();
        const int last = net.getNumLayers() - 1;
        size_t offset = 0;
        for (int layer = 0; layer < last; layer++)
            offset += net.weight(layer).size() + net.bias(layer).size();
        const size_t biasOffset = offset + net.weight(last).size();
        for (int d = 0; d < 4; d++)
            EXPECT_EQ(onlyLogq[biasOffset + d], 0.0);
        // Nothing requested: nothing computed, no error.
        q.backwardSample(&C, &g, nullptr, nullptr, ws);
    }
}

TEST(GaussianConditional, LogProbGradientsMatchFiniteDifferences) {
    const double h = 1e-6;
    for (int mode = 0; mode < 4; mode++) {
        const bool conditionalStd = mode % 2 == 0, full = mode >= 2;
        SCOPED_TRACE(std::string(modeName(conditionalStd)) + (full ? ", full covariance" : ", diagonal"));
        GaussianConditional q(smallOptions(conditionalStd, full));
        randomize(q, 41);
        const int n = 3;
        Eigen::MatrixXd z = randomMatrix(3, n, 42), X = randomMatrix(4, n, 43);
        Eigen::VectorXd g = randomMatrix(n, 1, 44);
        auto loss = [&](const GaussianConditional& model, const Eigen::MatrixXd& zz, const Eigen::MatrixXd& XX) {
            GaussianConditional::Workspace w;
            Eigen::VectorXd logq;
            model.logProb(zz, XX, logq, w, false);
            return g.dot(logq);
        };
        GaussianConditional::Workspace ws;
        Eigen::VectorXd logq;
        q.logProb(z, X, logq, ws, true);
        Eigen::MatrixXd gradZ, gradX;
        std::vector<double> paramGrad(q.getNumParameters(), -2.0);
        q.backwardLogProb(g, &gradZ, &gradX, paramGrad.data(), ws);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < n; j++) {
                Eigen::MatrixXd plus = z, minus = z;
                plus(i, j) += h;
                minus(i, j) -= h;
                const double numeric = (loss(q, plus, X) - loss(q, minus, X)) / (2 * h);
                EXPECT_NEAR(gradZ(i, j), numeric, 1e-7 * (1 + std::abs(numeric))) << "dz(" << i << "," << j << ")";
            }
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < n; j++) {
                Eigen::MatrixXd plus = X, minus = X;
                plus(i, j) += h;
                minus(i, j) -= h;
                const double numeric = (loss(q, z, plus) - loss(q, z, minus)) / (2 * h);
                EXPECT_NEAR(gradX(i, j), numeric, 1e-7 * (1 + std::abs(numeric))) << "dX(" << i << "," << j << ")";
            }
        std::vector<double> params = q.getParameters();
        for (size_t p = 0; p < params.size(); p++) {
            std::vector<double> plus = params, minus = params;
            plus[p] += h;
            minus[p] -= h;
            q.setParameters(plus);
            const double lossPlus = loss(q, z, X);
            q.setParameters(minus);
            const double lossMinus = loss(q, z, X);
            q.setParameters(params);
            const double numeric = (lossPlus - lossMinus) / (2 * h);
            EXPECT_NEAR(paramGrad[p] + 2.0, numeric, 1e-7 * (1 + std::abs(numeric))) << "parameter " << p;
        }
    }
}

TEST(GaussianConditional, FullCovarianceIsTheGaussianOfDMMTransposedD) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditional q(smallOptions(conditionalStd, true));
        const GaussianConditional diagonal(smallOptions(conditionalStd, false));
        ASSERT_EQ(q.getNumParameters(), diagonal.getNumParameters() + 6); // 4 x 3 / 2 entries of M
        randomize(q, 51);
        const std::vector<double> params = q.getParameters();
        // M from the last six parameters, row by row below the diagonal.
        Eigen::MatrixXd M = Eigen::MatrixXd::Identity(4, 4);
        size_t k = params.size() - 6;
        for (int i = 1; i < 4; i++)
            for (int j = 0; j < i; j++)
                M(i, j) = params[k++];
        const int n = 5;
        Eigen::MatrixXd z = randomMatrix(3, n, 52), X = randomMatrix(4, n, 53, 2.0), eps = randomMatrix(4, n, 54), mu, s;
        q.meanAndLogStd(z, mu, s);
        GaussianConditional::Workspace ws;
        Eigen::VectorXd logq;
        q.logProb(z, X, logq, ws, false);
        for (int j = 0; j < n; j++) {
            const Eigen::MatrixXd D = s.col(j).array().exp().matrix().asDiagonal();
            const Eigen::MatrixXd sigma = D * M * M.transpose() * D;
            const Eigen::LLT<Eigen::MatrixXd> llt(sigma);
            const Eigen::VectorXd r = X.col(j) - mu.col(j);
            const double logDet = 2 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
            const double expected = -0.5 * r.dot(llt.solve(r)) - 0.5 * logDet - 4 * halfLogTwoPi;
            EXPECT_NEAR(logq[j], expected, 1e-11);
        }
        Eigen::MatrixXd Xs;
        Eigen::VectorXd logqSample, check;
        q.sample(z, eps, Xs, logqSample, ws, false);
        EXPECT_LT((Xs - mu - (s.array().exp() * (M * eps).array()).matrix()).cwiseAbs().maxCoeff(), 1e-13);
        q.logProb(z, Xs, check, ws, false);
        EXPECT_LT((logqSample - check).cwiseAbs().maxCoeff(), 1e-11);
        // Initialization starts uncorrelated: M = I, so the same parameters otherwise give the diagonal model.
        q.initializeParameters(3);
        GaussianConditional plain(smallOptions(conditionalStd, false));
        plain.initializeParameters(3);
        const std::vector<double> init = q.getParameters();
        for (size_t p = init.size() - 6; p < init.size(); p++)
            EXPECT_EQ(init[p], 0.0);
        // Round trip through the config, and the error for a bad value.
        auto copy = GaussianConditional::fromConfig(q.getConfig());
        EXPECT_TRUE(copy->getOptions().fullCovariance);
        EXPECT_EQ(q.getConfig()["covariance"], "full");
        EXPECT_EQ(plain.getConfig()["covariance"], "diagonal");
        nlohmann::json bad = q.getConfig();
        bad["covariance"] = "dense";
        try {
            GaussianConditional::fromConfig(bad);
            FAIL() << "expected an Error";
        } catch (const cgflow::Error& e) {
            EXPECT_NE(std::string(e.what()).find("\"covariance\" must be"), std::string::npos) << e.what();
        }
    }
}

TEST(GaussianConditional, SampleStatisticsMatchMeanAndStd) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditional q(smallOptions(conditionalStd));
        randomize(q, 51);
        const int N = 20000;
        Eigen::MatrixXd z0 = randomMatrix(3, 1, 52), mu, s;
        q.meanAndLogStd(z0, mu, s);
        Eigen::MatrixXd z = z0.replicate(1, N);
        std::mt19937_64 rng(53);
        std::normal_distribution<double> normal(0.0, 1.0);
        Eigen::MatrixXd eps(4, N);
        for (int j = 0; j < N; j++)
            for (int d = 0; d < 4; d++)
                eps(d, j) = normal(rng);
        GaussianConditional::Workspace ws;
        Eigen::MatrixXd X;
        Eigen::VectorXd logq;
        q.sample(z, eps, X, logq, ws, false);
        for (int d = 0; d < 4; d++) {
            const double sigma = std::exp(s(d, 0));
            const double mean = X.row(d).mean();
            const double stddev = std::sqrt((X.row(d).array() - mean).square().sum() / (N - 1));
            EXPECT_NEAR(mean, mu(d, 0), 4 * sigma / std::sqrt(N)) << "dimension " << d;
            EXPECT_NEAR(stddev, sigma, 4 * sigma / std::sqrt(2.0 * (N - 1))) << "dimension " << d;
        }
    }
}

TEST(GaussianConditional, ConfigRoundTrip) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditional q(smallOptions(conditionalStd));
        randomize(q, 61);
        nlohmann::json config = q.getConfig();
        EXPECT_EQ(config["type"], "gaussian_conditional");
        EXPECT_EQ(config["std"], conditionalStd ? "conditional" : "constant");
        EXPECT_EQ(config["activation"], "tanh");
        auto rebuilt = GaussianConditional::fromConfig(config);
        EXPECT_EQ(rebuilt->getConfig(), config);
        ASSERT_EQ(rebuilt->getNumParameters(), q.getNumParameters());
        rebuilt->setParameters(q.getParameters());
        Eigen::MatrixXd z = randomMatrix(3, 4, 62), X = randomMatrix(4, 4, 63);
        GaussianConditional::Workspace w1, w2;
        Eigen::VectorXd a, b;
        q.logProb(z, X, a, w1, false);
        rebuilt->logProb(z, X, b, w2, false);
        EXPECT_EQ((a - b).norm(), 0.0);
    }
    auto minimal = GaussianConditional::fromConfig({{"condition_dimension", 2}, {"output_dimension", 5}});
    EXPECT_EQ(minimal->getConditionSize(), 2);
    EXPECT_EQ(minimal->getOutputSize(), 5);
    EXPECT_TRUE(minimal->getOptions().conditionalStd);
    EXPECT_EQ(minimal->getOptions().activation, Activation::ReLU);
}

TEST(GaussianConditional, MixedPrecisionIsForwardedToTheNetwork) {
    for (bool conditionalStd : {true, false}) {
        SCOPED_TRACE(modeName(conditionalStd));
        GaussianConditional q(smallOptions(conditionalStd));
        randomize(q, 81);
        EXPECT_EQ(q.getPrecision(), cgflow::nn::Precision::Float64);
        const Eigen::MatrixXd z = randomMatrix(3, 5, 82), X = randomMatrix(4, 5, 83);
        GaussianConditional::Workspace ws;
        Eigen::VectorXd exact, mixed;
        q.logProb(z, X, exact, ws, false);
        q.setPrecision(cgflow::nn::Precision::Mixed);
        EXPECT_EQ(q.getPrecision(), cgflow::nn::Precision::Mixed);
        EXPECT_EQ(q.getNetwork().getPrecision(), cgflow::nn::Precision::Mixed);
        q.logProb(z, X, mixed, ws, true);
        EXPECT_LT((exact - mixed).cwiseAbs().maxCoeff(), 1e-4 * (1 + exact.cwiseAbs().maxCoeff()));
        EXPECT_GT((exact - mixed).cwiseAbs().maxCoeff(), 0.0); // float32 products really ran
        Eigen::MatrixXd gradZ;
        q.backwardLogProb(Eigen::VectorXd::Ones(5), &gradZ, nullptr, nullptr, ws);
        // Initialization in Mixed keeps the float copies in step: mu = 0, s = initialLogStd.
        q.initializeParameters(3);
        Eigen::MatrixXd mu, s;
        q.meanAndLogStd(z, mu, s);
        EXPECT_EQ(mu.norm(), 0.0);
        EXPECT_NEAR((s.array() + 0.5).abs().maxCoeff(), 0.0, 1e-7);
    }
}

TEST(GaussianConditional, ErrorsNameTheProblem) {
    GaussianConditional q(smallOptions(true));
    GaussianConditional::Workspace ws;
    Eigen::MatrixXd X;
    Eigen::VectorXd logq;
    const Eigen::MatrixXd z = randomMatrix(3, 2, 71), eps = randomMatrix(4, 2, 72);
    EXPECT_NE(errorMessage([&] { q.sample(randomMatrix(2, 2, 1), eps, X, logq, ws, true); }).find("z is 2x2"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { q.sample(z, randomMatrix(4, 3, 1), X, logq, ws, true); }).find("eps is 4x3, expected 4x2"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { q.logProb(z, randomMatrix(3, 2, 1), logq, ws, true); }).find("X is 3x2, expected 4x2"),
              std::string::npos);
    // Backward without a saved pass, after an unsaved pass, of the other kind, or of another object.
    Eigen::MatrixXd gradZ;
    Eigen::VectorXd g = Eigen::VectorXd::Ones(2);
    EXPECT_NE(errorMessage([&] { q.backwardSample(&eps, &g, &gradZ, nullptr, ws); }).find("needs a preceding sample"),
              std::string::npos);
    q.sample(z, eps, X, logq, ws, false);
    EXPECT_NE(errorMessage([&] { q.backwardSample(&eps, &g, &gradZ, nullptr, ws); }).find("save = true"),
              std::string::npos);
    q.sample(z, eps, X, logq, ws, true);
    EXPECT_NE(errorMessage([&] { q.backwardLogProb(g, &gradZ, nullptr, nullptr, ws); })
                  .find("needs a preceding logProb(..., save = true) of this GaussianConditional with this workspace "
                        "(the workspace holds a sample pass)"),
              std::string::npos);
    GaussianConditional other(smallOptions(true));
    EXPECT_NE(errorMessage([&] { other.backwardSample(&eps, &g, &gradZ, nullptr, ws); }).find("of this GaussianConditional"),
              std::string::npos);
    Eigen::MatrixXd wrongX = randomMatrix(4, 3, 2);
    EXPECT_NE(errorMessage([&] { q.backwardSample(&wrongX, &g, &gradZ, nullptr, ws); }).find("gradX is 4x3, expected 4x2"),
              std::string::npos);
    Eigen::VectorXd wrongG = Eigen::VectorXd::Ones(3);
    EXPECT_NE(errorMessage([&] { q.backwardSample(&eps, &wrongG, &gradZ, nullptr, ws); }).find("gradLogq has 3 entries"),
              std::string::npos);
    q.logProb(z, X, logq, ws, true);
    EXPECT_NE(errorMessage([&] { q.backwardLogProb(wrongG, &gradZ, nullptr, nullptr, ws); }).find("gradLogq has 3 entries"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { q.setParameters(std::vector<double>(3, 0.0)); }).find("got 3 values"),
              std::string::npos);

    // Options.
    auto optionError = [](void (*change)(GaussianConditionalOptions&)) {
        GaussianConditionalOptions options;
        change(options);
        return errorMessage([&] { GaussianConditional bad(options); });
    };
    EXPECT_NE(optionError([](GaussianConditionalOptions& o) { o.conditionSize = 0; }).find("conditionSize"),
              std::string::npos);
    EXPECT_NE(optionError([](GaussianConditionalOptions& o) { o.outputSize = 0; }).find("outputSize"), std::string::npos);
    EXPECT_NE(optionError([](GaussianConditionalOptions& o) { o.hiddenSize = 0; }).find("hiddenSize"), std::string::npos);
    EXPECT_NE(optionError([](GaussianConditionalOptions& o) { o.numBlocks = -1; }).find("numBlocks"), std::string::npos);
    EXPECT_NE(optionError([](GaussianConditionalOptions& o) { o.initialLogStd = INFINITY; }).find("initialLogStd"),
              std::string::npos);
}

TEST(GaussianConditional, FromConfigValidatesEveryField) {
    auto message = [](const nlohmann::json& config) {
        return errorMessage([&] { GaussianConditional::fromConfig(config); });
    };
    const nlohmann::json good = {{"condition_dimension", 2}, {"output_dimension", 3}};
    auto with = [&](const char* key, const nlohmann::json& value) {
        nlohmann::json c = good;
        c[key] = value;
        return c;
    };
    EXPECT_NE(message(nlohmann::json::array()).find("must be a JSON object"), std::string::npos);
    EXPECT_NE(message({{"output_dimension", 3}}).find("\"condition_dimension\" is required"), std::string::npos);
    EXPECT_NE(message({{"condition_dimension", 3}}).find("\"output_dimension\" is required"), std::string::npos);
    EXPECT_NE(message(with("condition_dimension", 0)).find("\"condition_dimension\" must be an integer >= 1"),
              std::string::npos);
    EXPECT_NE(message(with("output_dimension", "3")).find("\"output_dimension\" must be an integer"), std::string::npos);
    EXPECT_NE(message(with("hidden", 1.5)).find("\"hidden\" must be an integer"), std::string::npos);
    EXPECT_NE(message(with("num_blocks", -1)).find("\"num_blocks\" must be an integer >= 0"), std::string::npos);
    EXPECT_NE(message(with("activation", 3)).find("\"activation\" must be a string"), std::string::npos);
    EXPECT_NE(message(with("activation", "gelu")).find("gelu"), std::string::npos);
    EXPECT_NE(message(with("std", "diagonal")).find("\"std\" must be \"conditional\""), std::string::npos);
    EXPECT_NE(message(with("initial_log_std", "small")).find("\"initial_log_std\" must be a finite number"),
              std::string::npos);
    EXPECT_NE(message(with("type", "spline_coupling")).find("\"type\" must be \"gaussian_conditional\""),
              std::string::npos);
    EXPECT_NE(message(with("width", 4)).find("unknown key \"width\""), std::string::npos);
    EXPECT_NE(message(with("hidden", 5000000000LL)).find("\"hidden\" must be an integer >= 1"), std::string::npos);
}
