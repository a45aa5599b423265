// The continuous normalizing flow (flows::ContinuousFlow), its Dormand-Prince integrator and flow
// matching: the ODE solver against closed forms, the exact divergence against finite differences of
// the vector field, the whole map's log|det J| against finite-difference Jacobians, a Gaussian-to-
// Gaussian flow against its known density, normalization by quadrature on the line and the circle,
// the flow-matching gradient against finite differences, the OT assignment against brute force, and
// a statistical test that flow matching learns a known density.
#include "CoreTestUtils.h"
#include "FlowTestUtils.h"

#include "cgflow/Error.h"
#include "cgflow/flows/ContinuousFlow.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/flows/OdeIntegrator.h"
#include "cgflow/train/FlowMatching.h"
#include "cgflow/train/ModelTrainer.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

using namespace cgflow;
using namespace cgflow::flows;
using cgflowtest::errorMessage;
using cgflowtest::randomMatrix;

namespace {

ContinuousFlowOptions smallOptions(std::vector<int> hidden, int timeEmbedding, double tolerance) {
    ContinuousFlowOptions options;
    options.hidden = std::move(hidden);
    options.timeEmbedding = timeEmbedding;
    options.ode.absoluteTolerance = tolerance;
    options.ode.relativeTolerance = tolerance;
    return options;
}

std::unique_ptr<ContinuousFlow> randomField(std::vector<bool> circular, std::vector<int> hidden, double tolerance,
                                            uint64_t seed, double scale = 0.4) {
    auto flow = std::make_unique<ContinuousFlow>(std::move(circular), smallOptions(std::move(hidden), 4, tolerance));
    cgflowtest::randomizeParameters(*flow, scale, seed);
    return flow;
}

} // namespace

TEST(OdeIntegrator, MatchesClosedFormsInBothDirections) {
    // dy/dt = -y + cos(t), y(0) = y0: y(t) = (y0 - 1/2) e^-t + (cos t + sin t) / 2.
    auto f = [](const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& y,
                Eigen::Ref<Eigen::MatrixXd> dydt) {
        for (Eigen::Index i = 0; i < y.cols(); i++)
            dydt(0, i) = -y(0, i) + std::cos(t[i]);
    };
    auto exact = [](double y0, double t) { return (y0 - 0.5) * std::exp(-t) + 0.5 * (std::cos(t) + std::sin(t)); };
    Eigen::MatrixXd y(1, 3);
    y << -1.0, 0.3, 2.0;
    const Eigen::MatrixXd y0 = y;
    OdeOptions options;
    options.absoluteTolerance = options.relativeTolerance = 1e-10;
    OdeWorkspace ws;
    OdeStatistics stats;
    integrateDormandPrince(f, y, 0.0, 2.0, options, ws, &stats);
    for (int i = 0; i < 3; i++)
        EXPECT_NEAR(y(0, i), exact(y0(0, i), 2.0), 1e-8);
    EXPECT_EQ(stats.samples, 3);
    EXPECT_EQ(stats.failed, 0);
    // FSAL: one evaluation to start, then six per step, accepted or rejected.
    EXPECT_EQ(stats.evaluations, 3 + 6 * (stats.accepted + stats.rejected));
    // Back from t = 2 to 0 recovers the start.
    integrateDormandPrince(f, y, 2.0, 0.0, options, ws);
    for (int i = 0; i < 3; i++)
        EXPECT_NEAR(y(0, i), y0(0, i), 1e-8);
    // Looser tolerances: fewer steps, error still within a few tolerances.
    Eigen::MatrixXd loose = y0;
    OdeStatistics looseStats;
    integrateDormandPrince(f, loose, 0.0, 2.0, OdeOptions(), ws, &looseStats);
    EXPECT_LT(looseStats.evaluations, stats.evaluations);
    for (int i = 0; i < 3; i++)
        EXPECT_NEAR(loose(0, i), exact(y0(0, i), 2.0), 1e-3);
}

TEST(OdeIntegrator, EachSampleStepsOnItsOwn) {
    // dy/dt = a y with a per-sample rate taken from a second, constant component: a stiff sample must
    // not change the result of a mild one integrated in the same batch.
    auto f = [](const Eigen::Ref<const Eigen::VectorXd>&, const Eigen::Ref<const Eigen::MatrixXd>& y,
                Eigen::Ref<Eigen::MatrixXd> dydt) {
        dydt.row(0) = y.row(0).cwiseProduct(y.row(1));
        dydt.row(1).setZero();
    };
    Eigen::MatrixXd alone(2, 1), together(2, 2);
    alone << 1.0, 0.5;
    together << 1.0, 1.0, 0.5, 8.0;
    OdeWorkspace ws;
    OdeStatistics a, b;
    integrateDormandPrince(f, alone, 0.0, 1.0, OdeOptions(), ws, &a);
    integrateDormandPrince(f, together, 0.0, 1.0, OdeOptions(), ws, &b);
    EXPECT_EQ(alone(0, 0), together(0, 0));
    EXPECT_GT(b.evaluations, 2 * a.evaluations);
    EXPECT_NEAR(together(0, 1), std::exp(8.0), 1e-3 * std::exp(8.0));
}

TEST(OdeIntegrator, GivesUpOnNonFiniteFieldsAndReportsThem) {
    auto f = [](const Eigen::Ref<const Eigen::VectorXd>& t, const Eigen::Ref<const Eigen::MatrixXd>& y,
                Eigen::Ref<Eigen::MatrixXd> dydt) {
        for (Eigen::Index i = 0; i < y.cols(); i++)
            dydt(0, i) = y(0, i) < 0 && t[i] > 0.5 ? std::nan("") : 1.0;
    };
    Eigen::MatrixXd y(1, 2);
    y << -3.0, 1.0;
    OdeOptions options;
    options.maxSteps = 200;
    OdeWorkspace ws;
    OdeStatistics stats;
    integrateDormandPrince(f, y, 0.0, 1.0, options, ws, &stats);
    EXPECT_TRUE(std::isnan(y(0, 0)));
    EXPECT_NEAR(y(0, 1), 2.0, 1e-12);
    EXPECT_EQ(stats.failed, 1);
    OdeOptions bad;
    bad.absoluteTolerance = 0;
    EXPECT_NE(errorMessage([&] { integrateDormandPrince(f, y, 0.0, 1.0, bad, ws); }).find("atol"), std::string::npos);
}

TEST(ContinuousFlow, DivergenceIsTheTraceOfTheFiniteDifferenceJacobian) {
    for (nn::Precision precision : {nn::Precision::Float64, nn::Precision::Mixed}) {
        auto flowOwner = randomField({false, true, false}, {12, 10}, 1e-6, 3, 0.6);
        ContinuousFlow& flow = *flowOwner;
        flow.setPrecision(precision);
        ContinuousFlowWorkspace ws;
        const Eigen::MatrixXd x = randomMatrix(3, 5, 1.0, 11);
        const Eigen::VectorXd t = (Eigen::VectorXd(5) << 0.0, 0.2, 0.5, 0.77, 1.0).finished();
        Eigen::MatrixXd v(3, 5);
        Eigen::VectorXd divergence(5);
        flow.velocity(t, x, v, divergence.data(), ws);
        const double h = 1e-5;
        auto referenceOwner = randomField({false, true, false}, {12, 10}, 1e-6, 3, 0.6);
        ContinuousFlow& reference = *referenceOwner;
        for (int i = 0; i < 5; i++) {
            double trace = 0;
            for (int j = 0; j < 3; j++) {
                Eigen::MatrixXd plus = x.col(i), minus = x.col(i);
                plus(j, 0) += h;
                minus(j, 0) -= h;
                Eigen::MatrixXd vp(3, 1), vm(3, 1);
                reference.velocity(t.segment(i, 1), plus, vp, nullptr, ws);
                reference.velocity(t.segment(i, 1), minus, vm, nullptr, ws);
                trace += (vp(j, 0) - vm(j, 0)) / (2 * h);
            }
            const double tolerance = precision == nn::Precision::Float64 ? 1e-7 : 1e-4;
            EXPECT_NEAR(divergence[i], trace, tolerance * std::max(1.0, std::abs(trace))) << "sample " << i;
        }
    }
}

TEST(ContinuousFlow, LogDetMatchesFiniteDifferenceJacobianOfTheWholeMap) {
    auto flowOwner = randomField({false, true, false}, {16, 16}, 1e-10, 5, 0.5);
    ContinuousFlow& flow = *flowOwner;
    const Eigen::MatrixXd z = randomMatrix(3, 4, 0.7, 21);
    for (Direction direction : {Direction::Forward, Direction::Inverse}) {
        Eigen::VectorXd logDet;
        cgflowtest::applied(flow, direction, z, nullptr, logDet);
        const Eigen::VectorXd numeric = cgflowtest::finiteDifferenceLogDet(flow, direction, z, nullptr, 1e-5);
        for (int i = 0; i < 4; i++)
            EXPECT_NEAR(logDet[i], numeric[i], 2e-6) << "sample " << i;
    }
}

TEST(ContinuousFlow, InverseUndoesForwardAndLogDetsCancel) {
    auto flowOwner = randomField({true, false}, {16}, 1e-9, 8, 0.8);
    ContinuousFlow& flow = *flowOwner;
    const Eigen::MatrixXd z = randomMatrix(2, 20, 1.0, 4).unaryExpr([](double v) { return std::tanh(v) * 3.0; });
    Eigen::VectorXd forwardLogDet, inverseLogDet;
    const Eigen::MatrixXd x = cgflowtest::applied(flow, Direction::Forward, z, nullptr, forwardLogDet);
    const Eigen::MatrixXd back = cgflowtest::applied(flow, Direction::Inverse, x, nullptr, inverseLogDet);
    for (int i = 0; i < 20; i++) {
        EXPECT_NEAR(cgflowtest::dimDifference(back(0, i), z(0, i), true), 0.0, 1e-7);
        EXPECT_NEAR(back(1, i), z(1, i), 1e-7);
        EXPECT_NEAR(forwardLogDet[i] + inverseLogDet[i], 0.0, 1e-7);
        EXPECT_LE(std::abs(x(0, i)), M_PI); // circular outputs are wrapped
    }
}

TEST(ContinuousFlow, LinearFieldMapsAGaussianToTheKnownGaussian) {
    // No hidden layer and no time embedding: v = A x + b, so x(1) = e^A z + A^-1 (e^A - I) b and
    // log q(x) = log N(z) - tr A exactly.
    ContinuousFlowOptions options = smallOptions({}, 0, 1e-10);
    std::vector<std::unique_ptr<Bijection>> layers;
    layers.push_back(std::make_unique<ContinuousFlow>(std::vector<bool>{false, false}, options));
    Flow flow(BaseDensity(std::vector<BaseKind>{BaseKind::StandardNormal, BaseKind::StandardNormal}), std::move(layers));
    Eigen::Matrix2d A;
    A << 0.3, -0.5, 0.2, -0.4;
    const Eigen::Vector2d b(0.7, -0.2);
    flow.setParameters(std::vector<double>{A(0, 0), A(0, 1), A(1, 0), A(1, 1), b[0], b[1]});
    Eigen::Matrix2d expA = Eigen::Matrix2d::Identity(), term = Eigen::Matrix2d::Identity();
    for (int k = 1; k < 30; k++) {
        term = term * A / k;
        expA += term;
    }
    const Eigen::Vector2d shift = A.inverse() * (expA - Eigen::Matrix2d::Identity()) * b;
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    flow.sample(50, 7, nullptr, x, logQ);
    const Eigen::Matrix2d inverse = expA.inverse();
    for (int i = 0; i < 50; i++) {
        const Eigen::Vector2d zi = inverse * (x.col(i) - shift);
        const double exact = -std::log(2 * M_PI) - 0.5 * zi.squaredNorm() - A.trace();
        EXPECT_NEAR(logQ[i], exact, 1e-8);
    }
    Eigen::VectorXd logQBack;
    flow.logProb(x, nullptr, logQBack);
    EXPECT_LT((logQBack - logQ).cwiseAbs().maxCoeff(), 1e-8);
}

TEST(ContinuousFlow, DensityIntegratesToOneOnTheLineAndOnTheCircle) {
    for (bool circular : {false, true}) {
        std::vector<std::unique_ptr<Bijection>> layers;
        auto layer = std::make_unique<ContinuousFlow>(std::vector<bool>{circular}, smallOptions({8, 8}, 4, 1e-9));
        cgflowtest::randomizeParameters(*layer, 0.7, circular ? 3 : 4);
        layers.push_back(std::move(layer));
        Flow flow(BaseDensity(std::vector<BaseKind>{circular ? BaseKind::UniformCircle : BaseKind::StandardNormal}), std::move(layers));
        const double lo = circular ? -M_PI : -40.0, hi = circular ? M_PI : 40.0;
        const int points = circular ? 2000 : 16000;
        Eigen::MatrixXd grid(1, points);
        for (int k = 0; k < points; k++)
            grid(0, k) = lo + (k + 0.5) * (hi - lo) / points;
        Eigen::VectorXd logQ;
        flow.logProb(grid, nullptr, logQ);
        const double integral = logQ.array().exp().sum() * (hi - lo) / points;
        EXPECT_NEAR(integral, 1.0, 1e-4) << (circular ? "circle" : "line");
    }
}

TEST(ContinuousFlow, FlowMatchingGradientMatchesFiniteDifferences) {
    auto flowOwner = randomField({false, true}, {7, 5}, 1e-6, 9, 0.5);
    ContinuousFlow& flow = *flowOwner;
    ContinuousFlowWorkspace ws;
    const Eigen::MatrixXd x = randomMatrix(2, 6, 1.0, 2), target = randomMatrix(2, 6, 1.0, 3);
    const Eigen::VectorXd t = (Eigen::VectorXd(6) << 0.1, 0.3, 0.5, 0.6, 0.8, 0.95).finished();
    std::vector<double> gradient(flow.getNumParameters(), 0.0), parameters(flow.getNumParameters());
    const double loss = flow.flowMatchingLoss(t, x, target, 0.5, gradient.data(), ws);
    flow.getParameters(parameters.data());
    Eigen::MatrixXd v(2, 6);
    flow.velocity(t, x, v, nullptr, ws);
    EXPECT_NEAR(loss, (v - target).squaredNorm(), 1e-12);
    const double h = 1e-6;
    for (size_t p = 0; p < parameters.size(); p += 3) {
        std::vector<double> shifted = parameters;
        shifted[p] += h;
        flow.setParameters(shifted.data());
        const double up = flow.flowMatchingLoss(t, x, target, 0.0, nullptr, ws);
        shifted[p] -= 2 * h;
        flow.setParameters(shifted.data());
        const double down = flow.flowMatchingLoss(t, x, target, 0.0, nullptr, ws);
        EXPECT_NEAR(gradient[p], 0.5 * (up - down) / (2 * h), 1e-6) << "parameter " << p;
    }
}

TEST(FlowMatching, AssignmentIsTheBruteForceOptimum) {
    for (uint64_t seed = 1; seed <= 5; seed++) {
        const Eigen::MatrixXd cost = randomMatrix(6, 6, 1.0, seed).cwiseAbs();
        const std::vector<int> assignment = train::minimumCostAssignment(cost);
        std::vector<int> permutation(6);
        std::iota(permutation.begin(), permutation.end(), 0);
        double best = 1e300;
        do {
            double total = 0;
            for (int i = 0; i < 6; i++)
                total += cost(i, permutation[i]);
            best = std::min(best, total);
        } while (std::next_permutation(permutation.begin(), permutation.end()));
        double total = 0;
        std::vector<int> sorted = assignment;
        std::sort(sorted.begin(), sorted.end());
        for (int i = 0; i < 6; i++) {
            total += cost(i, assignment[i]);
            EXPECT_EQ(sorted[i], i);
        }
        EXPECT_NEAR(total, best, 1e-12);
    }
    EXPECT_NE(errorMessage([] { train::minimumCostAssignment(Eigen::MatrixXd::Zero(2, 3)); }).find("square"),
              std::string::npos);
}

TEST(FlowMatching, TargetsFollowTheShortestArcOnCircularDimensions) {
    Eigen::MatrixXd x0(2, 1), x1(2, 1), xt, u;
    x0 << 3.0, 3.0;
    x1 << -3.0, -3.0;
    const Eigen::VectorXd t = Eigen::VectorXd::Constant(1, 0.5);
    train::flowMatchingTargets(x0, x1, t, {true, false}, xt, u);
    EXPECT_NEAR(u(0, 0), 2 * M_PI - 6.0, 1e-12);    // across +-pi, not through 0
    EXPECT_NEAR(std::abs(xt(0, 0)), M_PI, 1e-9);
    EXPECT_NEAR(u(1, 0), -6.0, 1e-12);
    EXPECT_NEAR(xt(1, 0), 0.0, 1e-12);
}

TEST(FlowMatching, LearnsAKnownGaussianDensity) {
    // Data N(mu, diag(s^2)) in 2-D: after flow matching, the model's log q on held-out data should be
    // close to the exact log-density (mean difference = KL(p || q) >= 0, small), with and without OT.
    const Eigen::Vector2d mu(1.5, -0.5), s(0.5, 1.5);
    auto data = [&](int n, uint64_t seed) {
        Eigen::MatrixXd x = randomMatrix(2, n, 1.0, seed);
        for (int i = 0; i < n; i++)
            x.col(i) = mu + s.cwiseProduct(Eigen::Vector2d(x.col(i)));
        return x;
    };
    const Eigen::MatrixXd test = data(400, 999);
    Eigen::VectorXd exact(400);
    for (int i = 0; i < 400; i++) {
        const Eigen::Vector2d zi = (Eigen::Vector2d(test.col(i)) - mu).cwiseQuotient(s);
        exact[i] = -std::log(2 * M_PI) - std::log(s[0] * s[1]) - 0.5 * zi.squaredNorm();
    }
    for (bool optimalTransport : {false, true}) {
        auto flow = buildFlow({{"dimension", 2}, {"coupling", "continuous"}, {"hidden", 32}, {"num_layers", 2},
                               {"atol", 1e-5}, {"rtol", 1e-5}, {"seed", 1}, {"num_threads", 2}});
        train::ModelTrainerOptions options;
        options.decoupledWeightDecay = true;
        options.adam.learningRate = 3e-3;
        options.cosineSteps = 1500;
        options.finalLearningRate = 1e-4;
        train::ModelTrainer trainer(*flow, options);
        for (int step = 0; step < 1500; step++)
            trainer.flowMatchingStep(data(128, 10000 + step), 500 + step, optimalTransport);
        Eigen::VectorXd logQ;
        flow->logProb(test, nullptr, logQ);
        const double kl = (exact - logQ).mean();
        EXPECT_LT(std::abs(kl), 0.05) << (optimalTransport ? "OT" : "independent") << " coupling";
        EXPECT_GT(kl, -0.05);
    }
}

TEST(ContinuousFlow, ConfigRoundTripsAndBadInputIsRefused) {
    auto flow = buildFlow({{"dimension", 3}, {"circular", {1}}, {"coupling", "continuous"}, {"hidden", 8},
                           {"num_layers", 2}, {"time_embedding", 6}, {"atol", 1e-3}, {"seed", 4}});
    ASSERT_EQ(flow->getNumLayers(), 1);
    const nlohmann::json config = flow->getConfig();
    EXPECT_EQ(config["layers"][0]["type"], "continuous_flow");
    EXPECT_EQ(config["layers"][0]["hidden"], nlohmann::json({8, 8}));
    auto rebuilt = buildFlow(config);
    rebuilt->setParameters(flow->getParameters());
    Eigen::MatrixXd a, b;
    Eigen::VectorXd la, lb;
    flow->sample(5, 3, nullptr, a, la);
    rebuilt->sample(5, 3, nullptr, b, lb);
    EXPECT_EQ((a - b).norm(), 0.0);
    EXPECT_EQ((la - lb).norm(), 0.0);

    auto message = [](const nlohmann::json& c) { return errorMessage([&] { buildFlow(c); }); };
    EXPECT_NE(message({{"dimension", 2}, {"coupling", "continuous"}, {"activation", "relu"}}).find("relu"),
              std::string::npos);
    EXPECT_NE(message({{"dimension", 2}, {"coupling", "continuous"}, {"num_bins", 4}}).find("num_bins"),
              std::string::npos);
    EXPECT_NE(message({{"dimension", 2}, {"coupling", "continuous"}, {"time_embedding", 3}}).find("time_embedding"),
              std::string::npos);
    EXPECT_NE(message({{"dimension", 2}, {"coupling", "continuous"}, {"rtol", -1}}).find("rtol"), std::string::npos);
    EXPECT_NE(message({{"dimension", 2}, {"coupling", "spline"}, {"atol", 1e-3}}).find("atol"), std::string::npos);
    EXPECT_NE(message({{"dimension", 2}, {"context_dimension", 1}, {"coupling", "continuous"}}).find("context"),
              std::string::npos);
    nlohmann::json unknown = config;
    unknown["layers"][0]["width"] = 3;
    EXPECT_NE(message(unknown).find("width"), std::string::npos);

    // Not differentiable through the solver: the KL trainers say how to train it instead.
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    flow->sample(4, 1, nullptr, x, logQ, true);
    std::vector<double> gradient(flow->getNumParameters(), 0.0);
    EXPECT_NE(errorMessage([&] {
                  flow->backwardSample(Eigen::MatrixXd::Zero(3, 4), Eigen::VectorXd::Zero(4), gradient.data());
              }).find("flow matching"),
              std::string::npos);
    auto coupling = buildFlow({{"dimension", 2}, {"num_layers", 2}, {"hidden", 4}});
    train::ModelTrainer trainer(*coupling);
    EXPECT_NE(errorMessage([&] { trainer.flowMatchingStep(Eigen::MatrixXd::Zero(2, 4), 0); }).find("continuous_flow"),
              std::string::npos);
}

TEST(ContinuousFlow, ThreadsAndPrecisionAgree) {
    auto config = nlohmann::json{{"dimension", 4}, {"circular", {0, 2}}, {"coupling", "continuous"}, {"hidden", 16},
                                 {"num_layers", 2}, {"seed", 2}, {"num_threads", 1}};
    auto one = buildFlow(config);
    config["num_threads"] = 2;
    auto two = buildFlow(config);
    Eigen::VectorXd p = randomMatrix(static_cast<int>(one->getNumParameters()), 1, 0.3, 5);
    one->setParameters(std::vector<double>(p.data(), p.data() + p.size()));
    two->setParameters(std::vector<double>(p.data(), p.data() + p.size()));
    Eigen::MatrixXd a, b;
    Eigen::VectorXd la, lb;
    one->sample(300, 9, nullptr, a, la);
    two->sample(300, 9, nullptr, b, lb);
    EXPECT_LT((a - b).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((la - lb).cwiseAbs().maxCoeff(), 1e-12);
    two->setPrecision(nn::Precision::Mixed);
    two->sample(300, 9, nullptr, b, lb);
    EXPECT_LT((la - lb).cwiseAbs().maxCoeff(), 1e-3);
    EXPECT_GT((la - lb).cwiseAbs().maxCoeff(), 0.0);
    const auto& layer = dynamic_cast<const ContinuousFlow&>(one->getLayer(0));
    const OdeStatistics stats = layer.getStatistics();
    EXPECT_EQ(stats.samples, 300);
    EXPECT_EQ(stats.failed, 0);
    EXPECT_EQ(stats.evaluations, 300 + 6 * (stats.accepted + stats.rejected));
}
