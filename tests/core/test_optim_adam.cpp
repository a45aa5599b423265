#include "cgflow/Error.h"
#include "cgflow/optim/Adam.h"
#include "cgflow/optim/LearningRateSchedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::optim::Adam;
using cgflow::optim::AdamOptions;
using cgflow::optim::AdamState;
using cgflow::optim::AdamW;

namespace {

AdamOptions handOptions(double weightDecay = 0.0) {
    AdamOptions options;
    options.learningRate = 0.1;
    options.beta1 = 0.9;
    options.beta2 = 0.999;
    options.epsilon = 1e-8;
    options.weightDecay = weightDecay;
    return options;
}

// Two steps from theta = (1, -2) with g1 = (0.5, -1), g2 = (-0.25, 2). Expected values worked out
// from Kingma & Ba's algorithm in 40-digit decimal arithmetic, e.g. step 1 of theta_0:
// m-hat = g = 0.5, v-hat = 0.25, theta = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.9 + 2e-9.
void runTwoHandSteps(Adam& adam, const std::vector<double>& expected1, const std::vector<double>& expected2) {
    std::vector<double> theta = {1.0, -2.0};
    adam.step(theta, {0.5, -1.0});
    EXPECT_NEAR(theta[0], expected1[0], 1e-15);
    EXPECT_NEAR(theta[1], expected1[1], 1e-15);
    adam.step(theta, {-0.25, 2.0});
    EXPECT_NEAR(theta[0], expected2[0], 2e-15);
    EXPECT_NEAR(theta[1], expected2[1], 2e-15);
    EXPECT_EQ(adam.getStepCount(), 2);
}

// f = 1/2 sum a_i (x_i - c_i)^2 and its gradient.
struct Quadratic {
    std::vector<double> a = {1.0, 10.0, 100.0, 0.1};
    std::vector<double> c = {1.0, -2.0, 0.5, 3.0};
    void gradient(const std::vector<double>& x, std::vector<double>& g) const {
        for (size_t i = 0; i < x.size(); i++)
            g[i] = a[i] * (x[i] - c[i]);
    }
};

} // namespace

TEST(Adam, FirstTwoStepsMatchHandComputation) {
    Adam adam(2, handOptions());
    runTwoHandSteps(adam, {0.90000000199999997, -1.900000001}, {0.87336629870784621, -1.9366103534720751});
}

TEST(Adam, L2WeightDecayEntersTheGradient) {
    // g <- g + 0.1 theta before the moments: step 1 sees g = (0.6, -1.2).
    Adam adam(2, handOptions(0.1));
    EXPECT_FALSE(adam.isDecoupledWeightDecay());
    runTwoHandSteps(adam, {0.9000000016666666, -1.9000000008333333}, {0.85444136746176225, -1.925017878464325});
}

TEST(AdamW, FirstTwoStepsMatchHandComputation) {
    // theta <- theta (1 - 0.1 * 0.1) and then the plain Adam step: 0.99 - 0.1 (1 - 2e-8) = 0.89 + 2e-9.
    AdamW adamw(2, handOptions(0.1));
    EXPECT_TRUE(adamw.isDecoupledWeightDecay());
    runTwoHandSteps(adamw, {0.89000000199999996, -1.880000001}, {0.85446629868784618, -1.8978103534620752});
}

TEST(AdamW, ZeroGradientsShrinkParametersByLrTimesDecayExactly) {
    AdamOptions options = handOptions(0.05);
    options.learningRate = 0.01;
    AdamW adamw(3, options);
    std::vector<double> theta = {1.0, -7.5, 1e-3};
    std::vector<double> expected = theta;
    const std::vector<double> zero(3, 0.0);
    for (int step = 0; step < 20; step++) {
        adamw.step(theta, zero);
        for (double& e : expected)
            e *= 1.0 - 0.01 * 0.05;
        for (size_t i = 0; i < theta.size(); i++)
            EXPECT_EQ(theta[i], expected[i]) << "step " << step << " entry " << i;
    }
}

TEST(Adam, L2DecayWithZeroGradientsIsNotAProportionalShrink) {
    // The decay term passes through the adaptive normalization: the first step moves every weight
    // by ~lr whatever its size, where AdamW would shrink each by the same factor.
    AdamOptions options = handOptions(0.05);
    options.learningRate = 0.01;
    Adam adam(2, options);
    std::vector<double> theta = {1.0, 10.0};
    adam.step(theta, {0.0, 0.0});
    EXPECT_NEAR(theta[0], 1.0 - 0.01, 1e-8);
    EXPECT_NEAR(theta[1], 10.0 - 0.01, 1e-8);
    EXPECT_GT(std::abs(theta[1] / 10.0 - theta[0] / 1.0), 1e-4);
}

TEST(Adam, ConvergesOnAnIllConditionedQuadratic) {
    Quadratic f;
    AdamOptions options;
    options.learningRate = 0.1;
    Adam adam(4, options);
    adam.setSchedule(std::make_shared<cgflow::optim::CosineDecaySchedule>(0.1, 3000, 1e-5));
    std::vector<double> x(4, 0.0), g(4);
    for (int step = 0; step < 3000; step++) {
        f.gradient(x, g);
        adam.step(x, g);
    }
    for (size_t i = 0; i < x.size(); i++)
        EXPECT_NEAR(x[i], f.c[i], 1e-3) << "coordinate " << i;
}

TEST(AdamW, ReachesTheRosenbrockMinimum) {
    // f = (1 - x)^2 + 100 (y - x^2)^2 from the classic start (-1.2, 1): a curved valley Adam must
    // follow. The small decoupled decay pulls the optimum toward 0 by far less than the bound.
    AdamOptions options;
    options.weightDecay = 1e-4;
    AdamW adamw(2, options);
    adamw.setSchedule(cgflow::optim::makeWarmupCosineSchedule(0.02, 100, 10000, 1e-5));
    std::vector<double> p = {-1.2, 1.0}, g(2);
    for (int step = 0; step < 10000; step++) {
        const double x = p[0], y = p[1];
        g[0] = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
        g[1] = 200.0 * (y - x * x);
        adamw.step(p, g);
    }
    EXPECT_NEAR(p[0], 1.0, 2e-3);
    EXPECT_NEAR(p[1], 1.0, 4e-3);
}

TEST(Adam, TakesEachStepsLearningRateFromTheSchedule) {
    Adam adam(1);
    adam.setSchedule(std::make_shared<cgflow::optim::LinearWarmupSchedule>(4, 0.4));
    std::vector<double> theta = {0.0};
    EXPECT_DOUBLE_EQ(adam.getLearningRate(), 0.0);
    adam.step(theta, {1.0});
    EXPECT_EQ(theta[0], 0.0); // lr 0 at step 0: moments only
    EXPECT_DOUBLE_EQ(adam.getLearningRate(), 0.1);
    adam.step(theta, {1.0});
    // m-hat = v-hat^(1/2) = 1 for a constant gradient, so the step is the learning rate (to epsilon).
    EXPECT_NEAR(theta[0], -0.1, 1e-8);
    adam.setLearningRate(0.25);
    EXPECT_EQ(adam.getLearningRate(), 0.25);
    EXPECT_EQ(adam.getOptions().learningRate, 0.25);
}

TEST(Adam, StateRoundTripGivesIdenticalSubsequentSteps) {
    Quadratic f;
    AdamW first(4, handOptions(0.01));
    std::vector<double> x(4, 0.0), g(4);
    for (int step = 0; step < 7; step++) {
        f.gradient(x, g);
        first.step(x, g);
    }
    AdamState saved = first.getState();
    EXPECT_EQ(saved.stepCount, 7);
    ASSERT_EQ(saved.firstMoment.size(), 4u);
    std::vector<double> xResumed = x;

    AdamW second(4, handOptions(0.01));
    second.setState(saved);
    for (int step = 0; step < 5; step++) {
        f.gradient(x, g);
        first.step(x, g);
        f.gradient(xResumed, g);
        second.step(xResumed, g);
    }
    for (size_t i = 0; i < x.size(); i++)
        EXPECT_EQ(x[i], xResumed[i]);
    EXPECT_EQ(second.getStepCount(), 12);
    AdamState after1 = first.getState(), after2 = second.getState();
    EXPECT_EQ(after1.firstMoment, after2.firstMoment);
    EXPECT_EQ(after1.secondMoment, after2.secondMoment);

    second.reset();
    EXPECT_EQ(second.getStepCount(), 0);
    EXPECT_EQ(second.getState().firstMoment, std::vector<double>(4, 0.0));
}

TEST(Adam, RejectsBadOptionsStatesAndGradients) {
    auto withField = [](auto set) {
        AdamOptions options;
        set(options);
        return options;
    };
    EXPECT_THROW(Adam(2, withField([](AdamOptions& o) { o.learningRate = -1.0; })), Error);
    EXPECT_THROW(Adam(2, withField([](AdamOptions& o) { o.beta1 = 1.0; })), Error);
    EXPECT_THROW(Adam(2, withField([](AdamOptions& o) { o.beta2 = -0.1; })), Error);
    EXPECT_THROW(Adam(2, withField([](AdamOptions& o) { o.epsilon = 0.0; })), Error);
    EXPECT_THROW(AdamW(2, withField([](AdamOptions& o) { o.weightDecay = std::nan(""); })), Error);
    try {
        Adam(2, withField([](AdamOptions& o) { o.beta2 = 1.5; }));
        FAIL() << "no Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("beta2"), std::string::npos) << e.what();
    }

    Adam adam(2);
    std::vector<double> theta = {1.0, 2.0};
    EXPECT_THROW(adam.step(theta, {1.0}), Error);
    EXPECT_THROW(adam.step(theta, {1.0, std::numeric_limits<double>::infinity()}), Error);
    EXPECT_THROW(adam.step(theta, {std::nan(""), 1.0}), Error);
    EXPECT_EQ(theta, (std::vector<double>{1.0, 2.0})); // nothing changed
    EXPECT_EQ(adam.getStepCount(), 0);
    EXPECT_THROW(adam.setSchedule(nullptr), Error);

    AdamState bad = adam.getState();
    bad.secondMoment.push_back(0.0);
    EXPECT_THROW(adam.setState(bad), Error);
    bad = adam.getState();
    bad.secondMoment[1] = -1.0;
    EXPECT_THROW(adam.setState(bad), Error);
    bad = adam.getState();
    bad.stepCount = -3;
    EXPECT_THROW(adam.setState(bad), Error);
}
