#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/flows/AtomPermutation.h"
#include "cgflow/flows/RightStochasticLinear.h"

#include <Eigen/Geometry>
#include <Eigen/LU>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::flows::AtomPermutation;
using cgflow::flows::BijectionWorkspace;
using cgflow::flows::Direction;
using cgflow::flows::RightStochasticLinear;
using cgflow::flows::RightStochasticOptions;
using cgflowtest::errorMessage;

namespace {

Eigen::MatrixXd randomMatrix(Eigen::Index rows, Eigen::Index cols, uint64_t seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, scale);
    Eigen::MatrixXd m(rows, cols);
    for (Eigen::Index j = 0; j < cols; j++)
        for (Eigen::Index i = 0; i < rows; i++)
            m(i, j) = normal(rng);
    return m;
}

// Random logits with a boosted diagonal: a generic right-stochastic A, far from the identity but
// comfortably invertible.
std::unique_ptr<RightStochasticLinear> randomLayer(int M, uint64_t seed, int k = 3) {
    RightStochasticOptions options;
    options.componentsPerAtom = k;
    auto layer = RightStochasticLinear::create(M, options);
    Eigen::MatrixXd logits = randomMatrix(M, M, seed, 0.8);
    logits.diagonal().array() += 1.5;
    layer->setLogits(logits);
    return layer;
}

// Applies the layer to a copy of data; returns the output and fills logDet (starting from zero).
Eigen::MatrixXd applied(const RightStochasticLinear& layer, Direction direction, const Eigen::MatrixXd& data,
                        Eigen::VectorXd& logDet) {
    auto ws = layer.createWorkspace();
    Eigen::MatrixXd out = data;
    logDet = Eigen::VectorXd::Zero(data.cols());
    layer.apply(direction, out, nullptr, logDet.data(), *ws, false);
    return out;
}

// log|det| of a matrix through its LU factorization.
double logAbsDet(const Eigen::MatrixXd& m) {
    Eigen::PartialPivLU<Eigen::MatrixXd> lu(m);
    return lu.matrixLU().diagonal().array().abs().log().sum();
}

// The atoms of column s as a 3 x M matrix (the layout is atom-major).
Eigen::MatrixXd atomsOf(const Eigen::MatrixXd& data, Eigen::Index s) {
    return Eigen::Map<const Eigen::MatrixXd>(data.col(s).data(), 3, data.rows() / 3);
}

// L = sum(C .* output) + sum_s g_s logDet_s for one direction.
double scalarLoss(const RightStochasticLinear& layer, Direction direction, const Eigen::MatrixXd& data,
                  const Eigen::MatrixXd& C, const Eigen::VectorXd& g) {
    Eigen::VectorXd logDet;
    Eigen::MatrixXd out = applied(layer, direction, data, logDet);
    return (C.array() * out.array()).sum() + g.dot(logDet);
}

} // namespace

TEST(RightStochasticLinear, DefaultInitializationIsNearTheIdentityAndRowStochastic) {
    for (int M : {1, 2, 5, 40}) {
        SCOPED_TRACE("M = " + std::to_string(M));
        auto layer = RightStochasticLinear::create(M);
        EXPECT_EQ(layer->getDimension(), 3 * M);
        EXPECT_EQ(layer->getNumAtoms(), M);
        EXPECT_EQ(layer->getNumParameters(), static_cast<size_t>(M * M));
        const Eigen::MatrixXd& A = layer->getMatrix();
        for (int i = 0; i < M; i++) {
            EXPECT_NEAR(A.row(i).sum(), 1.0, 1e-14);
            EXPECT_NEAR(A(i, i), M == 1 ? 1.0 : 0.9, 1e-14);
        }
        EXPECT_TRUE((A.array() > 0).all());
        EXPECT_EQ(layer->getDeterminantSign(), 1);
        // Eigenvalues 1 and w - b: det = (w - b)^(M - 1) with b = (1 - w) / (M - 1).
        const double b = M > 1 ? 0.1 / (M - 1) : 0.0;
        EXPECT_NEAR(layer->getLogAbsDeterminant(), (M - 1) * std::log(0.9 - b), 1e-12);
        EXPECT_NEAR((A * layer->getInverseMatrix() - Eigen::MatrixXd::Identity(M, M)).norm(), 0.0, 1e-13);
        // initializeParameters without noise gives the same matrix for any seed.
        layer->initializeParameters(123);
        EXPECT_NEAR((layer->getMatrix() - A).norm(), 0.0, 0.0);
    }
}

TEST(RightStochasticLinear, InitialLogitsNoiseAndParameterLayout) {
    const int M = 3;
    RightStochasticOptions options;
    options.initialLogits = randomMatrix(M, M, 5);
    auto layer = RightStochasticLinear::create(M, options);
    EXPECT_EQ((layer->getLogits() - options.initialLogits).norm(), 0.0);
    // Parameters are the logits, row-major.
    std::vector<double> params(layer->getNumParameters());
    layer->getParameters(params.data());
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            EXPECT_EQ(params[i * M + j], options.initialLogits(i, j));
    for (int i = 0; i < M; i++) {
        const Eigen::RowVectorXd e = options.initialLogits.row(i).array().exp();
        EXPECT_NEAR((layer->getMatrix().row(i) - e / e.sum()).norm(), 0.0, 1e-15);
    }
    // Noise: deterministic per seed, bounded, different seeds differ.
    options.initialLogitNoise = 0.3;
    auto noisy = RightStochasticLinear::create(M, options);
    EXPECT_EQ((noisy->getLogits() - options.initialLogits).norm(), 0.0); // the constructor adds none
    noisy->initializeParameters(7);
    Eigen::MatrixXd first = noisy->getLogits();
    noisy->initializeParameters(7);
    EXPECT_EQ((noisy->getLogits() - first).norm(), 0.0);
    EXPECT_LE((first - options.initialLogits).cwiseAbs().maxCoeff(), 0.3);
    EXPECT_GT((first - options.initialLogits).norm(), 0.0);
    noisy->initializeParameters(8);
    EXPECT_GT((noisy->getLogits() - first).norm(), 0.0);
    // The paper's start: as uniform as possible with det A > 0.
    RightStochasticOptions uniform;
    uniform.initialDiagonalWeight = 1.0 / 4 + 0.01;
    auto nearlyUniform = RightStochasticLinear::create(4, uniform);
    EXPECT_EQ(nearlyUniform->getDeterminantSign(), 1);
    EXPECT_NEAR(nearlyUniform->getMatrix()(0, 0), 0.26, 1e-14);
}

TEST(RightStochasticLinear, InverseUndoesForwardAndLogDetsCancel) {
    for (int k : {3, 1}) {
        SCOPED_TRACE("k = " + std::to_string(k));
        const int M = 6, n = 9;
        auto layer = randomLayer(M, 21, k);
        Eigen::MatrixXd X = randomMatrix(k * M, n, 22, 2.0);
        Eigen::VectorXd fwdLogDet, invLogDet;
        Eigen::MatrixXd x = applied(*layer, Direction::Forward, X, fwdLogDet);
        Eigen::MatrixXd back = applied(*layer, Direction::Inverse, x, invLogDet);
        EXPECT_LT((back - X).cwiseAbs().maxCoeff(), 1e-10);
        for (int s = 0; s < n; s++) {
            EXPECT_NEAR(fwdLogDet[s], k * layer->getLogAbsDeterminant(), 1e-13);
            EXPECT_NEAR(fwdLogDet[s] + invLogDet[s], 0.0, 1e-13);
        }
        // And the other way round.
        Eigen::VectorXd unused;
        Eigen::MatrixXd again = applied(*layer, Direction::Forward, applied(*layer, Direction::Inverse, X, unused), unused);
        EXPECT_LT((again - X).cwiseAbs().maxCoeff(), 1e-10);
        // Forward is x_i = sum_j A_ij X_j on each component.
        const Eigen::MatrixXd& A = layer->getMatrix();
        for (int s = 0; s < n; s++)
            for (int i = 0; i < M; i++)
                for (int c = 0; c < k; c++) {
                    double expected = 0;
                    for (int j = 0; j < M; j++)
                        expected += A(i, j) * X(k * j + c, s);
                    EXPECT_NEAR(x(k * i + c, s), expected, 1e-12);
                }
    }
}

TEST(RightStochasticLinear, ApplyAddsToLogDetAndWorksOnBlocksOfLargerBuffers) {
    const int M = 4, n = 5;
    auto layer = randomLayer(M, 31);
    Eigen::MatrixXd X = randomMatrix(3 * M, n, 32);
    Eigen::VectorXd reference;
    Eigen::MatrixXd expected = applied(*layer, Direction::Forward, X, reference);
    // A block of a taller buffer (outer stride != rows) and a logDet that already holds values.
    Eigen::MatrixXd buffer = Eigen::MatrixXd::Constant(3 * M + 4, n, 7.0);
    buffer.middleRows(2, 3 * M) = X;
    std::vector<double> logDet(n, 1.5);
    auto ws = layer->createWorkspace();
    layer->apply(Direction::Forward, buffer.middleRows(2, 3 * M), nullptr, logDet.data(), *ws, false);
    EXPECT_LT((buffer.middleRows(2, 3 * M) - expected).cwiseAbs().maxCoeff(), 1e-14);
    EXPECT_EQ(buffer.topRows(2).maxCoeff(), 7.0);
    EXPECT_EQ(buffer.bottomRows(2).minCoeff(), 7.0);
    for (int s = 0; s < n; s++)
        EXPECT_NEAR(logDet[s], 1.5 + reference[s], 1e-14);
    // An empty batch is fine.
    Eigen::MatrixXd empty(3 * M, 0);
    layer->apply(Direction::Inverse, empty, nullptr, nullptr, *ws, true);
    layer->backward(empty, nullptr, nullptr, nullptr, *ws);
}

TEST(RightStochasticLinear, LogDetEqualsFiniteDifferenceJacobian) {
    const int M = 4, D = 3 * M;
    auto layer = randomLayer(M, 41);
    Eigen::MatrixXd X = randomMatrix(D, 1, 42);
    const double h = 1e-5;
    for (Direction direction : {Direction::Forward, Direction::Inverse}) {
        SCOPED_TRACE(direction == Direction::Forward ? "Forward" : "Inverse");
        Eigen::MatrixXd J(D, D);
        Eigen::VectorXd unused;
        for (int d = 0; d < D; d++) {
            Eigen::MatrixXd plus = X, minus = X;
            plus(d, 0) += h;
            minus(d, 0) -= h;
            J.col(d) = (applied(*layer, direction, plus, unused) - applied(*layer, direction, minus, unused)) / (2 * h);
        }
        Eigen::VectorXd logDet;
        applied(*layer, direction, X, logDet);
        EXPECT_NEAR(logDet[0], logAbsDet(J), 1e-8);
    }
}

TEST(RightStochasticLinear, EquivariantToTranslationsAndRotations) {
    const int M = 5, n = 4;
    auto layer = randomLayer(M, 51);
    Eigen::MatrixXd X = randomMatrix(3 * M, n, 52);
    const Eigen::Vector3d t(0.7, -1.3, 2.1);
    const Eigen::Matrix3d R = Eigen::AngleAxisd(0.9, Eigen::Vector3d(1, 2, -0.5).normalized()).toRotationMatrix();
    Eigen::MatrixXd translated = X, rotated = X;
    for (int s = 0; s < n; s++)
        for (int j = 0; j < M; j++) {
            translated.col(s).segment<3>(3 * j) += t;
            rotated.col(s).segment<3>(3 * j) = R * X.col(s).segment<3>(3 * j);
        }
    for (Direction direction : {Direction::Forward, Direction::Inverse}) {
        SCOPED_TRACE(direction == Direction::Forward ? "Forward" : "Inverse");
        Eigen::VectorXd unused;
        Eigen::MatrixXd out = applied(*layer, direction, X, unused);
        Eigen::MatrixXd outT = applied(*layer, direction, translated, unused);
        Eigen::MatrixXd outR = applied(*layer, direction, rotated, unused);
        for (int s = 0; s < n; s++) {
            for (int i = 0; i < M; i++)
                EXPECT_LT((outT.col(s).segment<3>(3 * i) - out.col(s).segment<3>(3 * i) - t).norm(), 1e-12);
            EXPECT_LT((atomsOf(outR, s) - R * atomsOf(out, s)).norm(), 1e-12);
        }
    }
}

TEST(RightStochasticLinear, BackwardMatchesFiniteDifferencesInBothDirections) {
    const int M = 4, D = 3 * M, n = 3;
    const double h = 1e-6;
    for (Direction direction : {Direction::Forward, Direction::Inverse}) {
        SCOPED_TRACE(direction == Direction::Forward ? "Forward" : "Inverse");
        auto layer = randomLayer(M, 61);
        Eigen::MatrixXd X = randomMatrix(D, n, 62);
        Eigen::MatrixXd C = randomMatrix(D, n, 63);
        Eigen::VectorXd g = randomMatrix(n, 1, 64);

        auto ws = layer->createWorkspace();
        Eigen::MatrixXd grad = X;
        std::vector<double> logDet(n, 0.0);
        layer->apply(direction, grad, nullptr, logDet.data(), *ws, true);
        grad = C;
        // Accumulation: the parameter gradient is added to what the buffer holds.
        std::vector<double> paramGrad(layer->getNumParameters(), 1.0);
        layer->backward(grad, g.data(), nullptr, paramGrad.data(), *ws);

        for (int d = 0; d < D; d++)
            for (int s = 0; s < n; s++) {
                Eigen::MatrixXd plus = X, minus = X;
                plus(d, s) += h;
                minus(d, s) -= h;
                const double numeric =
                    (scalarLoss(*layer, direction, plus, C, g) - scalarLoss(*layer, direction, minus, C, g)) / (2 * h);
                EXPECT_NEAR(grad(d, s), numeric, 1e-7 * (1 + std::abs(numeric))) << "input " << d << ", " << s;
            }
        std::vector<double> params(layer->getNumParameters());
        layer->getParameters(params.data());
        for (size_t p = 0; p < params.size(); p++) {
            std::vector<double> plus = params, minus = params;
            plus[p] += h;
            minus[p] -= h;
            layer->setParameters(plus.data());
            const double lossPlus = scalarLoss(*layer, direction, X, C, g);
            layer->setParameters(minus.data());
            const double lossMinus = scalarLoss(*layer, direction, X, C, g);
            layer->setParameters(params.data());
            const double numeric = (lossPlus - lossMinus) / (2 * h);
            EXPECT_NEAR(paramGrad[p] - 1.0, numeric, 1e-7 * (1 + std::abs(numeric))) << "logit " << p;
        }

        // A second backward of the same saved pass adds the same gradient again; a null gradLogDet is zero.
        std::vector<double> twice = paramGrad;
        grad = C;
        layer->backward(grad, g.data(), nullptr, twice.data(), *ws);
        for (size_t p = 0; p < params.size(); p++)
            EXPECT_NEAR(twice[p] - 1.0, 2 * (paramGrad[p] - 1.0), 1e-12);
        std::vector<double> noLogDet(params.size(), 0.0);
        grad = C;
        layer->backward(grad, nullptr, nullptr, noLogDet.data(), *ws);
        std::vector<double> zeroG(params.size(), 0.0);
        Eigen::VectorXd zeros = Eigen::VectorXd::Zero(n);
        grad = C;
        layer->backward(grad, zeros.data(), nullptr, zeroG.data(), *ws);
        for (size_t p = 0; p < params.size(); p++)
            EXPECT_NEAR(noLogDet[p], zeroG[p], 1e-15);
    }
}

TEST(RightStochasticLinear, LogDetGradientIsKTimesInverseTransposeThroughSoftmax) {
    // With C = 0 only the log-det term remains: dL/dA = +-k (sum g) A^{-T}.
    const int M = 3, n = 4;
    auto layer = randomLayer(M, 71);
    Eigen::MatrixXd X = randomMatrix(3 * M, n, 72);
    Eigen::VectorXd g = randomMatrix(n, 1, 73);
    const Eigen::MatrixXd& A = layer->getMatrix();
    const Eigen::MatrixXd G = 3 * g.sum() * layer->getInverseMatrix().transpose();
    for (Direction direction : {Direction::Forward, Direction::Inverse}) {
        auto ws = layer->createWorkspace();
        Eigen::MatrixXd data = X;
        std::vector<double> logDet(n, 0.0);
        layer->apply(direction, data, nullptr, logDet.data(), *ws, true);
        Eigen::MatrixXd grad = Eigen::MatrixXd::Zero(3 * M, n);
        std::vector<double> paramGrad(M * M, 0.0);
        layer->backward(grad, g.data(), nullptr, paramGrad.data(), *ws);
        EXPECT_EQ(grad.norm(), 0.0);
        const double sign = direction == Direction::Forward ? 1.0 : -1.0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < M; j++) {
                const double expected = sign * A(i, j) * (G(i, j) - A.row(i).dot(G.row(i)));
                EXPECT_NEAR(paramGrad[i * M + j], expected, 1e-12);
            }
    }
}

TEST(RightStochasticLinear, ConfigRoundTrip) {
    RightStochasticOptions options;
    options.initialDiagonalWeight = 0.7;
    options.initialLogitNoise = 0.05;
    auto layer = RightStochasticLinear::create(3, options);
    nlohmann::json config = layer->getConfig();
    EXPECT_EQ(config["type"], "right_stochastic_linear");
    EXPECT_EQ(layer->getTypeName(), "right_stochastic_linear");
    EXPECT_EQ(config["num_atoms"], 3);
    EXPECT_EQ(config["components_per_atom"], 3);
    auto rebuilt = RightStochasticLinear::fromConfig(config, std::vector<bool>(9, false));
    EXPECT_EQ(rebuilt->getConfig(), config);
    layer->initializeParameters(11);
    rebuilt->initializeParameters(11);
    EXPECT_EQ((layer->getLogits() - rebuilt->getLogits()).norm(), 0.0);

    options.initialLogits = randomMatrix(2, 2, 3);
    options.componentsPerAtom = 1;
    auto given = RightStochasticLinear::create(2, options);
    auto givenRebuilt = RightStochasticLinear::fromConfig(given->getConfig(), std::vector<bool>(2, false));
    EXPECT_EQ(givenRebuilt->getConfig(), given->getConfig());
    EXPECT_EQ((givenRebuilt->getLogits() - options.initialLogits).norm(), 0.0);
    // Defaults: only num_atoms.
    auto minimal = RightStochasticLinear::fromConfig({{"num_atoms", 2}}, std::vector<bool>(6, false));
    EXPECT_NEAR(minimal->getMatrix()(1, 1), 0.9, 1e-14);
}

TEST(RightStochasticLinear, ErrorsNameTheProblem) {
    std::vector<bool> circular(6, false);
    circular[1] = circular[4] = true;
    EXPECT_NE(errorMessage([&] { RightStochasticLinear layer(circular); }).find("dimension(s) 1, 4 are circular"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { RightStochasticLinear layer(std::vector<bool>(7, false)); }).find("multiple of"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { RightStochasticLinear layer(std::vector<bool>{}); }).find("multiple of"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { RightStochasticLinear::create(0); }).find("numAtoms"), std::string::npos);
    RightStochasticOptions bad;
    bad.initialDiagonalWeight = 0.2;
    EXPECT_NE(errorMessage([&] { RightStochasticLinear::create(4, bad); }).find("initialDiagonalWeight"),
              std::string::npos);
    bad.initialDiagonalWeight = 1.0;
    EXPECT_NE(errorMessage([&] { RightStochasticLinear::create(4, bad); }).find("initialDiagonalWeight"),
              std::string::npos);
    bad = {};
    bad.initialLogitNoise = -1;
    EXPECT_NE(errorMessage([&] { RightStochasticLinear::create(4, bad); }).find("initialLogitNoise"),
              std::string::npos);
    bad = {};
    bad.initialLogits = Eigen::MatrixXd::Zero(3, 4);
    EXPECT_NE(errorMessage([&] { RightStochasticLinear::create(4, bad); }).find("initialLogits is 3x4"),
              std::string::npos);
    bad.componentsPerAtom = 0;
    EXPECT_NE(errorMessage([&] { RightStochasticLinear::create(4, bad); }).find("componentsPerAtom"),
              std::string::npos);

    auto layer = randomLayer(3, 81);
    auto ws = layer->createWorkspace();
    Eigen::MatrixXd wrongRows = Eigen::MatrixXd::Zero(8, 2);
    std::vector<double> logDet(2, 0.0);
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Forward, wrongRows, nullptr, logDet.data(), *ws, true); })
                  .find("data has 8 rows, expected the dimension 9"),
              std::string::npos);
    Eigen::MatrixXd data = Eigen::MatrixXd::Zero(9, 2);
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Forward, data, nullptr, nullptr, *ws, true); })
                  .find("logDet must not be null"),
              std::string::npos);
    // Backward before any saved pass, or after a pass without save.
    EXPECT_NE(errorMessage([&] { layer->backward(data, nullptr, nullptr, nullptr, *ws); }).find("save = true"),
              std::string::npos);
    layer->apply(Direction::Forward, data, nullptr, logDet.data(), *ws, false);
    EXPECT_NE(errorMessage([&] { layer->backward(data, nullptr, nullptr, nullptr, *ws); }).find("save = true"),
              std::string::npos);
    layer->apply(Direction::Forward, data, nullptr, logDet.data(), *ws, true);
    Eigen::MatrixXd wrongBatch = Eigen::MatrixXd::Zero(9, 3);
    EXPECT_NE(errorMessage([&] { layer->backward(wrongBatch, nullptr, nullptr, nullptr, *ws); })
                  .find("grad is 9x3, expected 9x2"),
              std::string::npos);
    // A workspace of another type, and one saved by another layer.
    AtomPermutation permutation(std::vector<bool>(9, false), {0, 1, 2});
    auto otherWs = permutation.createWorkspace();
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Forward, data, nullptr, logDet.data(), *otherWs, true); })
                  .find("not created by this bijection type"),
              std::string::npos);
    auto other = randomLayer(3, 82);
    EXPECT_NE(errorMessage([&] { other->backward(data, nullptr, nullptr, nullptr, *ws); }).find("of this layer"),
              std::string::npos);
    // Parameters.
    std::vector<double> params(9, 0.0);
    params[4] = std::nan("");
    EXPECT_NE(errorMessage([&] { layer->setParameters(params.data()); }).find("logit (1, 1) is not finite"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { layer->setLogits(Eigen::MatrixXd::Zero(2, 2)); }).find("got 2x2, expected 3x3"),
              std::string::npos);
    // A singular A (two equal rows): apply and the inverse refuse.
    layer->setLogits(Eigen::MatrixXd::Zero(3, 3));
    EXPECT_EQ(layer->getDeterminantSign(), 0);
    EXPECT_NE(errorMessage([&] { layer->getInverseMatrix(); }).find("singular"), std::string::npos);
    EXPECT_NE(errorMessage([&] { layer->apply(Direction::Inverse, data, nullptr, logDet.data(), *ws, true); })
                  .find("singular"),
              std::string::npos);
}

TEST(RightStochasticLinear, FromConfigValidatesEveryField) {
    const std::vector<bool> dims(6, false);
    auto message = [&](const nlohmann::json& config) {
        return errorMessage([&] { RightStochasticLinear::fromConfig(config, dims); });
    };
    EXPECT_NE(message(nlohmann::json::array()).find("must be a JSON object"), std::string::npos);
    EXPECT_NE(message({{"type", "permutation"}, {"num_atoms", 2}}).find("\"type\" must be \"right_stochastic_linear\""),
              std::string::npos);
    EXPECT_NE(message(nlohmann::json::object()).find("\"num_atoms\" is required"), std::string::npos);
    EXPECT_NE(message({{"num_atoms", "2"}}).find("\"num_atoms\" must be an integer"), std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2.5}}).find("\"num_atoms\" must be an integer"), std::string::npos);
    EXPECT_NE(message({{"num_atoms", 0}}).find("\"num_atoms\" must be an integer >= 1"), std::string::npos);
    EXPECT_NE(message({{"num_atoms", 3}}).find("does not match the layer's input dimension 6"), std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"components_per_atom", 0}}).find("\"components_per_atom\""),
              std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"initial_diagonal_weight", "big"}}).find("\"initial_diagonal_weight\""),
              std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"initial_diagonal_weight", 0.3}}).find("initialDiagonalWeight"),
              std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"initial_logit_noise", -0.1}}).find("\"initial_logit_noise\" must be >= 0"),
              std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"initial_logits", {1, 2, 3}}}).find("num_atoms^2 = 4"), std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"initial_logits", {1, 2, "x", 3}}}).find("\"initial_logits\" entry 2"),
              std::string::npos);
    EXPECT_NE(message({{"num_atoms", 2}, {"atoms", 2}}).find("unknown key \"atoms\""), std::string::npos);
}

// ============================== AtomPermutation ==============================

TEST(AtomPermutation, MovesWholeAtomsAndInverts) {
    const std::vector<int> order = {2, 0, 3, 1};
    AtomPermutation layer(std::vector<bool>(12, false), order);
    EXPECT_EQ(layer.getTypeName(), "atom_permutation");
    EXPECT_EQ(layer.getNumParameters(), 0u);
    const int n = 3;
    Eigen::MatrixXd X = randomMatrix(12, n, 91);
    auto ws = layer.createWorkspace();
    Eigen::MatrixXd out = X;
    std::vector<double> logDet(n, 0.25);
    layer.apply(Direction::Forward, out, nullptr, logDet.data(), *ws, false);
    for (int s = 0; s < n; s++) {
        EXPECT_EQ(logDet[s], 0.25); // volume preserving
        for (int i = 0; i < 4; i++)
            EXPECT_EQ((out.col(s).segment<3>(3 * i) - X.col(s).segment<3>(3 * order[i])).norm(), 0.0);
    }
    layer.apply(Direction::Inverse, out, nullptr, logDet.data(), *ws, false);
    EXPECT_EQ((out - X).norm(), 0.0);
    EXPECT_EQ(logDet[0], 0.25);
}

TEST(AtomPermutation, CircularFlagsTravelWithTheirAtoms) {
    std::vector<bool> circular(6, false);
    circular[1] = true; // atom 0, component y
    AtomPermutation layer(circular, {1, 0});
    const std::vector<bool> expected = {false, false, false, false, true, false};
    EXPECT_EQ(layer.getOutputCircular(), expected);
    AtomPermutation scalar(std::vector<bool>{true, false, false}, {2, 0, 1}, 1);
    EXPECT_EQ(scalar.getOutputCircular(), (std::vector<bool>{false, true, false}));
}

TEST(AtomPermutation, BackwardIsTheTransposedPermutation) {
    AtomPermutation layer(std::vector<bool>(9, false), {1, 2, 0});
    const int n = 2;
    Eigen::MatrixXd X = randomMatrix(9, n, 101), C = randomMatrix(9, n, 102);
    for (Direction direction : {Direction::Forward, Direction::Inverse}) {
        auto ws = layer.createWorkspace();
        Eigen::MatrixXd out = X;
        std::vector<double> logDet(n, 0.0);
        layer.apply(direction, out, nullptr, logDet.data(), *ws, true);
        Eigen::MatrixXd grad = C;
        layer.backward(grad, nullptr, nullptr, nullptr, *ws);
        // The map is linear and orthogonal: sum(C .* P X) = sum(P^T C .* X), for every X.
        EXPECT_NEAR((C.array() * out.array()).sum(), (grad.array() * X.array()).sum(), 1e-12);
        // Exactly: the gradient of entry (d, s) is that of the output entry it moved to.
        for (int d = 0; d < 9; d++) {
            Eigen::MatrixXd unit = Eigen::MatrixXd::Zero(9, n);
            unit(d, 1) = 1.0;
            auto ws2 = layer.createWorkspace();
            layer.apply(direction, unit, nullptr, logDet.data(), *ws2, false);
            EXPECT_EQ(grad(d, 1), (C.array() * unit.array()).sum());
        }
    }
}

TEST(AtomPermutation, PartitionPutsTheSlowAtomsFirstOnTheLatentSide) {
    // Data atoms 0..4; slow (e.g. backbone) atoms 3 and 1: latent order [3, 1, 0, 2, 4].
    auto layer = AtomPermutation::fromPartition(std::vector<bool>(15, false), {3, 1});
    Eigen::MatrixXd x(15, 1);
    for (int d = 0; d < 15; d++)
        x(d, 0) = d / 3 + 0.1 * (d % 3); // atom index + component / 10
    auto ws = layer->createWorkspace();
    std::vector<double> logDet(1, 0.0);
    Eigen::MatrixXd latent = x;
    layer->apply(Direction::Inverse, latent, nullptr, logDet.data(), *ws, false);
    const std::vector<int> expectedOrder = {3, 1, 0, 2, 4};
    for (int p = 0; p < 5; p++)
        for (int c = 0; c < 3; c++)
            EXPECT_DOUBLE_EQ(latent(3 * p + c, 0), expectedOrder[p] + 0.1 * c);
    layer->apply(Direction::Forward, latent, nullptr, logDet.data(), *ws, false);
    EXPECT_EQ((latent - x).norm(), 0.0);
    EXPECT_NE(errorMessage([] { AtomPermutation::fromPartition(std::vector<bool>(6, false), {1, 1}); })
                  .find("slow atom 1 is listed twice"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { AtomPermutation::fromPartition(std::vector<bool>(6, false), {2}); })
                  .find("slow atom 2 is outside [0, 2)"),
              std::string::npos);
}

TEST(AtomPermutation, ConfigRoundTripAndBadPermutations) {
    AtomPermutation layer(std::vector<bool>(8, false), {3, 1, 0, 2}, 2);
    nlohmann::json config = layer.getConfig();
    EXPECT_EQ(config["type"], "atom_permutation");
    EXPECT_EQ(config["components_per_atom"], 2);
    auto rebuilt = AtomPermutation::fromConfig(config, std::vector<bool>(8, false));
    EXPECT_EQ(rebuilt->getPermutation(), layer.getPermutation());
    EXPECT_EQ(rebuilt->getConfig(), config);

    const std::vector<bool> dims(9, false);
    EXPECT_NE(errorMessage([&] { AtomPermutation bad(dims, {0, 1}); }).find("2 entries, expected the number of atoms 3"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { AtomPermutation bad(dims, {0, 3, 1}); }).find("entry 1 = 3 is not an atom index"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { AtomPermutation bad(dims, {0, -1, 1}); }).find("entry 1 = -1"), std::string::npos);
    EXPECT_NE(errorMessage([&] { AtomPermutation bad(dims, {2, 0, 2}); })
                  .find("atom 2 appears more than once (entries 0 and 2)"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { AtomPermutation bad(std::vector<bool>(8, false), {0, 1}); }).find("multiple of"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { AtomPermutation bad(dims, {0, 1, 2}, 0); }).find("componentsPerAtom"),
              std::string::npos);

    auto message = [&](const nlohmann::json& c) { return errorMessage([&] { AtomPermutation::fromConfig(c, dims); }); };
    EXPECT_NE(message({{"num_atoms", 3}}).find("\"permutation\" must be an array"), std::string::npos);
    EXPECT_NE(message({{"permutation", {0, 1.5, 2}}}).find("entries must be integers"), std::string::npos);
    EXPECT_NE(message({{"permutation", {0, 1, 2}}, {"num_atoms", 4}}).find("\"num_atoms\" = 4"), std::string::npos);
    EXPECT_NE(message({{"permutation", {0, 1, 2}}, {"components_per_atom", 1}}).find("expected the number of atoms 9"),
              std::string::npos);
    EXPECT_NE(message({{"permutation", {0, 1, 2}}, {"order", 1}}).find("unknown key \"order\""), std::string::npos);
    EXPECT_NE(message({{"type", "permutation"}, {"permutation", {0, 1, 2}}}).find("\"type\" must be \"atom_permutation\""),
              std::string::npos);
    EXPECT_EQ(AtomPermutation::fromConfig({{"permutation", {2, 1, 0}}}, dims)->getPermutation(),
              (std::vector<int>{2, 1, 0}));

    // Workspace checks.
    auto ws = layer.createWorkspace();
    Eigen::MatrixXd grad = Eigen::MatrixXd::Zero(8, 2);
    EXPECT_NE(errorMessage([&] { layer.backward(grad, nullptr, nullptr, nullptr, *ws); }).find("save = true"),
              std::string::npos);
    std::vector<double> logDet(2, 0.0);
    layer.apply(Direction::Forward, grad, nullptr, logDet.data(), *ws, true);
    Eigen::MatrixXd wrong = Eigen::MatrixXd::Zero(8, 1);
    EXPECT_NE(errorMessage([&] { layer.backward(wrong, nullptr, nullptr, nullptr, *ws); }).find("expected 8x2"),
              std::string::npos);
    auto rsl = RightStochasticLinear::create(4, [] {
        RightStochasticOptions o;
        o.componentsPerAtom = 2;
        return o;
    }());
    auto rslWs = rsl->createWorkspace();
    EXPECT_NE(errorMessage([&] { layer.apply(Direction::Forward, grad, nullptr, logDet.data(), *rslWs, true); })
                  .find("AtomPermutation: the workspace was not created"),
              std::string::npos);
}
