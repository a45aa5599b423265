#include "cgflow/Error.h"
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/ResidualMLP.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::nn::Activation;
using cgflow::nn::ResidualMLP;

namespace {

const std::vector<Activation> allActivations = {Activation::Identity, Activation::Tanh, Activation::Sigmoid,
                                                Activation::Softplus, Activation::SiLU,  Activation::ReLU};

// Random parameters including biases, so that every term of the gradient is exercised.
void randomizeParameters(ResidualMLP& net, uint64_t seed) {
    std::vector<double> params(net.getNumParameters());
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.6);
    for (double& p : params)
        p = normal(rng);
    net.setParameters(params);
}

Eigen::MatrixXd randomMatrix(Eigen::Index rows, Eigen::Index cols, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    Eigen::MatrixXd m(rows, cols);
    for (Eigen::Index j = 0; j < cols; j++)
        for (Eigen::Index i = 0; i < rows; i++)
            m(i, j) = normal(rng);
    return m;
}

// L = sum(R .* net(X)), so dL/dY = R.
double weightedOutput(const ResidualMLP& net, const Eigen::MatrixXd& X, const Eigen::MatrixXd& R) {
    ResidualMLP::Workspace ws;
    Eigen::MatrixXd Y;
    net.forward(X, Y, ws);
    return (R.array() * Y.array()).sum();
}

} // namespace

TEST(ResidualMLP, GradientsMatchFiniteDifferencesForEveryActivation) {
    const int in = 3, hidden = 5, out = 4, blocks = 2, batch = 4;
    const double h = 1e-6;
    for (Activation activation : allActivations) {
        SCOPED_TRACE(cgflow::nn::activationName(activation));
        ResidualMLP net(in, hidden, out, blocks, activation);
        randomizeParameters(net, 11);
        Eigen::MatrixXd X = randomMatrix(in, batch, 12);
        Eigen::MatrixXd R = randomMatrix(out, batch, 13);

        ResidualMLP::Workspace ws;
        Eigen::MatrixXd Y, dX;
        net.forward(X, Y, ws);
        // Accumulation: the gradient is added to what the buffer already holds.
        std::vector<double> grad(net.getNumParameters(), 1.0);
        net.backward(R, ws, &dX, grad.data());
        ASSERT_EQ(dX.rows(), in);
        ASSERT_EQ(dX.cols(), batch);

        for (int i = 0; i < in; i++)
            for (int j = 0; j < batch; j++) {
                Eigen::MatrixXd plus = X, minus = X;
                plus(i, j) += h;
                minus(i, j) -= h;
                double numeric = (weightedOutput(net, plus, R) - weightedOutput(net, minus, R)) / (2 * h);
                EXPECT_NEAR(dX(i, j), numeric, 1e-7 * (1.0 + std::abs(numeric))) << "dX(" << i << "," << j << ")";
            }

        std::vector<double> params = net.getParameters();
        for (size_t p = 0; p < params.size(); p++) {
            ResidualMLP probe = net;
            std::vector<double> shifted = params;
            shifted[p] = params[p] + h;
            probe.setParameters(shifted);
            double fPlus = weightedOutput(probe, X, R);
            shifted[p] = params[p] - h;
            probe.setParameters(shifted);
            double fMinus = weightedOutput(probe, X, R);
            double numeric = (fPlus - fMinus) / (2 * h);
            EXPECT_NEAR(grad[p] - 1.0, numeric, 1e-7 * (1.0 + std::abs(numeric))) << "parameter " << p;
        }
    }
}

TEST(ResidualMLP, TinyNetworkMatchesHandComputation) {
    // 1 -> 1 -> 1 with one ReLU block; flat order W_in, b_in, W1, b1, W2, b2, W_out, b_out.
    ResidualMLP net(1, 1, 1, 1, Activation::ReLU);
    ASSERT_EQ(net.getNumParameters(), 8u);
    net.setParameters(std::vector<double>{2.0, -1.0, 3.0, 0.5, -1.0, 0.25, 4.0, 1.0});
    // x = 1: h0 = 1, inner = 3 relu(1) + 0.5 = 3.5, h1 = 1 - relu(3.5) + 0.25 = -2.25, y = -9 + 1 = -8.
    // x = 0: h0 = -1, inner = 0.5, h1 = -1 - 0.5 + 0.25 = -1.25, y = -4.
    Eigen::MatrixXd X(1, 2);
    X << 1.0, 0.0;
    ResidualMLP::Workspace ws;
    Eigen::MatrixXd Y, dX;
    net.forward(X, Y, ws);
    EXPECT_DOUBLE_EQ(Y(0, 0), -8.0);
    EXPECT_DOUBLE_EQ(Y(0, 1), -4.0);

    // dY = 1. x = 1: dh1 = 4, d(inner) = -4, dh0 = 4 + 3 * (-4) = -8, dx = 2 * (-8) = -16.
    //          x = 0: dh1 = 4, d(inner) = -4, dh0 = 4 (relu'(-1) = 0 blocks the branch), dx = 8.
    std::vector<double> grad(8, 0.0);
    net.backward(Eigen::MatrixXd::Ones(1, 2), ws, &dX, grad.data());
    EXPECT_DOUBLE_EQ(dX(0, 0), -16.0);
    EXPECT_DOUBLE_EQ(dX(0, 1), 8.0);
    const std::vector<double> expected = {-8.0 + 0.0,         // dW_in = dh0 * x
                                          -8.0 + 4.0,         // db_in
                                          -4.0 * 1 + -4 * 0,  // dW1 = d(inner) relu(h0)
                                          -4.0 + -4.0,        // db1
                                          4 * 3.5 + 4 * 0.5,  // dW2 = dh1 relu(inner)
                                          8.0,                // db2
                                          -2.25 + -1.25,      // dW_out = h1
                                          2.0};               // db_out
    for (size_t i = 0; i < expected.size(); i++)
        EXPECT_DOUBLE_EQ(grad[i], expected[i]) << "parameter " << i;
}

TEST(ResidualMLP, ZeroInitialOutputGivesZeroOutputButTrainableGradients) {
    ResidualMLP net(6, 16, 9, 1, Activation::SiLU, true);
    net.initializeParameters(42);
    EXPECT_GT(net.weight(0).cwiseAbs().maxCoeff(), 0.0);
    EXPECT_EQ(net.weight(net.getNumLayers() - 1).cwiseAbs().maxCoeff(), 0.0);
    Eigen::MatrixXd X = randomMatrix(6, 7, 1);
    ResidualMLP::Workspace ws;
    Eigen::MatrixXd Y, dX;
    net.forward(X, Y, ws);
    EXPECT_EQ(Y.cwiseAbs().maxCoeff(), 0.0);

    std::vector<double> grad(net.getNumParameters(), 0.0);
    net.backward(randomMatrix(9, 7, 2), ws, &dX, grad.data());
    EXPECT_EQ(dX.cwiseAbs().maxCoeff(), 0.0); // nothing upstream of a zero layer gets a gradient yet
    const size_t outputWeightOffset = net.getNumParameters() - 9 * 16 - 9;
    double outputGradNorm = 0.0;
    for (size_t i = outputWeightOffset; i < grad.size(); i++)
        outputGradNorm += grad[i] * grad[i];
    EXPECT_GT(outputGradNorm, 0.0); // ... but the output layer does, so training can start

    ResidualMLP glorot(6, 16, 9, 1, Activation::SiLU, false);
    glorot.initializeParameters(42);
    EXPECT_GT(glorot.weight(glorot.getNumLayers() - 1).cwiseAbs().maxCoeff(), 0.0);
    EXPECT_EQ(glorot.weight(0), net.weight(0)); // same seed, same stream for the other layers
    const double limit = std::sqrt(6.0 / (16 + 16));
    EXPECT_LE(glorot.weight(1).cwiseAbs().maxCoeff(), limit);
}

TEST(ResidualMLP, ParameterRoundTripAndFlatLayout) {
    ResidualMLP net(3, 4, 2, 2, Activation::Tanh);
    EXPECT_EQ(net.getNumLayers(), 6);
    EXPECT_EQ(net.getNumParameters(), size_t(4 * 3 + 4 + 2 * (4 * 4 + 4) * 2 + 2 * 4 + 2));
    std::vector<double> values(net.getNumParameters());
    for (size_t i = 0; i < values.size(); i++)
        values[i] = 0.01 * static_cast<double>(i);
    net.setParameters(values);
    EXPECT_EQ(net.getParameters(), values);
    // Row-major weight, then bias, layer by layer.
    EXPECT_EQ(net.weight(0)(0, 1), 0.01);
    EXPECT_EQ(net.weight(0)(1, 0), 0.03);
    EXPECT_EQ(net.bias(0)(0), 0.12);
    EXPECT_EQ(net.weight(1)(0, 0), 0.16);

    ResidualMLP copy(3, 4, 2, 2, Activation::Tanh);
    copy.setParameters(net.getParameters());
    Eigen::MatrixXd X = randomMatrix(3, 5, 3);
    ResidualMLP::Workspace ws1, ws2;
    Eigen::MatrixXd Y1, Y2;
    net.forward(X, Y1, ws1);
    copy.forward(X, Y2, ws2);
    EXPECT_EQ(Y1, Y2);
    EXPECT_THROW(copy.setParameters(std::vector<double>(3)), Error);
    EXPECT_THROW(net.weight(6), Error);
    EXPECT_THROW(net.bias(-1), Error);
}

TEST(ResidualMLP, WorkspaceIsReusedWithoutReallocationAndBatchesAreIndependent) {
    ResidualMLP net(5, 8, 3, 1, Activation::Softplus);
    net.initializeParameters(7);
    Eigen::MatrixXd X = randomMatrix(5, 6, 4);
    ResidualMLP::Workspace ws;
    Eigen::MatrixXd Y, dX;
    std::vector<double> grad(net.getNumParameters(), 0.0);
    net.forward(X, Y, ws);
    net.backward(Eigen::MatrixXd::Ones(3, 6), ws, &dX, grad.data());
    std::vector<const double*> buffers = {ws.input.data(), ws.stream[0].data(), ws.stream[1].data(),
                                          ws.outer[0].data(), ws.inner[0].data(), ws.innerActivated[0].data(),
                                          ws.streamGrad.data(), ws.innerGrad.data(), ws.scratch.data(),
                                          Y.data(), dX.data()};
    Eigen::MatrixXd Y1 = Y;
    net.forward(X, Y, ws);
    net.backward(Eigen::MatrixXd::Ones(3, 6), ws, &dX, grad.data());
    std::vector<const double*> again = {ws.input.data(), ws.stream[0].data(), ws.stream[1].data(),
                                        ws.outer[0].data(), ws.inner[0].data(), ws.innerActivated[0].data(),
                                        ws.streamGrad.data(), ws.innerGrad.data(), ws.scratch.data(),
                                        Y.data(), dX.data()};
    EXPECT_EQ(buffers, again);
    EXPECT_EQ(Y, Y1);

    // A column's output does not depend on the rest of the batch or on the batch size.
    Eigen::MatrixXd Ysub;
    net.forward(X.middleCols(2, 3), Ysub, ws);
    EXPECT_LT((Ysub - Y1.middleCols(2, 3)).cwiseAbs().maxCoeff(), 1e-14);

    // forwardInto writes into a block of a caller's buffer.
    Eigen::MatrixXd big = Eigen::MatrixXd::Constant(7, 6, -5.0);
    net.forwardInto(X, big.middleRows(2, 3), ws);
    EXPECT_LT((big.middleRows(2, 3) - Y1).cwiseAbs().maxCoeff(), 1e-14);
    EXPECT_EQ(big(0, 0), -5.0);
    EXPECT_EQ(big(6, 5), -5.0);
}

TEST(ResidualMLP, RejectsBadShapesAndArguments) {
    EXPECT_THROW(ResidualMLP(0, 4, 2, 1), Error);
    EXPECT_THROW(ResidualMLP(3, 4, 2, -1), Error);
    ResidualMLP net(3, 4, 2, 1);
    net.initializeParameters(1);
    ResidualMLP::Workspace ws;
    Eigen::MatrixXd Y, dX;
    EXPECT_THROW(net.backward(Eigen::MatrixXd::Ones(2, 4), ws, &dX, nullptr), Error); // no forward yet
    EXPECT_THROW(net.forward(Eigen::MatrixXd::Ones(4, 4), Y, ws), Error);
    net.forward(Eigen::MatrixXd::Ones(3, 4), Y, ws);
    EXPECT_THROW(net.backward(Eigen::MatrixXd::Ones(2, 5), ws, &dX, nullptr), Error);
    Eigen::MatrixXd wrong(2, 3);
    EXPECT_THROW(net.forwardInto(Eigen::MatrixXd::Ones(3, 4), wrong, ws), Error);
    ResidualMLP empty;
    EXPECT_THROW(empty.forward(Eigen::MatrixXd::Ones(3, 4), Y, ws), Error);

    // Zero blocks: the affine map W_out (W_in x + b_in) + b_out.
    ResidualMLP affine(2, 3, 1, 0);
    EXPECT_EQ(affine.getNumLayers(), 2);
    randomizeParameters(affine, 5);
    Eigen::MatrixXd X = randomMatrix(2, 3, 6);
    affine.forward(X, Y, ws);
    Eigen::MatrixXd expected =
        (affine.weight(1) * ((affine.weight(0) * X).colwise() + affine.bias(0))).colwise() + affine.bias(1);
    EXPECT_LT((Y - expected).cwiseAbs().maxCoeff(), 1e-14);
}
