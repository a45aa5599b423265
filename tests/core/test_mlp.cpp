#include "CoreTestUtils.h"
#include "MLPTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/MLP.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::nn::Activation;
using cgflow::nn::MLP;
using cgflowtest::allActivations;
using cgflowtest::randomMLP;

namespace {


using cgflowtest::errorMessage;


} // namespace

TEST(Activation, ParsesNamesCaseInsensitivelyWithAliases) {
    EXPECT_EQ(cgflow::nn::parseActivation("identity"), Activation::Identity);
    EXPECT_EQ(cgflow::nn::parseActivation("Linear"), Activation::Identity);
    EXPECT_EQ(cgflow::nn::parseActivation("TANH"), Activation::Tanh);
    EXPECT_EQ(cgflow::nn::parseActivation("Sigmoid"), Activation::Sigmoid);
    EXPECT_EQ(cgflow::nn::parseActivation("softPlus"), Activation::Softplus);
    EXPECT_EQ(cgflow::nn::parseActivation("SiLU"), Activation::SiLU);
    EXPECT_EQ(cgflow::nn::parseActivation("swish"), Activation::SiLU);
    EXPECT_EQ(cgflow::nn::parseActivation("ReLU"), Activation::ReLU);
    for (Activation a : allActivations)
        EXPECT_EQ(cgflow::nn::parseActivation(cgflow::nn::activationName(a)), a);
    EXPECT_EQ(cgflow::nn::activationName(Activation::SiLU), "silu");
    EXPECT_EQ(cgflow::nn::activationName(Activation::Identity), "identity");
}

TEST(Activation, UnknownNameListsValidNames) {
    std::string message = errorMessage([] { cgflow::nn::parseActivation("gelu"); });
    EXPECT_NE(message.find("'gelu'"), std::string::npos) << message;
    for (const char* name : {"identity", "tanh", "sigmoid", "softplus", "silu", "relu"})
        EXPECT_NE(message.find(name), std::string::npos) << message;
    EXPECT_THROW(cgflow::nn::parseActivation(""), Error);
    EXPECT_THROW(cgflow::nn::parseActivation("relu "), Error);
}

TEST(Activation, KnownValues) {
    using cgflow::nn::activationValue;
    EXPECT_DOUBLE_EQ(activationValue(Activation::Identity, -3.5), -3.5);
    EXPECT_DOUBLE_EQ(activationValue(Activation::Tanh, 0.5), std::tanh(0.5));
    EXPECT_DOUBLE_EQ(activationValue(Activation::Sigmoid, 0.0), 0.5);
    EXPECT_DOUBLE_EQ(activationValue(Activation::Sigmoid, 2.0), 1.0 / (1.0 + std::exp(-2.0)));
    EXPECT_DOUBLE_EQ(activationValue(Activation::Sigmoid, -2.0), 1.0 / (1.0 + std::exp(2.0)));
    EXPECT_DOUBLE_EQ(activationValue(Activation::Softplus, 0.0), std::log(2.0));
    EXPECT_DOUBLE_EQ(activationValue(Activation::Softplus, 1.3), std::log(1.0 + std::exp(1.3)));
    EXPECT_DOUBLE_EQ(activationValue(Activation::Softplus, -1.3), std::log(1.0 + std::exp(-1.3)));
    EXPECT_DOUBLE_EQ(activationValue(Activation::SiLU, 1.0), 1.0 / (1.0 + std::exp(-1.0)));
    EXPECT_DOUBLE_EQ(activationValue(Activation::SiLU, -2.0), -2.0 / (1.0 + std::exp(2.0)));
    EXPECT_DOUBLE_EQ(activationValue(Activation::ReLU, -0.1), 0.0);
    EXPECT_DOUBLE_EQ(activationValue(Activation::ReLU, 0.7), 0.7);
}

TEST(Activation, StableAtLargeMagnitude) {
    using cgflow::nn::activationDerivative;
    using cgflow::nn::activationValue;
    for (Activation a : allActivations)
        for (double x : {-1000.0, -750.0, 750.0, 1000.0}) {
            EXPECT_TRUE(std::isfinite(activationValue(a, x))) << cgflow::nn::activationName(a) << " " << x;
            EXPECT_TRUE(std::isfinite(activationDerivative(a, x))) << cgflow::nn::activationName(a) << " " << x;
        }
    EXPECT_EQ(activationValue(Activation::Sigmoid, 1000.0), 1.0);
    EXPECT_EQ(activationValue(Activation::Sigmoid, -1000.0), 0.0);
    EXPECT_EQ(activationValue(Activation::Softplus, 1000.0), 1000.0);
    EXPECT_EQ(activationValue(Activation::Softplus, -1000.0), 0.0);
    EXPECT_EQ(activationValue(Activation::SiLU, -1000.0), -0.0);
    // Deep in the tails the values must keep full relative accuracy, not round to 0 or 1.
    EXPECT_NEAR(activationValue(Activation::Sigmoid, -40.0) / std::exp(-40.0), 1.0, 1e-12);
    EXPECT_NEAR(activationValue(Activation::Softplus, -40.0) / std::exp(-40.0), 1.0, 1e-12);
    EXPECT_NEAR(activationValue(Activation::Softplus, 10.0) - 10.0, std::log1p(std::exp(-10.0)), 1e-14);
    EXPECT_NEAR(activationDerivative(Activation::Sigmoid, 40.0) / std::exp(-40.0), 1.0, 1e-12);
    EXPECT_NEAR(activationDerivative(Activation::Tanh, 20.0) / (4.0 * std::exp(-40.0)), 1.0, 1e-12);
}

TEST(Activation, DerivativesMatchFiniteDifferences) {
    cgflowtest::expectDerivativeMatchesCentralDifferences(
        [](Activation a, double x) { return cgflow::nn::activationValue(a, x); },
        [](Activation a, double x) { return cgflow::nn::activationDerivative(a, x); });
}

TEST(Activation, ArrayFunctionsMatchScalarOnes) {
    // 150 rows so that the 64-row chunks of the implementation are crossed, including tails.
    Eigen::ArrayXXd x(150, 3);
    for (Eigen::Index i = 0; i < x.size(); i++)
        x(i) = 0.37 * static_cast<double>(i - 225) + (i % 7 == 0 ? 1000.0 : 0.0) * (i % 2 == 0 ? 1 : -1);
    x(0, 0) = -1000;
    x(1, 0) = 1000;
    x(2, 0) = 0.0;
    Eigen::ArrayXXd y(150, 3), dy(150, 3);
    for (Activation a : allActivations) {
        cgflow::nn::activationValue(a, x, y);
        cgflow::nn::activationDerivative(a, x, dy);
        // The array versions use Eigen's vectorized exp, which may differ from std::exp in the last bit.
        for (Eigen::Index i = 0; i < x.size(); i++) {
            double value = cgflow::nn::activationValue(a, x(i));
            double derivative = cgflow::nn::activationDerivative(a, x(i));
            EXPECT_NEAR(y(i), value, 1e-15 * std::abs(value) + 1e-300) << cgflow::nn::activationName(a) << " " << x(i);
            EXPECT_NEAR(dy(i), derivative, 1e-15 * std::abs(derivative) + 1e-300) << cgflow::nn::activationName(a) << " " << x(i);
        }
        Eigen::ArrayXXd inPlace = x;
        cgflow::nn::activationValue(a, inPlace, inPlace);
        EXPECT_TRUE((inPlace == y).all());
        inPlace = x;
        cgflow::nn::activationDerivative(a, inPlace, inPlace);
        EXPECT_TRUE((inPlace == dy).all());
    }
    Eigen::ArrayXXd wrong(4, 3);
    EXPECT_THROW(cgflow::nn::activationValue(Activation::Tanh, x, wrong), Error);
    EXPECT_THROW(cgflow::nn::activationDerivative(Activation::Tanh, x, wrong), Error);
}

TEST(MLP, ConstructorValidatesWidths) {
    EXPECT_THROW(MLP({3}, Activation::Tanh), Error);
    EXPECT_THROW(MLP({}, Activation::Tanh), Error);
    std::string message = errorMessage([] { MLP({3, 0, 1}, Activation::Tanh); });
    EXPECT_NE(message.find("widths[1]"), std::string::npos) << message;
    EXPECT_THROW(MLP({3, 4, -2}, Activation::Tanh), Error);
}

TEST(MLP, ShapesAndAccessors) {
    MLP mlp({4, 7, 3, 1}, Activation::Sigmoid, Activation::Softplus);
    EXPECT_EQ(mlp.getInputSize(), 4);
    EXPECT_EQ(mlp.getOutputSize(), 1);
    EXPECT_EQ(mlp.getNumLayers(), 3);
    EXPECT_EQ(mlp.getWidths(), (std::vector<int>{4, 7, 3, 1}));
    EXPECT_EQ(mlp.getHiddenActivation(), Activation::Sigmoid);
    EXPECT_EQ(mlp.getOutputActivation(), Activation::Softplus);
    EXPECT_EQ(mlp.weight(0).rows(), 7);
    EXPECT_EQ(mlp.weight(0).cols(), 4);
    EXPECT_EQ(mlp.weight(2).rows(), 1);
    EXPECT_EQ(mlp.weight(2).cols(), 3);
    EXPECT_EQ(mlp.bias(1).size(), 3);
    EXPECT_EQ(mlp.getNumParameters(), size_t(4 * 7 + 7 + 7 * 3 + 3 + 3 * 1 + 1));
    EXPECT_THROW(mlp.weight(3), Error);
    EXPECT_THROW(mlp.weight(-1), Error);
    EXPECT_THROW(mlp.bias(3), Error);
    const MLP& constMlp = mlp;
    EXPECT_THROW(constMlp.weight(5), Error);
    EXPECT_THROW(constMlp.bias(-1), Error);
    EXPECT_EQ(MLP({2, 2}, Activation::ReLU).getOutputActivation(), Activation::Identity);
}

TEST(MLP, FlatParameterOrderIsRowMajorWeightThenBias) {
    MLP mlp({2, 3, 1}, Activation::Tanh);
    std::vector<double> params(mlp.getNumParameters());
    for (size_t i = 0; i < params.size(); i++)
        params[i] = static_cast<double>(i);
    mlp.setParameters(params.data());
    // Layer 0: W (3x2) row-major = 0..5, b = 6..8. Layer 1: W (1x3) = 9..11, b = 12.
    EXPECT_EQ(mlp.weight(0)(0, 0), 0);
    EXPECT_EQ(mlp.weight(0)(0, 1), 1);
    EXPECT_EQ(mlp.weight(0)(1, 0), 2);
    EXPECT_EQ(mlp.weight(0)(2, 1), 5);
    EXPECT_EQ(mlp.bias(0)(0), 6);
    EXPECT_EQ(mlp.bias(0)(2), 8);
    EXPECT_EQ(mlp.weight(1)(0, 2), 11);
    EXPECT_EQ(mlp.bias(1)(0), 12);
    std::vector<double> back(params.size(), -1);
    mlp.getParameters(back.data());
    EXPECT_EQ(back, params);
}

TEST(MLP, GetSetParametersRoundTrip) {
    MLP a = randomMLP({5, 6, 4, 2}, Activation::SiLU, Activation::Identity, 3);
    std::vector<double> params(a.getNumParameters());
    a.getParameters(params.data());
    MLP b({5, 6, 4, 2}, Activation::SiLU);
    b.setParameters(params.data());
    for (int l = 0; l < a.getNumLayers(); l++) {
        EXPECT_TRUE(a.weight(l) == b.weight(l));
        EXPECT_TRUE(a.bias(l) == b.bias(l));
    }
}

TEST(MLP, InitializeParametersIsDeterministicGlorotUniform) {
    MLP a({30, 50, 1}, Activation::Tanh), b({30, 50, 1}, Activation::Tanh), c({30, 50, 1}, Activation::Tanh);
    a.initializeParameters(42);
    b.initializeParameters(42);
    c.initializeParameters(43);
    std::vector<double> pa(a.getNumParameters()), pb(pa.size()), pc(pa.size());
    a.getParameters(pa.data());
    b.getParameters(pb.data());
    c.getParameters(pc.data());
    EXPECT_EQ(pa, pb);
    EXPECT_NE(pa, pc);
    double limit0 = std::sqrt(6.0 / (30 + 50)), limit1 = std::sqrt(6.0 / (50 + 1));
    EXPECT_LE(a.weight(0).cwiseAbs().maxCoeff(), limit0);
    EXPECT_LE(a.weight(1).cwiseAbs().maxCoeff(), limit1);
    // 1500 uniform draws: the extremes come close to the limit and the mean is near 0.
    EXPECT_GT(a.weight(0).cwiseAbs().maxCoeff(), 0.95 * limit0);
    EXPECT_NEAR(a.weight(0).mean(), 0.0, 0.05 * limit0);
    EXPECT_TRUE(a.bias(0).isZero(0));
    EXPECT_TRUE(a.bias(1).isZero(0));
}

TEST(MLP, ForwardOfHandComputedNet) {
    for (Activation hidden : {Activation::ReLU, Activation::Tanh}) {
        MLP mlp({2, 2, 1}, hidden);
        mlp.weight(0) << 0.5, -1.0, 2.0, 0.25;
        mlp.bias(0) << 0.1, -0.2;
        mlp.weight(1) << 1.5, -0.5;
        mlp.bias(1) << 0.3;
        Eigen::MatrixXd X(2, 2);
        X << 1.0, -1.0, 2.0, 0.0;
        Eigen::MatrixXd Y;
        MLP::Workspace ws;
        mlp.forward(X, Y, ws);
        ASSERT_EQ(Y.rows(), 1);
        ASSERT_EQ(Y.cols(), 2);
        // Sample 0: pre = (0.5 - 2 + 0.1, 2 + 0.5 - 0.2) = (-1.4, 2.3).
        // Sample 1: pre = (-0.5 + 0.1, -2 - 0.2) = (-0.4, -2.2).
        if (hidden == Activation::ReLU) {
            EXPECT_NEAR(Y(0, 0), -0.5 * 2.3 + 0.3, 1e-15);
            EXPECT_NEAR(Y(0, 1), 0.3, 1e-15);
        } else {
            EXPECT_NEAR(Y(0, 0), 1.5 * std::tanh(-1.4) - 0.5 * std::tanh(2.3) + 0.3, 1e-15);
            EXPECT_NEAR(Y(0, 1), 1.5 * std::tanh(-0.4) - 0.5 * std::tanh(-2.2) + 0.3, 1e-15);
        }
    }
}

TEST(MLP, OutputActivationAppliesToLastLayerOnly) {
    MLP mlp({1, 1, 1}, Activation::Identity, Activation::Sigmoid);
    mlp.weight(0) << 2.0;
    mlp.weight(1) << -3.0;
    mlp.bias(1) << 1.0;
    Eigen::MatrixXd X(1, 1), Y;
    X << 0.5;
    MLP::Workspace ws;
    mlp.forward(X, Y, ws);
    EXPECT_NEAR(Y(0, 0), 1.0 / (1.0 + std::exp(-(-3.0 * 1.0 + 1.0))), 1e-15);
}

TEST(MLP, GradientsMatchFiniteDifferences) {
    const std::vector<int> widths = {3, 5, 4, 2};
    const int batch = 3;
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0.0, 1.0);
    int seed = 0;
    for (Activation hidden : allActivations)
        for (Activation output : {Activation::Identity, Activation::Sigmoid}) {
            SCOPED_TRACE(cgflow::nn::activationName(hidden) + "/" + cgflow::nn::activationName(output));
            MLP mlp = randomMLP(widths, hidden, output, 100 + seed++);
            Eigen::MatrixXd X(3, batch), C(2, batch);
            for (Eigen::Index i = 0; i < X.size(); i++)
                X(i) = normal(rng);
            for (Eigen::Index i = 0; i < C.size(); i++)
                C(i) = normal(rng);
            MLP::Workspace ws;
            Eigen::MatrixXd Y;
            auto loss = [&](const MLP& net, const Eigen::MatrixXd& input) {
                MLP::Workspace scratch;
                Eigen::MatrixXd out;
                net.forward(input, out, scratch);
                return (C.array() * out.array()).sum();
            };
            mlp.forward(X, Y, ws);
            const size_t numParams = mlp.getNumParameters();
            // Pre-filled so that the test also checks that backward() accumulates.
            std::vector<double> paramGrad(numParams, 0.25);
            Eigen::MatrixXd dX;
            mlp.backward(C, ws, &dX, paramGrad.data());
            ASSERT_EQ(dX.rows(), 3);
            ASSERT_EQ(dX.cols(), batch);

            const double h = 1e-6;
            for (Eigen::Index i = 0; i < X.size(); i++) {
                Eigen::MatrixXd plus = X, minus = X;
                plus(i) += h;
                minus(i) -= h;
                double fd = (loss(mlp, plus) - loss(mlp, minus)) / (2 * h);
                EXPECT_NEAR(dX(i), fd, 1e-7 * std::max(1.0, std::abs(fd))) << "input " << i;
            }
            std::vector<double> params(numParams);
            mlp.getParameters(params.data());
            for (size_t p = 0; p < numParams; p++) {
                MLP shifted = mlp;
                std::vector<double> q = params;
                q[p] = params[p] + h;
                shifted.setParameters(q.data());
                double up = loss(shifted, X);
                q[p] = params[p] - h;
                shifted.setParameters(q.data());
                double down = loss(shifted, X);
                double fd = (up - down) / (2 * h);
                EXPECT_NEAR(paramGrad[p] - 0.25, fd, 1e-7 * std::max(1.0, std::abs(fd))) << "parameter " << p;
            }
        }
}

TEST(MLP, BackwardWithOnlyParameterGradientOrOnlyInputGradient) {
    MLP mlp = randomMLP({2, 3, 1}, Activation::Tanh, Activation::Identity, 9);
    Eigen::MatrixXd X(2, 4), Y;
    X << 0.1, 0.2, -0.3, 0.4, 1.0, -1.0, 0.5, 0.0;
    Eigen::MatrixXd dY = Eigen::MatrixXd::Ones(1, 4);
    MLP::Workspace ws;
    mlp.forward(X, Y, ws);
    std::vector<double> g1(mlp.getNumParameters(), 0.0), g2(mlp.getNumParameters(), 0.0);
    mlp.backward(dY, ws, nullptr, g1.data());
    Eigen::MatrixXd dX;
    mlp.backward(dY, ws, &dX, nullptr);
    mlp.backward(dY, ws, &dX, g2.data());
    EXPECT_EQ(g1, g2);
    // Gradients of a batch are the sum over samples.
    std::vector<double> sum(mlp.getNumParameters(), 0.0);
    for (int j = 0; j < 4; j++) {
        Eigen::MatrixXd Yj;
        MLP::Workspace wsj;
        mlp.forward(X.col(j), Yj, wsj);
        mlp.backward(Eigen::MatrixXd::Ones(1, 1), wsj, nullptr, sum.data());
    }
    for (size_t p = 0; p < sum.size(); p++)
        EXPECT_NEAR(sum[p], g1[p], 1e-14);
}

TEST(MLP, WorkspaceAdaptsToBatchSize) {
    MLP mlp = randomMLP({3, 4, 1}, Activation::Softplus, Activation::Identity, 11);
    Eigen::MatrixXd X = Eigen::MatrixXd::Random(3, 5);
    MLP::Workspace ws;
    Eigen::MatrixXd Ybatch, Y1;
    mlp.forward(X, Ybatch, ws);
    for (int j = 0; j < 5; j++) {
        mlp.forward(X.col(j), Y1, ws);
        EXPECT_NEAR(Y1(0, 0), Ybatch(0, j), 1e-14);
    }
}

TEST(MLP, RejectsBadShapes) {
    MLP mlp({3, 4, 2}, Activation::Tanh);
    MLP::Workspace ws;
    Eigen::MatrixXd Y;
    std::string message = errorMessage([&] { mlp.forward(Eigen::MatrixXd::Zero(4, 2), Y, ws); });
    EXPECT_NE(message.find("expected 3 rows"), std::string::npos) << message;
    mlp.forward(Eigen::MatrixXd::Zero(3, 2), Y, ws);
    EXPECT_THROW(mlp.backward(Eigen::MatrixXd::Zero(2, 3), ws, nullptr, nullptr), Error);
    EXPECT_THROW(mlp.backward(Eigen::MatrixXd::Zero(1, 2), ws, nullptr, nullptr), Error);
    MLP::Workspace fresh;
    EXPECT_THROW(mlp.backward(Eigen::MatrixXd::Zero(2, 2), fresh, nullptr, nullptr), Error);
    MLP empty;
    EXPECT_THROW(empty.forward(Eigen::MatrixXd::Zero(3, 2), Y, ws), Error);
}
