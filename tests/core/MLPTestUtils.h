#ifndef CGFLOW_TESTS_MLPTESTUTILS_H_
#define CGFLOW_TESTS_MLPTESTUTILS_H_

// Shared by the MLP tests (first and second derivatives).
#include "cgflow/nn/Activation.h"
#include "cgflow/nn/MLP.h"

#include <cstdint>
#include <random>
#include <vector>

namespace cgflowtest {

inline const std::vector<cgflow::nn::Activation> allActivations = {
    cgflow::nn::Activation::Identity, cgflow::nn::Activation::Tanh, cgflow::nn::Activation::Sigmoid,
    cgflow::nn::Activation::Softplus, cgflow::nn::Activation::SiLU, cgflow::nn::Activation::ReLU};

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
