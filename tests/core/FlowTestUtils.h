#ifndef CGFLOW_FLOW_TEST_UTILS_H_
#define CGFLOW_FLOW_TEST_UTILS_H_

// Finite-difference checks shared by the tests of bijections and flows.
#include "cgflow/flows/Bijection.h"
#include "cgflow/train/TrainableModel.h"

#include <gtest/gtest.h>

#include <Eigen/Core>
#include <Eigen/LU>
#include <cmath>
#include <random>
#include <vector>

namespace cgflowtest {

constexpr double TwoPi = 6.283185307179586476925;

/** Difference of two values as points of the circle (in (-pi, pi]) for circular dims, plain otherwise. */
inline double dimDifference(double a, double b, bool circular) {
    double d = a - b;
    if (circular)
        d -= TwoPi * std::round(d / TwoPi);
    return d;
}

inline Eigen::MatrixXd randomMatrix(int rows, int cols, double scale, uint64_t seed) {
    std::mt19937_64 engine(seed);
    std::normal_distribution<double> normal(0.0, scale);
    Eigen::MatrixXd m(rows, cols);
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++)
            m(i, j) = normal(engine);
    return m;
}

inline void randomizeParameters(cgflow::flows::Bijection& b, double scale, uint64_t seed) {
    Eigen::VectorXd p = randomMatrix(static_cast<int>(b.getNumParameters()), 1, scale, seed);
    b.setParameters(p.data());
}

/** Applies b to a copy of data; returns the output and each sample's log-det. */
inline Eigen::MatrixXd applied(const cgflow::flows::Bijection& b, cgflow::flows::Direction direction,
                               const Eigen::MatrixXd& data, const Eigen::MatrixXd* context, Eigen::VectorXd& logDet) {
    auto ws = b.createWorkspace();
    Eigen::MatrixXd out = data;
    logDet = Eigen::VectorXd::Zero(data.cols());
    b.apply(direction, out, context, logDet.data(), *ws, false);
    return out;
}

/**
 * The log|det| of the central finite-difference Jacobian of b at every column of data (circular
 * outputs differenced on the circle).
 */
inline Eigen::VectorXd finiteDifferenceLogDet(const cgflow::flows::Bijection& b, cgflow::flows::Direction direction,
                                              const Eigen::MatrixXd& data, const Eigen::MatrixXd* context,
                                              double h = 1e-6) {
    const int dim = b.getDimension();
    const std::vector<bool> outCircular =
        direction == cgflow::flows::Direction::Forward ? b.getOutputCircular() : b.getInputCircular();
    Eigen::VectorXd result(data.cols());
    for (int j = 0; j < data.cols(); j++) {
        Eigen::MatrixXd column = data.col(j);
        Eigen::MatrixXd ctx;
        if (context != nullptr)
            ctx = context->col(j);
        Eigen::MatrixXd jac(dim, dim);
        for (int k = 0; k < dim; k++) {
            Eigen::MatrixXd plus = column, minus = column;
            plus(k, 0) += h;
            minus(k, 0) -= h;
            Eigen::VectorXd ld;
            Eigen::MatrixXd fp = applied(b, direction, plus, context ? &ctx : nullptr, ld);
            Eigen::MatrixXd fm = applied(b, direction, minus, context ? &ctx : nullptr, ld);
            for (int i = 0; i < dim; i++)
                jac(i, k) = dimDifference(fp(i, 0), fm(i, 0), outCircular[i]) / (2 * h);
        }
        result[j] = std::log(std::abs(jac.determinant()));
    }
    return result;
}

/**
 * Checks backward() of b against central finite differences of the scalar loss
 *   L = sum(c .* output) + sum(g .* logDet)
 * w.r.t. the input data, the parameters (every stride-th) and the context. Returns the largest
 * absolute deviation relative to max(1, |gradient|).
 */
inline double maxGradientError(cgflow::flows::Bijection& b, cgflow::flows::Direction direction,
                               const Eigen::MatrixXd& data, const Eigen::MatrixXd* context, uint64_t seed,
                               int paramStride = 1, double h = 1e-6) {
    const int dim = b.getDimension();
    const int n = static_cast<int>(data.cols());
    const std::vector<bool> outCircular =
        direction == cgflow::flows::Direction::Forward ? b.getOutputCircular() : b.getInputCircular();
    const Eigen::MatrixXd c = randomMatrix(dim, n, 1.0, seed);
    const Eigen::VectorXd g = randomMatrix(n, 1, 1.0, seed + 1);
    Eigen::MatrixXd reference;
    Eigen::VectorXd referenceLogDet;
    auto loss = [&](const Eigen::MatrixXd& input, const Eigen::MatrixXd* ctx) {
        Eigen::VectorXd ld;
        Eigen::MatrixXd out = applied(b, direction, input, ctx, ld);
        double value = 0;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < dim; i++)
                // Circular outputs enter through their offset from a fixed reference so that a
                // wrap between the two evaluations does not register as a jump of 2 pi.
                value += c(i, j) * (reference(i, j) + dimDifference(out(i, j), reference(i, j), outCircular[i]));
        return value + g.dot(ld);
    };
    reference = applied(b, direction, data, context, referenceLogDet);

    auto ws = b.createWorkspace();
    Eigen::MatrixXd work = data;
    Eigen::VectorXd ld = Eigen::VectorXd::Zero(n);
    b.apply(direction, work, context, ld.data(), *ws, true);
    Eigen::MatrixXd grad = c;
    std::vector<double> paramGrad(b.getNumParameters(), 0.0);
    Eigen::MatrixXd gradContext;
    if (context != nullptr)
        gradContext = Eigen::MatrixXd::Zero(context->rows(), context->cols());
    b.backward(grad, g.data(), context ? &gradContext : nullptr, paramGrad.data(), *ws);

    double worst = 0;
    auto compare = [&](double analytic, double numeric) {
        worst = std::max(worst, std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric)));
    };
    for (int j = 0; j < n; j++)
        for (int i = 0; i < dim; i++) {
            Eigen::MatrixXd plus = data, minus = data;
            plus(i, j) += h;
            minus(i, j) -= h;
            compare(grad(i, j), (loss(plus, context) - loss(minus, context)) / (2 * h));
        }
    std::vector<double> params(b.getNumParameters());
    if (!params.empty())
        b.getParameters(params.data());
    for (size_t p = 0; p < params.size(); p += paramStride) {
        const double saved = params[p];
        params[p] = saved + h;
        b.setParameters(params.data());
        const double up = loss(data, context);
        params[p] = saved - h;
        b.setParameters(params.data());
        const double down = loss(data, context);
        params[p] = saved;
        b.setParameters(params.data());
        compare(paramGrad[p], (up - down) / (2 * h));
    }
    if (context != nullptr)
        for (int j = 0; j < context->cols(); j++)
            for (int i = 0; i < context->rows(); i++) {
                Eigen::MatrixXd plus = *context, minus = *context;
                plus(i, j) += h;
                minus(i, j) -= h;
                compare(gradContext(i, j), (loss(data, &plus) - loss(data, &minus)) / (2 * h));
            }
    return worst;
}

/**
 * Pathwise gradients of a TrainableModel against central finite differences: L = sum(c * x) +
 * g . log q for fixed random c and g, the same seed for every evaluation (reparametrized, so L is a
 * deterministic function of the parameters). Checks every stride-th parameter and the last `tail`.
 */
inline void expectPathwiseGradientsMatch(cgflow::train::TrainableModel& model, int n, uint64_t seed, size_t stride,
                                         size_t tail = 0, double tolerance = 1e-5) {
    const Eigen::MatrixXd c = randomMatrix(model.getDimension(), n, 1.0, seed + 1);
    const Eigen::VectorXd g = randomMatrix(n, 1, 1.0, seed + 2);
    auto loss = [&]() {
        Eigen::MatrixXd x;
        Eigen::VectorXd logQ;
        model.sampleForTraining(n, seed, nullptr, x, logQ);
        return (c.array() * x.array()).sum() + g.dot(logQ);
    };
    loss();
    std::vector<double> grad(model.getNumParameters(), 0.0), p(model.getNumParameters());
    model.backwardSample(c, g, grad.data());
    model.getParameters(p.data());
    std::vector<size_t> indices;
    for (size_t i = 0; i < p.size(); i += std::max<size_t>(1, stride))
        indices.push_back(i);
    for (size_t i = p.size() - std::min(tail, p.size()); i < p.size(); i++)
        indices.push_back(i);
    const double h = 1e-6;
    for (size_t i : indices) {
        const double keep = p[i];
        p[i] = keep + h;
        model.setParameters(p.data());
        const double up = loss();
        p[i] = keep - h;
        model.setParameters(p.data());
        const double down = loss();
        p[i] = keep;
        model.setParameters(p.data());
        const double fd = (up - down) / (2 * h);
        EXPECT_NEAR(grad[i], fd, tolerance * std::max(1.0, std::fabs(fd))) << "parameter " << i;
    }
}

} // namespace cgflowtest

#endif
