#include "cgflow/Error.h"
#include "cgflow/nn/MixedPrecisionEnsemble.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

using cgflow::Error;
using cgflow::nn::Activation;
using cgflow::nn::MixedPrecisionEnsemble;
using cgflow::nn::MLP;
using cgflow::nn::MLPEnsemble;

namespace {

MLPEnsemble randomEnsemble(const std::vector<int>& widths, Activation hidden, Activation output, int members,
                           uint64_t seed) {
    std::vector<MLP> list;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> uniform(-0.5, 0.5);
    for (int k = 0; k < members; k++) {
        MLP mlp(widths, hidden, output);
        mlp.initializeParameters(seed + 17 * k);
        for (int l = 0; l < mlp.getNumLayers(); l++)
            for (Eigen::Index i = 0; i < mlp.bias(l).size(); i++)
                mlp.bias(l)(i) = uniform(rng);
        list.push_back(std::move(mlp));
    }
    return MLPEnsemble(std::move(list));
}

Eigen::MatrixXd randomInputs(int rows, int cols, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    Eigen::MatrixXd X(rows, cols);
    for (Eigen::Index i = 0; i < X.size(); i++)
        X.data()[i] = normal(rng);
    return X;
}

struct Outputs {
    Eigen::MatrixXd members, grad;
};

Outputs float64(const MLPEnsemble& e, const Eigen::MatrixXd& X) {
    Outputs o;
    e.evaluateMembers(X, o.members, &o.grad);
    return o;
}

Outputs mixed(const MixedPrecisionEnsemble& e, const Eigen::MatrixXd& X) {
    Outputs o;
    e.evaluateMembers(X, o.members, &o.grad);
    return o;
}

} // namespace

// Every activation, one sample and a batch: member values and d(mean)/dX agree with float64 to
// float32 rounding (relative ~1e-6 of the values' scale), and they are not bit-equal, so the
// float path really runs in float.
TEST(MixedPrecisionEnsemble, AgreesWithFloat64ToFloatRounding) {
    for (Activation act : {Activation::Sigmoid, Activation::Tanh, Activation::SiLU, Activation::Softplus,
                           Activation::ReLU, Activation::Identity}) {
        const MLPEnsemble e = randomEnsemble({4, 64, 32, 1}, act, Activation::Identity, 5, 3);
        const MixedPrecisionEnsemble m(e);
        EXPECT_EQ(m.getNumMembers(), 5);
        EXPECT_EQ(m.getInputSize(), 4);
        for (int batch : {1, 7}) {
            const Eigen::MatrixXd X = randomInputs(4, batch, 11 + batch);
            const Outputs ref = float64(e, X), got = mixed(m, X);
            const double valueScale = 1.0 + ref.members.cwiseAbs().maxCoeff();
            const double gradScale = 1.0 + ref.grad.cwiseAbs().maxCoeff();
            EXPECT_LT((got.members - ref.members).cwiseAbs().maxCoeff(), 2e-6 * valueScale)
                << cgflow::nn::activationName(act) << " batch " << batch;
            EXPECT_LT((got.grad - ref.grad).cwiseAbs().maxCoeff(), 2e-5 * gradScale)
                << cgflow::nn::activationName(act) << " batch " << batch;
            EXPECT_GT((got.members - ref.members).cwiseAbs().maxCoeff(), 0.0) << cgflow::nn::activationName(act);
        }
    }
}

// The output layer's sum stays in double: a large constant offset (output bias 1e5) does not
// grow the error of the energy's variations, as float accumulation would (float spacing at 1e5
// is ~0.008).
TEST(MixedPrecisionEnsemble, OutputSumIsAccumulatedInDouble) {
    MLPEnsemble e = randomEnsemble({4, 64, 32, 1}, Activation::Sigmoid, Activation::Identity, 3, 5);
    const Eigen::MatrixXd X = randomInputs(4, 5, 2);
    const Outputs before = float64(e, X);
    const Outputs mixedBefore = mixed(MixedPrecisionEnsemble(e), X);
    for (int k = 0; k < e.getNumMembers(); k++)
        e.getMember(k).bias(2)(0) += 1e5;
    const Outputs after = float64(e, X);
    const Outputs mixedAfter = mixed(MixedPrecisionEnsemble(e), X);
    const double errorBefore = (mixedBefore.members - before.members).cwiseAbs().maxCoeff();
    const double errorAfter = (mixedAfter.members - after.members).cwiseAbs().maxCoeff();
    EXPECT_LT(errorAfter, 1e-5);
    EXPECT_NEAR(errorAfter, errorBefore, 1e-9);
}

// Shapes other than the usual: a network with no hidden layer (all in double) and one with a
// non-identity output activation.
TEST(MixedPrecisionEnsemble, LinearNetworkAndOutputActivation) {
    const Eigen::MatrixXd X = randomInputs(3, 4, 9);
    const MLPEnsemble linear = randomEnsemble({3, 1}, Activation::Tanh, Activation::Identity, 2, 1);
    const Outputs a = float64(linear, X), b = mixed(MixedPrecisionEnsemble(linear), X);
    EXPECT_LT((a.members - b.members).cwiseAbs().maxCoeff(), 1e-14);
    EXPECT_LT((a.grad - b.grad).cwiseAbs().maxCoeff(), 1e-14);
    const MLPEnsemble softOut = randomEnsemble({3, 16, 1}, Activation::Tanh, Activation::Softplus, 2, 4);
    const Outputs c = float64(softOut, X), d = mixed(MixedPrecisionEnsemble(softOut), X);
    EXPECT_LT((c.members - d.members).cwiseAbs().maxCoeff(), 1e-6);
    EXPECT_LT((c.grad - d.grad).cwiseAbs().maxCoeff(), 1e-5);
}

// Energies only (gradMean null) give the same member values as with the gradient.
TEST(MixedPrecisionEnsemble, EnergiesWithoutGradientAreTheSame) {
    const MLPEnsemble e = randomEnsemble({4, 32, 16, 1}, Activation::SiLU, Activation::Identity, 4, 8);
    const MixedPrecisionEnsemble m(e);
    const Eigen::MatrixXd X = randomInputs(4, 3, 1);
    Eigen::MatrixXd withGrad, without, grad;
    m.evaluateMembers(X, withGrad, &grad);
    m.evaluateMembers(X, without, nullptr);
    EXPECT_EQ(withGrad, without);
}

TEST(MixedPrecisionEnsemble, RejectsWrongInputSizeAndEmptyEnsemble) {
    const MixedPrecisionEnsemble m(randomEnsemble({4, 8, 1}, Activation::Tanh, Activation::Identity, 2, 1));
    Eigen::MatrixXd out;
    EXPECT_THROW(m.evaluateMembers(Eigen::MatrixXd::Zero(3, 1), out, nullptr), Error);
    const MLPEnsemble empty;
    EXPECT_THROW(MixedPrecisionEnsemble{empty}, Error);
    EXPECT_THROW(MixedPrecisionEnsemble().evaluateMembers(Eigen::MatrixXd::Zero(4, 1), out, nullptr), Error);
}
