#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/Precision.h"
#include "cgflow/nn/ResidualMLP.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::nn::Activation;
using cgflow::nn::Precision;
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
    // getLayerParameterOffset names where each layer's weight starts; its bias follows the weight.
    for (int layer = 0; layer < net.getNumLayers(); layer++) {
        const size_t offset = net.getLayerParameterOffset(layer);
        const Eigen::MatrixXd& w = net.weight(layer);
        EXPECT_EQ(values[offset], w(0, 0)) << "layer " << layer;
        EXPECT_EQ(values[offset + 1], w(0, 1)) << "layer " << layer;
        EXPECT_EQ(values[offset + w.size()], net.bias(layer)(0)) << "layer " << layer;
    }
    EXPECT_THROW(net.getLayerParameterOffset(6), Error);

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

// ---------------------------------------------------------------------------------------------
// Mixed precision: float32 GEMMs and activations behind the double interface.

namespace {

// Float32 has a unit roundoff of 6e-8; through a few layers of width <= 64 the errors stay near
// 1e-6 of the magnitude of the quantity, so 1e-5 relative to its largest entry is the tolerance
// used below (Float64 agrees to ~1e-15 on the same comparisons).
const double mixedTolerance = 1e-5;

double maxAbs(const Eigen::MatrixXd& m) {
    return m.cwiseAbs().maxCoeff();
}

/** A network as used in practice: Glorot weights, plus small nonzero biases and output layer. */
ResidualMLP realisticNetwork(int in, int hidden, int out, int blocks, Activation activation, uint64_t seed) {
    ResidualMLP net(in, hidden, out, blocks, activation);
    net.initializeParameters(seed);
    std::vector<double> params = net.getParameters();
    std::mt19937_64 rng(seed + 1);
    std::normal_distribution<double> normal(0.0, 0.05);
    for (double& p : params)
        p += normal(rng);
    net.setParameters(params);
    return net;
}

struct Pass {
    Eigen::MatrixXd Y, dX;
    std::vector<double> grad;
};

Pass runPass(const ResidualMLP& net, const Eigen::MatrixXd& X, const Eigen::MatrixXd& dY, ResidualMLP::Workspace& ws) {
    Pass pass;
    net.forward(X, pass.Y, ws);
    pass.grad.assign(net.getNumParameters(), 0.0);
    net.backward(dY, ws, &pass.dX, pass.grad.data());
    return pass;
}

} // namespace

TEST(ResidualMLPMixed, DefaultIsFloat64AndPrecisionRoundTrips) {
    ResidualMLP net(3, 4, 2, 1);
    EXPECT_EQ(net.getPrecision(), Precision::Float64);
    net.setPrecision(Precision::Mixed);
    EXPECT_EQ(net.getPrecision(), Precision::Mixed);
    ResidualMLP copy = net;
    EXPECT_EQ(copy.getPrecision(), Precision::Mixed);
    net.setPrecision(Precision::Float64);
    EXPECT_EQ(net.getPrecision(), Precision::Float64);
    EXPECT_THROW(net.setPrecision(static_cast<Precision>(7)), Error);
    ResidualMLP empty;
    empty.setPrecision(Precision::Mixed);
    Eigen::MatrixXd Y;
    ResidualMLP::Workspace ws;
    EXPECT_THROW(empty.forward(Eigen::MatrixXd::Ones(3, 4), Y, ws), Error);
}

TEST(ResidualMLPMixed, FloatActivationsMatchDoubleAndStayFinite) {
    Eigen::ArrayXXd x(7, 30);
    for (Eigen::Index i = 0; i < x.size(); i++)
        x(i) = -120.0 + 240.0 * static_cast<double>(i) / static_cast<double>(x.size() - 1); // includes saturation
    x(0) = 0.0;
    const Eigen::ArrayXXf xf = x.cast<float>();
    for (Activation activation : allActivations) {
        SCOPED_TRACE(cgflow::nn::activationName(activation));
        Eigen::ArrayXXd y(x.rows(), x.cols()), d(x.rows(), x.cols());
        Eigen::ArrayXXf yf(x.rows(), x.cols()), df(x.rows(), x.cols());
        cgflow::nn::activationValue(activation, xf.cast<double>(), y);
        cgflow::nn::activationDerivative(activation, xf.cast<double>(), d);
        cgflow::nn::activationValue(activation, xf, yf);
        cgflow::nn::activationDerivative(activation, xf, df);
        ASSERT_TRUE(yf.allFinite());
        ASSERT_TRUE(df.allFinite());
        // Relative to the value itself where it is not tiny (a few float ulps), absolutely near 0.
        for (Eigen::Index i = 0; i < x.size(); i++) {
            EXPECT_NEAR(yf(i), y(i), 1e-6 * std::max(1.0, std::abs(y(i)))) << "f(" << xf(i) << ")";
            EXPECT_NEAR(df(i), d(i), 1e-6 * std::max(1e-3, std::abs(d(i)))) << "f'(" << xf(i) << ")";
        }
        // In place, as for the double version.
        Eigen::ArrayXXf inPlace = xf;
        cgflow::nn::activationValue(activation, inPlace, inPlace);
        EXPECT_TRUE((inPlace == yf).all());
        Eigen::ArrayXXf wrong(2, 2);
        EXPECT_THROW(cgflow::nn::activationValue(activation, xf, wrong), Error);
    }
}

TEST(ResidualMLPMixed, ForwardAndBackwardMatchFloat64ForEveryActivation) {
    const int in = 12, hidden = 64, out = 40, batch = 33;
    for (Activation activation : allActivations)
        for (int blocks : {0, 1, 2}) {
            SCOPED_TRACE(cgflow::nn::activationName(activation) + ", blocks " + std::to_string(blocks));
            ResidualMLP net = realisticNetwork(in, hidden, out, blocks, activation, 100 + blocks);
            Eigen::MatrixXd X = 2.0 * randomMatrix(in, batch, 21);
            Eigen::MatrixXd dY = randomMatrix(out, batch, 22);
            ResidualMLP::Workspace ws;
            Pass exact = runPass(net, X, dY, ws);
            net.setPrecision(Precision::Mixed);
            Pass mixed = runPass(net, X, dY, ws); // the same workspace, now used in Mixed

            EXPECT_LE(maxAbs(mixed.Y - exact.Y), mixedTolerance * maxAbs(exact.Y));
            EXPECT_GT(maxAbs(mixed.Y - exact.Y), 0.0); // it really ran in float
            EXPECT_LE(maxAbs(mixed.dX - exact.dX), mixedTolerance * maxAbs(exact.dX));
            // Each layer's weight and bias gradient against its own scale.
            size_t offset = 0;
            for (int l = 0; l < net.getNumLayers(); l++)
                for (Eigen::Index size : {net.weight(l).size(), net.bias(l).size()}) {
                    double scale = 0.0, error = 0.0;
                    for (Eigen::Index i = 0; i < size; i++) {
                        scale = std::max(scale, std::abs(exact.grad[offset + i]));
                        error = std::max(error, std::abs(mixed.grad[offset + i] - exact.grad[offset + i]));
                    }
                    EXPECT_LE(error, mixedTolerance * scale) << "layer " << l << ", " << size << " parameters";
                    offset += static_cast<size_t>(size);
                }
            ASSERT_EQ(offset, net.getNumParameters());
        }
}

TEST(ResidualMLPMixed, ParameterGradientIsAccumulated) {
    ResidualMLP net = realisticNetwork(5, 16, 7, 1, Activation::SiLU, 3);
    net.setPrecision(Precision::Mixed);
    Eigen::MatrixXd X = randomMatrix(5, 9, 1), dY = randomMatrix(7, 9, 2);
    ResidualMLP::Workspace ws;
    Pass fresh = runPass(net, X, dY, ws);
    // One buffer throughout, so that alignment-dependent summation order cannot enter (see below).
    std::vector<double> accumulated = fresh.grad;
    std::fill(accumulated.begin(), accumulated.end(), 0.0);
    net.backward(dY, ws, nullptr, accumulated.data());
    const std::vector<double> once = accumulated;
    std::fill(accumulated.begin(), accumulated.end(), 1.0);
    net.backward(dY, ws, nullptr, accumulated.data());
    net.backward(dY, ws, nullptr, accumulated.data()); // twice, after one forward
    for (size_t i = 0; i < accumulated.size(); i++) {
        EXPECT_NEAR(accumulated[i], 1.0 + 2.0 * once[i], 1e-12 * (1.0 + std::abs(once[i]))) << i;
        EXPECT_NEAR(once[i], fresh.grad[i], 1e-6 * (1.0 + std::abs(once[i]))) << i;
    }
    // dX alone needs no parameter buffer, and is the same as with one.
    Eigen::MatrixXd dXOnly;
    net.backward(dY, ws, &dXOnly, nullptr);
    EXPECT_EQ(dXOnly, fresh.dX);
}

TEST(ResidualMLPMixed, WeightsChangedThroughAccessorsAreNeverSilentlyStale) {
    ResidualMLP net = realisticNetwork(4, 8, 3, 1, Activation::Tanh, 5);
    net.setPrecision(Precision::Mixed);
    Eigen::MatrixXd X = randomMatrix(4, 6, 1), Y, dX;
    ResidualMLP::Workspace ws;
    net.forward(X, Y, ws);

    net.weight(0)(0, 0) += 0.5;
    net.bias(2)(1) -= 0.25;
    const std::string message = cgflowtest::errorMessage([&] { net.forward(X, Y, ws); });
    EXPECT_NE(message.find("syncPrecisionCopies()"), std::string::npos) << message;
    EXPECT_NE(message.find("weight()/bias()"), std::string::npos) << message;
    EXPECT_THROW(net.backward(Eigen::MatrixXd::Ones(3, 6), ws, &dX, nullptr), Error);

    net.syncPrecisionCopies();
    net.forward(X, Y, ws);
    ResidualMLP reference = net; // the changed weights, evaluated in double
    reference.setPrecision(Precision::Float64);
    Eigen::MatrixXd expected;
    ResidualMLP::Workspace referenceWs;
    reference.forward(X, expected, referenceWs);
    EXPECT_LE(maxAbs(Y - expected), mixedTolerance * maxAbs(expected));

    // setParameters and initializeParameters rebuild the copies too; Float64 never needs a sync.
    net.bias(0)(0) = 3.0;
    net.setParameters(net.getParameters());
    EXPECT_NO_THROW(net.forward(X, Y, ws));
    net.weight(1)(0, 0) = 1.0;
    net.initializeParameters(9);
    EXPECT_NO_THROW(net.forward(X, Y, ws));
    net.setPrecision(Precision::Float64);
    net.weight(0)(0, 0) = 2.0;
    EXPECT_NO_THROW(net.forward(X, Y, ws));
    net.setPrecision(Precision::Mixed); // rebuilds from the current weights
    EXPECT_NO_THROW(net.forward(X, Y, ws));
    // Reading through a const reference does not count as a change.
    const ResidualMLP& constNet = net;
    EXPECT_EQ(constNet.weight(0)(0, 0), 2.0);
    EXPECT_NO_THROW(net.forward(X, Y, ws));
}

TEST(ResidualMLPMixed, SwitchingBackToFloat64IsBitIdenticalToNeverMixed) {
    for (int blocks : {0, 2}) {
        ResidualMLP never = realisticNetwork(6, 20, 11, blocks, Activation::Softplus, 8);
        ResidualMLP switched = never;
        Eigen::MatrixXd X = randomMatrix(6, 10, 3), dY = randomMatrix(11, 10, 4);
        ResidualMLP::Workspace neverWs, switchedWs;
        switched.setPrecision(Precision::Mixed);
        runPass(switched, X, dY, switchedWs);
        switched.setParameters(switched.getParameters()); // a parameter update while mixed
        runPass(switched, X, dY, switchedWs);
        switched.setPrecision(Precision::Float64);
        Pass a = runPass(never, X, dY, neverWs);
        // The same gradient buffer for both: Eigen's vectorized bias sums (rowwise().sum()) can
        // differ in the last bit with the alignment of the destination, in either precision.
        std::vector<double> grad(never.getNumParameters(), 0.0);
        never.backward(dY, neverWs, nullptr, grad.data());
        const std::vector<double> neverGrad = grad;
        Eigen::MatrixXd Y, dX;
        switched.forward(X, Y, switchedWs); // the workspace that held Mixed passes
        std::fill(grad.begin(), grad.end(), 0.0);
        switched.backward(dY, switchedWs, &dX, grad.data());
        EXPECT_EQ(a.Y, Y);
        EXPECT_EQ(a.dX, dX);
        EXPECT_EQ(neverGrad, grad);
    }
}

TEST(ResidualMLPMixed, BackwardRejectsAForwardPassOfTheOtherPrecision) {
    ResidualMLP net = realisticNetwork(3, 5, 2, 1, Activation::ReLU, 1);
    Eigen::MatrixXd X = randomMatrix(3, 4, 1), Y, dX;
    ResidualMLP::Workspace ws;
    net.setPrecision(Precision::Mixed);
    net.forward(X, Y, ws);
    net.setPrecision(Precision::Float64);
    const std::string message =
        cgflowtest::errorMessage([&] { net.backward(Eigen::MatrixXd::Ones(2, 4), ws, &dX, nullptr); });
    EXPECT_NE(message.find("mixed"), std::string::npos) << message;
    EXPECT_NE(message.find("forward() again"), std::string::npos) << message;
    net.forward(X, Y, ws);
    net.setPrecision(Precision::Mixed);
    EXPECT_THROW(net.backward(Eigen::MatrixXd::Ones(2, 4), ws, &dX, nullptr), Error);
    net.forward(X, Y, ws);
    EXPECT_NO_THROW(net.backward(Eigen::MatrixXd::Ones(2, 4), ws, &dX, nullptr));
}

TEST(ResidualMLPMixed, WorkspaceIsReusedWithoutReallocation) {
    for (Activation activation : {Activation::ReLU, Activation::SiLU}) { // f' from outputs / in a buffer
        ResidualMLP net(5, 8, 3, 2, activation);
        net.initializeParameters(7);
        net.setPrecision(Precision::Mixed);
        Eigen::MatrixXd X = randomMatrix(5, 6, 4), dY = randomMatrix(3, 6, 5);
        ResidualMLP::Workspace ws;
        Eigen::MatrixXd Y, dX;
        std::vector<double> grad(net.getNumParameters(), 0.0);
        auto pointers = [&] {
            const ResidualMLP::Workspace::Single& s = ws.single;
            std::vector<const void*> p = {s.input.data(),  s.streamGrad.data(), s.innerGrad.data(),
                                          s.scratch.data(), s.output.data(),     s.outputGrad.data(),
                                          s.inputGrad.data(), s.weightGrad.data(), Y.data(), dX.data()};
            for (int k = 0; k < 2; k++)
                for (const void* q : {static_cast<const void*>(s.outer[k].data()), static_cast<const void*>(s.inner[k].data()),
                                      static_cast<const void*>(s.innerActivated[k].data())})
                    p.push_back(q);
            for (const Eigen::MatrixXf& h : s.stream)
                p.push_back(h.data());
            return p;
        };
        net.forward(X, Y, ws);
        net.backward(dY, ws, &dX, grad.data());
        const std::vector<const void*> first = pointers();
        const Eigen::MatrixXd Y1 = Y, dX1 = dX;
        net.forward(X, Y, ws);
        net.backward(dY, ws, &dX, grad.data());
        EXPECT_EQ(pointers(), first);
        EXPECT_EQ(Y, Y1);
        EXPECT_EQ(dX, dX1);
        EXPECT_EQ(ws.input.size(), 0); // the double buffers are not touched in Mixed

        // Columns stay independent, and forwardInto writes into a block of a larger buffer.
        Eigen::MatrixXd Ysub;
        net.forward(X.middleCols(2, 3), Ysub, ws);
        EXPECT_LE(maxAbs(Ysub - Y1.middleCols(2, 3)), mixedTolerance * maxAbs(Y1));
        Eigen::MatrixXd big = Eigen::MatrixXd::Constant(7, 6, -5.0);
        net.forwardInto(X, big.middleRows(2, 3), ws);
        EXPECT_EQ(Eigen::MatrixXd(big.middleRows(2, 3)), Y1);
        EXPECT_EQ(big(0, 0), -5.0);
        EXPECT_EQ(big(6, 5), -5.0);
    }
}
