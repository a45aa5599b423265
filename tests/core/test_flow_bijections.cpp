// Inverse, log-det and gradient checks of every bijection of core/flows.
#include "CoreTestUtils.h"
#include "FlowTestUtils.h"

#include "cgflow/flows/AffineCoupling.h"
#include "cgflow/flows/Permutation.h"
#include "cgflow/flows/SplineCoupling.h"

#include <gtest/gtest.h>

using namespace cgflow::flows;
using cgflowtest::errorMessage;

namespace {

constexpr double Pi = 3.14159265358979323846;

// Five dimensions, 1 and 3 circular: every coupling sees a mix of real and circular inputs.
const std::vector<bool> mixedCircular = {false, true, false, true, false};

// Test points: inside [-B, B], in the tails (|x| > B = 3 below), at +-pi and near bin edges.
Eigen::MatrixXd testPoints() {
    Eigen::MatrixXd x(5, 6);
    x << 0.3, -2.9, 3.5, -4.0, 1e-9, 2.999, //
        1.0, -3.0, Pi, -Pi, 0.0, 2.5,       //
        -0.7, 0.1, -3.2, 7.0, -2.0, 0.0,    //
        2.0, 0.5, -1.5, 3.1, -Pi, Pi,       //
        0.0, 1.2, 2.2, -0.4, 5.0, -3.0;
    return x;
}

// Points away from the circle's seam, for finite differences.
Eigen::MatrixXd smoothPoints() {
    Eigen::MatrixXd x(5, 4);
    x << 0.3, -2.5, 3.5, -1.0, //
        1.0, -2.9, 2.8, 0.2,   //
        -0.7, 0.1, -3.2, 1.7,  //
        2.0, 0.5, -1.5, 3.0,   //
        0.0, 1.2, 2.2, -0.4;
    return x;
}

std::unique_ptr<SplineCoupling> makeSpline(int contextFeatures) {
    CouplingOptions coupling;
    coupling.transformed = {true, true, false, false, true};
    coupling.contextFeatureSize = contextFeatures;
    coupling.hiddenSize = 8;
    coupling.numBlocks = 1;
    coupling.activation = cgflow::nn::Activation::Tanh;
    SplineOptions spline;
    spline.numBins = 4;
    spline.bound = 3.0;
    auto layer = std::make_unique<SplineCoupling>(mixedCircular, coupling, spline);
    cgflowtest::randomizeParameters(*layer, 0.5, 11);
    return layer;
}

double maxRoundTripError(const Bijection& b, Direction first, const Eigen::MatrixXd& x, const Eigen::MatrixXd* ctx) {
    Eigen::VectorXd ld1, ld2;
    Eigen::MatrixXd y = cgflowtest::applied(b, first, x, ctx, ld1);
    Eigen::MatrixXd back =
        cgflowtest::applied(b, first == Direction::Forward ? Direction::Inverse : Direction::Forward, y, ctx, ld2);
    const std::vector<bool> circular = b.getInputCircular();
    double worst = (ld1 + ld2).cwiseAbs().maxCoeff();
    for (int j = 0; j < x.cols(); j++)
        for (int i = 0; i < x.rows(); i++)
            worst = std::max(worst, std::abs(cgflowtest::dimDifference(back(i, j), x(i, j), circular[i])));
    return worst;
}

void expectLogDetMatchesJacobian(const Bijection& b, const Eigen::MatrixXd& x, const Eigen::MatrixXd* ctx) {
    for (Direction d : {Direction::Forward, Direction::Inverse}) {
        Eigen::VectorXd ld;
        cgflowtest::applied(b, d, x, ctx, ld);
        Eigen::VectorXd numeric = cgflowtest::finiteDifferenceLogDet(b, d, x, ctx);
        for (int j = 0; j < x.cols(); j++)
            EXPECT_NEAR(ld[j], numeric[j], 1e-6) << b.getTypeName() << " column " << j;
    }
}

} // namespace

TEST(SplineCoupling, InverseRoundTripEverywhere) {
    auto layer = makeSpline(0);
    const Eigen::MatrixXd x = testPoints();
    EXPECT_LT(maxRoundTripError(*layer, Direction::Forward, x, nullptr), 1e-10);
    EXPECT_LT(maxRoundTripError(*layer, Direction::Inverse, x, nullptr), 1e-10);
    // Circular outputs stay on [-pi, pi]; pass-through dims are untouched.
    Eigen::VectorXd ld;
    Eigen::MatrixXd y = cgflowtest::applied(*layer, Direction::Forward, x, nullptr, ld);
    EXPECT_LE(y.row(1).cwiseAbs().maxCoeff(), Pi);
    EXPECT_EQ(y.row(2), x.row(2));
    EXPECT_EQ(y.row(3), x.row(3));
    // Tails are the identity: dim 0 at 3.5 and -4.0 (columns 2 and 3) is unchanged.
    EXPECT_EQ(y(0, 2), 3.5);
    EXPECT_EQ(y(0, 3), -4.0);
}

TEST(SplineCoupling, LogDetMatchesFiniteDifferenceJacobian) {
    auto layer = makeSpline(3);
    Eigen::MatrixXd ctx = cgflowtest::randomMatrix(3, 4, 1.0, 5);
    expectLogDetMatchesJacobian(*layer, smoothPoints(), &ctx);
}

TEST(SplineCoupling, GradientsMatchFiniteDifferences) {
    auto layer = makeSpline(3);
    Eigen::MatrixXd ctx = cgflowtest::randomMatrix(3, 4, 1.0, 6);
    for (Direction d : {Direction::Forward, Direction::Inverse})
        EXPECT_LT(cgflowtest::maxGradientError(*layer, d, smoothPoints(), &ctx, 21, 7), 1e-6);
}

TEST(SplineCoupling, StartsAsIdentity) {
    auto layer = makeSpline(0);
    layer->initializeParameters(3);
    const Eigen::MatrixXd x = testPoints();
    Eigen::VectorXd ld;
    Eigen::MatrixXd y = cgflowtest::applied(*layer, Direction::Forward, x, nullptr, ld);
    EXPECT_LT((y - x).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT(ld.cwiseAbs().maxCoeff(), 1e-12);
}

TEST(SplineCoupling, ElementwiseFreeParameters) {
    SplineOptions spline;
    spline.numBins = 5;
    spline.bound = 4.0;
    auto layer = SplineCoupling::elementwise({false, true, false}, spline);
    EXPECT_FALSE(layer->hasConditioner());
    EXPECT_EQ(layer->getNumParameters(), static_cast<size_t>(2 * 14 + 15));
    cgflowtest::randomizeParameters(*layer, 0.8, 4);
    Eigen::MatrixXd x(3, 3);
    x << 0.5, -3.9, 5.0, 2.0, -1.0, 3.0, -0.2, 0.0, 1.1;
    EXPECT_LT(maxRoundTripError(*layer, Direction::Forward, x, nullptr), 1e-10);
    expectLogDetMatchesJacobian(*layer, x, nullptr);
    for (Direction d : {Direction::Forward, Direction::Inverse})
        EXPECT_LT(cgflowtest::maxGradientError(*layer, d, x, nullptr, 8), 1e-6);
}

TEST(SplineCoupling, ConditionalElementwiseFollowsContext) {
    SplineOptions spline;
    auto layer = SplineCoupling::elementwise({false}, spline, 2, 8, 1);
    EXPECT_TRUE(layer->hasConditioner());
    cgflowtest::randomizeParameters(*layer, 0.5, 9);
    Eigen::MatrixXd x = Eigen::MatrixXd::Constant(1, 2, 0.4);
    Eigen::MatrixXd ctx(2, 2);
    ctx << 1.0, -1.0, 0.5, 2.0;
    Eigen::VectorXd ld;
    Eigen::MatrixXd y = cgflowtest::applied(*layer, Direction::Forward, x, &ctx, ld);
    EXPECT_GT(std::abs(y(0, 0) - y(0, 1)), 1e-6); // same input, different contexts
    EXPECT_LT(cgflowtest::maxGradientError(*layer, Direction::Forward, x, &ctx, 3), 1e-6);
}

TEST(SplineCoupling, ConfigRoundTrip) {
    auto layer = makeSpline(2);
    auto rebuilt = SplineCoupling::fromConfig(layer->getConfig(), mixedCircular);
    EXPECT_EQ(rebuilt->getConfig(), layer->getConfig());
    EXPECT_EQ(rebuilt->getNumParameters(), layer->getNumParameters());
}

TEST(SplineCoupling, Errors) {
    CouplingOptions coupling;
    coupling.transformed = {true, false};
    EXPECT_NE(errorMessage([&] { SplineCoupling({false, false, false}, coupling, SplineOptions()); })
                  .find("transformed mask has 2 entries"),
              std::string::npos);
    coupling.transformed = {false, false};
    EXPECT_NE(errorMessage([&] { SplineCoupling({false, false}, coupling, SplineOptions()); }).find("selects no"),
              std::string::npos);
    auto layer = makeSpline(2);
    Eigen::MatrixXd x = smoothPoints();
    Eigen::VectorXd ld = Eigen::VectorXd::Zero(4);
    auto ws = layer->createWorkspace();
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Forward, x, nullptr, ld.data(), *ws, false); })
                  .find("needs a context"),
              std::string::npos);
    Eigen::MatrixXd wrongRows(4, 4);
    Eigen::MatrixXd ctx = Eigen::MatrixXd::Zero(2, 4);
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Forward, wrongRows, &ctx, ld.data(), *ws, false); })
                  .find("expected the dimension 5"),
              std::string::npos);
    Eigen::MatrixXd grad = Eigen::MatrixXd::Zero(5, 4);
    EXPECT_NE(errorMessage([&] { layer->backward(grad, ld.data(), nullptr, nullptr, *ws); }).find("save = true"),
              std::string::npos);
    auto permutation = Permutation::random(mixedCircular, 1);
    auto otherWs = permutation->createWorkspace();
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Forward, x, &ctx, ld.data(), *otherWs, false); })
                  .find("workspace was not created"),
              std::string::npos);
}

TEST(AffineCoupling, InverseLogDetAndGradients) {
    CouplingOptions coupling;
    coupling.transformed = {true, false, true, false};
    coupling.contextFeatureSize = 2;
    coupling.hiddenSize = 6;
    coupling.activation = cgflow::nn::Activation::SiLU;
    AffineCoupling layer({false, true, false, false}, coupling);
    cgflowtest::randomizeParameters(layer, 0.4, 2);
    Eigen::MatrixXd x = cgflowtest::randomMatrix(4, 5, 1.5, 3);
    Eigen::MatrixXd ctx = cgflowtest::randomMatrix(2, 5, 1.0, 4);
    EXPECT_LT(maxRoundTripError(layer, Direction::Forward, x, &ctx), 1e-10);
    EXPECT_LT(maxRoundTripError(layer, Direction::Inverse, x, &ctx), 1e-10);
    expectLogDetMatchesJacobian(layer, x, &ctx);
    for (Direction d : {Direction::Forward, Direction::Inverse})
        EXPECT_LT(cgflowtest::maxGradientError(layer, d, x, &ctx, 5, 3), 1e-6);
}

TEST(AffineCoupling, RejectsCircularTransformedDimensions) {
    CouplingOptions coupling;
    coupling.transformed = {false, true};
    EXPECT_NE(errorMessage([&] { AffineCoupling({false, true}, coupling); }).find("circular dimensions cannot"),
              std::string::npos);
}

TEST(Permutation, InverseGradientAndCircularFlags) {
    Permutation p(mixedCircular, {4, 3, 0, 1, 2});
    EXPECT_EQ(p.getOutputCircular(), (std::vector<bool>{false, true, false, true, false}));
    const Eigen::MatrixXd x = testPoints();
    EXPECT_EQ(maxRoundTripError(p, Direction::Forward, x, nullptr), 0.0);
    Eigen::VectorXd ld;
    Eigen::MatrixXd y = cgflowtest::applied(p, Direction::Forward, x, nullptr, ld);
    EXPECT_EQ(y.row(0), x.row(4));
    EXPECT_EQ(ld.cwiseAbs().maxCoeff(), 0.0);
    for (Direction d : {Direction::Forward, Direction::Inverse})
        EXPECT_LT(cgflowtest::maxGradientError(p, d, smoothPoints(), nullptr, 1), 1e-8);
    EXPECT_NE(errorMessage([] { Permutation({false, false}, {1, 1}); }).find("more than once"), std::string::npos);
    EXPECT_NE(errorMessage([] { Permutation({false, false}, {0, 2}); }).find("outside [0, 2)"), std::string::npos);
    EXPECT_EQ(Permutation::fromConfig(p.getConfig(), mixedCircular)->getPermutation(), p.getPermutation());
}

TEST(CircularShift, WrapsAndInverts) {
    CircularShift shift(mixedCircular, {0.0, 2.0, 0.0, -4.0, 0.0});
    const Eigen::MatrixXd x = testPoints();
    EXPECT_LT(maxRoundTripError(shift, Direction::Forward, x, nullptr), 1e-12);
    Eigen::VectorXd ld;
    Eigen::MatrixXd y = cgflowtest::applied(shift, Direction::Forward, x, nullptr, ld);
    EXPECT_LE(y.row(1).maxCoeff(), Pi);
    EXPECT_GE(y.row(1).minCoeff(), -Pi);
    EXPECT_NEAR(cgflowtest::dimDifference(y(1, 0), 3.0, true), 0.0, 1e-14);
    EXPECT_EQ(y.row(0), x.row(0));
    for (Direction d : {Direction::Forward, Direction::Inverse})
        EXPECT_LT(cgflowtest::maxGradientError(shift, d, smoothPoints(), nullptr, 1), 1e-8);
    EXPECT_NE(errorMessage([] { CircularShift({false, true}, {0.5, 0.0}); }).find("not circular"), std::string::npos);
    auto random = CircularShift::random(mixedCircular, 7);
    for (int d : {1, 3}) {
        EXPECT_GE(random->getShifts()[d], 0.5 * Pi);
        EXPECT_LE(random->getShifts()[d], 1.5 * Pi);
    }
    EXPECT_EQ(random->getShifts()[0], 0.0);
}
