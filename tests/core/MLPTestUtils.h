#ifndef CGFLOW_TESTS_MLPTESTUTILS_H_
#define CGFLOW_TESTS_MLPTESTUTILS_H_

// Shared by the MLP tests (first and second derivatives).
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/MLP.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace cgflowtest {

inline const std::vector<cgflow::nn::Activation> allActivations = {
    cgflow::nn::Activation::Identity, cgflow::nn::Activation::Tanh, cgflow::nn::Activation::Sigmoid,
    cgflow::nn::Activation::Softplus, cgflow::nn::Activation::SiLU, cgflow::nn::Activation::ReLU};

/**
 * Checks derivative(a, x) against central differences of function(a, x) for every activation at
 * points from -1000 to 1000 (none within h of 0, where ReLU' jumps), relative tolerance 1e-7.
 */
template <class Function, class Derivative>
void expectDerivativeMatchesCentralDifferences(Function function, Derivative derivative) {
    const std::vector<double> xs = {-1000, -300, -45, -20.5, -7.3, -2.2, -1.01, -0.37, -0.05,
                                    0.03,  0.41, 0.99, 1.7,   3.3,  6.1,  19.5,  44,    300, 1000};
    for (cgflow::nn::Activation a : allActivations)
        for (double x : xs) {
            double h = 1e-5 * std::max(1.0, std::abs(x));
            double fd = (function(a, x + h) - function(a, x - h)) / (2 * h);
            double analytic = derivative(a, x);
            EXPECT_NEAR(analytic, fd, 1e-7 * std::max(1.0, std::abs(analytic)))
                << cgflow::nn::activationName(a) << " at x = " << x;
        }
}

/** Random parameters, including biases, so gradients see every term. */
inline cgflow::nn::MLP randomMLP(std::vector<int> widths, cgflow::nn::Activation hidden,
                                 cgflow::nn::Activation output, uint64_t seed) {
    cgflow::nn::MLP mlp(std::move(widths), hidden, output);
    std::vector<double> params(mlp.getNumParameters());
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 0.7);
    for (double& p : params)
        p = normal(rng);
    mlp.setParameters(params.data());
    return mlp;
}

} // namespace cgflowtest

#endif
