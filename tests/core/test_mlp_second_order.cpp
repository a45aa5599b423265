// Second derivatives of the networks, which force matching differentiates through: activations'
// f'' against finite differences of f', and the MLP's input gradient and mixed parameter gradient
// (Pearlmutter's R-operator) against backward() and finite differences in the parameters.
#include "CoreTestUtils.h"
#include "MLPTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/MLP.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::nn::Activation;
using cgflow::nn::MLP;
using cgflowtest::allActivations;
using cgflowtest::randomMLP;
using cgflowtest::errorMessage;

namespace {



Eigen::MatrixXd randomMatrix(Eigen::Index rows, Eigen::Index cols, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    Eigen::MatrixXd m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); i++)
        m(i) = normal(rng);
    return m;
}

// dU/dX through the first-order backward(), an implementation independent of inputGradient().
Eigen::MatrixXd inputGradientByBackward(const MLP& mlp, const Eigen::MatrixXd& X) {
    MLP::Workspace ws;
    Eigen::MatrixXd Y, dX;
    mlp.forward(X, Y, ws);
    mlp.backward(Eigen::MatrixXd::Ones(1, X.cols()), ws, &dX, nullptr);
    return dX;
}

// sum_s v_s . g_s(theta), the function whose parameter gradient mixedParameterGradient() accumulates.
double directionalDerivativeSum(const MLP& mlp, const Eigen::MatrixXd& X, const Eigen::MatrixXd& V) {
    return (inputGradientByBackward(mlp, X).array() * V.array()).sum();
}

std::string name(Activation a) {
    return cgflow::nn::activationName(a);
}

} // namespace

TEST(ActivationSecondDerivative, MatchesFiniteDifferencesOfTheFirstDerivative) {
    cgflowtest::expectDerivativeMatchesCentralDifferences(
        [](Activation a, double x) { return cgflow::nn::activationDerivative(a, x); },
        [](Activation a, double x) { return cgflow::nn::activationSecondDerivative(a, x); });
}

TEST(ActivationSecondDerivative, KnownValuesAndTails) {
    using cgflow::nn::activationSecondDerivative;
    EXPECT_EQ(activationSecondDerivative(Activation::Identity, 0.7), 0.0);
    EXPECT_EQ(activationSecondDerivative(Activation::ReLU, 0.7), 0.0);
    EXPECT_EQ(activationSecondDerivative(Activation::ReLU, -0.7), 0.0);
    EXPECT_EQ(activationSecondDerivative(Activation::Tanh, 0.0), 0.0);
    EXPECT_EQ(activationSecondDerivative(Activation::Sigmoid, 0.0), 0.0);
    EXPECT_DOUBLE_EQ(activationSecondDerivative(Activation::Softplus, 0.0), 0.25);
    EXPECT_DOUBLE_EQ(activationSecondDerivative(Activation::SiLU, 0.0), 0.5);
    const double t = std::tanh(1.3);
    EXPECT_DOUBLE_EQ(activationSecondDerivative(Activation::Tanh, 1.3), -2.0 * t * (1.0 - t * t));
    const double s = 1.0 / (1.0 + std::exp(-0.8));
    EXPECT_DOUBLE_EQ(activationSecondDerivative(Activation::Sigmoid, 0.8), s * (1 - s) * (1 - 2 * s));
    EXPECT_DOUBLE_EQ(activationSecondDerivative(Activation::Softplus, 0.8), s * (1 - s));
    EXPECT_DOUBLE_EQ(activationSecondDerivative(Activation::SiLU, 0.8), s * (1 - s) * (2 + 0.8 * (1 - 2 * s)));
    // Far out the values keep their relative accuracy instead of rounding to 0 through 1 - s.
    EXPECT_NEAR(activationSecondDerivative(Activation::Sigmoid, 40.0) / -std::exp(-40.0), 1.0, 1e-12);
    EXPECT_NEAR(activationSecondDerivative(Activation::Softplus, -40.0) / std::exp(-40.0), 1.0, 1e-12);
    EXPECT_NEAR(activationSecondDerivative(Activation::Tanh, 20.0) / (-8.0 * std::exp(-40.0)), 1.0, 1e-12);
    EXPECT_NEAR(activationSecondDerivative(Activation::SiLU, 40.0) / ((2.0 - 40.0) * std::exp(-40.0)), 1.0, 1e-12);
    for (Activation a : allActivations)
        for (double x : {-1000.0, -750.0, 750.0, 1000.0})
            EXPECT_TRUE(std::isfinite(activationSecondDerivative(a, x))) << name(a) << " " << x;
}

TEST(ActivationSecondDerivative, ArrayFormMatchesScalarForm) {
    // 150 rows cross the 64-row chunks of the implementation; the tails are included.
    Eigen::ArrayXXd x(150, 3);
    for (Eigen::Index i = 0; i < x.size(); i++)
        x(i) = 0.37 * static_cast<double>(i - 225) + (i % 7 == 0 ? 1000.0 : 0.0) * (i % 2 == 0 ? 1 : -1);
    x(2, 0) = 0.0;
    Eigen::ArrayXXd d2(150, 3);
    for (Activation a : allActivations) {
        cgflow::nn::activationSecondDerivative(a, x, d2);
        for (Eigen::Index i = 0; i < x.size(); i++) {
            double scalar = cgflow::nn::activationSecondDerivative(a, x(i));
            EXPECT_NEAR(d2(i), scalar, 1e-14 * std::abs(scalar) + 1e-300) << name(a) << " " << x(i);
        }
        Eigen::ArrayXXd inPlace = x;
        cgflow::nn::activationSecondDerivative(a, inPlace, inPlace);
        EXPECT_TRUE((inPlace == d2).all()) << name(a);
    }
    Eigen::ArrayXXd wrong(4, 3);
    EXPECT_THROW(cgflow::nn::activationSecondDerivative(Activation::Tanh, x, wrong), Error);
}

TEST(MLPSecondOrder, InputGradientMatchesBackward) {
    const Eigen::MatrixXd X = randomMatrix(3, 5, 11);
    for (Activation hidden : allActivations)
        for (Activation output : {Activation::Identity, Activation::Softplus, Activation::Tanh}) {
            MLP mlp = randomMLP({3, 6, 4, 1}, hidden, output, 21);
            MLP::Workspace ws;
            Eigen::MatrixXd Y, G;
            mlp.forward(X, Y, ws);
            mlp.inputGradient(ws, G);
            const Eigen::MatrixXd expected = inputGradientByBackward(mlp, X);
            ASSERT_EQ(G.rows(), 3);
            ASSERT_EQ(G.cols(), 5);
            for (Eigen::Index i = 0; i < G.size(); i++)
                EXPECT_NEAR(G(i), expected(i), 1e-13 * std::max(1.0, std::abs(expected(i))))
                    << name(hidden) << "/" << name(output) << " entry " << i;
        }
}

// The core check: the accumulated gradient of sum_s v_s . g_s against central differences in each
// parameter, for every hidden activation, identity and curved output activations, one to three
// hidden layers and a batch of several samples.
TEST(MLPSecondOrder, MixedParameterGradientMatchesFiniteDifferences) {
    const std::vector<std::vector<int>> architectures = {{3, 5, 1}, {3, 6, 4, 1}, {2, 4, 5, 3, 1}};
    int checked = 0;
    for (const std::vector<int>& widths : architectures)
        for (Activation hidden : allActivations)
            for (Activation output : {Activation::Identity, Activation::Softplus, Activation::Tanh}) {
                const int batch = 4;
                MLP mlp = randomMLP(widths, hidden, output, 100 + checked);
                const Eigen::MatrixXd X = randomMatrix(widths[0], batch, 200 + checked);
                const Eigen::MatrixXd V = randomMatrix(widths[0], batch, 300 + checked);
                const size_t numParameters = mlp.getNumParameters();
                // Pre-filled so that the test also checks that the gradient accumulates.
                std::vector<double> grad(numParameters, 0.25);
                MLP::Workspace ws;
                Eigen::MatrixXd Y, G;
                mlp.forward(X, Y, ws);
                mlp.inputGradient(ws, G);
                mlp.mixedParameterGradient(V, ws, grad.data());

                std::vector<double> theta(numParameters);
                mlp.getParameters(theta.data());
                MLP shifted = mlp;
                for (size_t p = 0; p < numParameters; p++) {
                    const double h = 1e-5 * std::max(1.0, std::abs(theta[p]));
                    std::vector<double> plus = theta, minus = theta;
                    plus[p] += h;
                    minus[p] -= h;
                    shifted.setParameters(plus.data());
                    const double up = directionalDerivativeSum(shifted, X, V);
                    shifted.setParameters(minus.data());
                    const double down = directionalDerivativeSum(shifted, X, V);
                    const double fd = (up - down) / (2 * h);
                    EXPECT_NEAR(grad[p] - 0.25, fd, 2e-7 * std::max(1.0, std::abs(fd)))
                        << name(hidden) << "/" << name(output) << " widths size " << widths.size() << " parameter " << p;
                }
                checked++;
            }
    EXPECT_EQ(checked, 3 * 6 * 3);
}

TEST(MLPSecondOrder, OneCallEqualsTheTwoSteps) {
    MLP mlp = randomMLP({3, 7, 5, 1}, Activation::SiLU, Activation::Identity, 5);
    const Eigen::MatrixXd X = randomMatrix(3, 6, 6);
    const Eigen::MatrixXd V = randomMatrix(3, 6, 7);
    MLP::Workspace ws;
    Eigen::MatrixXd Y, G1, G2;
    std::vector<double> grad1(mlp.getNumParameters(), 0.0), grad2(mlp.getNumParameters(), 0.0);
    mlp.forward(X, Y, ws);
    mlp.inputGradient(ws, G1);
    mlp.mixedParameterGradient(V, ws, grad1.data());
    mlp.forward(X, Y, ws);
    mlp.inputGradientAndMixedParameterGradient(V, ws, G2, grad2.data());
    EXPECT_TRUE(G1 == G2);
    EXPECT_EQ(grad1, grad2);
    // Without a parameter gradient it is just the input gradient.
    Eigen::MatrixXd G3;
    mlp.forward(X, Y, ws);
    mlp.inputGradientAndMixedParameterGradient(V, ws, G3, nullptr);
    EXPECT_TRUE(G1 == G3);
}

TEST(MLPSecondOrder, DirectionsAreLinearAndSamplesAdd) {
    // The gradient of a batch is the sum of the per-sample gradients, and it is linear in V: the
    // batched GEMMs must not mix columns.
    MLP mlp = randomMLP({2, 5, 3, 1}, Activation::Tanh, Activation::Sigmoid, 8);
    const Eigen::MatrixXd X = randomMatrix(2, 3, 9);
    const Eigen::MatrixXd V = randomMatrix(2, 3, 10);
    const size_t n = mlp.getNumParameters();
    auto gradientOf = [&](const Eigen::MatrixXd& x, const Eigen::MatrixXd& v) {
        MLP::Workspace ws;
        Eigen::MatrixXd Y, G;
        std::vector<double> grad(n, 0.0);
        mlp.forward(x, Y, ws);
        mlp.inputGradientAndMixedParameterGradient(v, ws, G, grad.data());
        return Eigen::VectorXd(Eigen::Map<Eigen::VectorXd>(grad.data(), n));
    };
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(n);
    for (int s = 0; s < 3; s++)
        sum += gradientOf(X.col(s), V.col(s));
    const Eigen::VectorXd batched = gradientOf(X, V);
    EXPECT_LT((batched - sum).norm(), 1e-13 * std::max(1.0, sum.norm()));
    EXPECT_LT((gradientOf(X, -2.5 * V) + 2.5 * batched).norm(), 1e-13 * std::max(1.0, batched.norm()));
}

TEST(MLPSecondOrder, Errors) {
    MLP vectorOutput = randomMLP({3, 4, 2}, Activation::Tanh, Activation::Identity, 1);
    MLP::Workspace ws;
    Eigen::MatrixXd Y, G;
    const Eigen::MatrixXd X = randomMatrix(3, 2, 2);
    vectorOutput.forward(X, Y, ws);
    std::string message = errorMessage([&] { vectorOutput.inputGradient(ws, G); });
    EXPECT_NE(message.find("scalar output"), std::string::npos) << message;

    MLP mlp = randomMLP({3, 4, 1}, Activation::Tanh, Activation::Identity, 3);
    std::vector<double> grad(mlp.getNumParameters(), 0.0);
    MLP::Workspace fresh;
    EXPECT_THROW(mlp.inputGradient(fresh, G), Error);
    mlp.forward(X, Y, fresh);
    message = errorMessage([&] { mlp.mixedParameterGradient(X, fresh, grad.data()); });
    EXPECT_NE(message.find("inputGradient()"), std::string::npos) << message;
    mlp.inputGradient(fresh, G);
    message = errorMessage([&] { mlp.mixedParameterGradient(randomMatrix(3, 5, 4), fresh, grad.data()); });
    EXPECT_NE(message.find("V is 3x5"), std::string::npos) << message;
    EXPECT_THROW(mlp.mixedParameterGradient(X, fresh, nullptr), Error);
    // backward() and forward() overwrite the pass the mixed gradient reads, so both invalidate it.
    mlp.backward(Eigen::MatrixXd::Ones(1, 2), fresh, nullptr, nullptr);
    EXPECT_THROW(mlp.mixedParameterGradient(X, fresh, grad.data()), Error);
    mlp.inputGradient(fresh, G);
    mlp.forward(X, Y, fresh);
    EXPECT_THROW(mlp.mixedParameterGradient(X, fresh, grad.data()), Error);
}

// The gradients accumulated into paramGrad must not depend on where that buffer lies: a trainer
// running members on several threads gets buffers at addresses that differ between threads, and
// its results must be the same bits for any thread count. Small layers (Eigen's coefficient-based
// products) and larger ones (GEMM) both, at every offset within a cache line.
TEST(MLPSecondOrder, GradientsDoNotDependOnTheBufferAddress) {
    for (const std::vector<int>& widths : std::vector<std::vector<int>>{{3, 5, 1}, {4, 16, 8, 1}})
        for (int batch : {2, 7}) {
            MLP mlp = randomMLP(widths, Activation::Tanh, Activation::Identity, 31);
            const Eigen::MatrixXd X = randomMatrix(widths[0], batch, 32);
            const Eigen::MatrixXd V = randomMatrix(widths[0], batch, 33);
            const Eigen::MatrixXd dY = randomMatrix(1, batch, 34);
            const size_t n = mlp.getNumParameters();
            auto gradientsAt = [&](size_t shift) {
                std::vector<double> buffer(n + 8, 0.0);
                double* grad = buffer.data() + shift;
                MLP::Workspace ws;
                Eigen::MatrixXd Y, G;
                mlp.forward(X, Y, ws);
                mlp.inputGradient(ws, G);
                mlp.mixedParameterGradient(V, ws, grad);
                std::vector<double> mixed(grad, grad + n);
                std::fill(grad, grad + n, 0.0);
                mlp.backward(dY, ws, nullptr, grad);
                return std::make_pair(mixed, std::vector<double>(grad, grad + n));
            };
            const auto reference = gradientsAt(0);
            for (size_t shift = 1; shift < 8; shift++) {
                const auto shifted = gradientsAt(shift);
                EXPECT_EQ(shifted.first, reference.first) << "mixed gradient, shift " << shift << ", batch " << batch;
                EXPECT_EQ(shifted.second, reference.second) << "backward, shift " << shift << ", batch " << batch;
            }
        }
}
