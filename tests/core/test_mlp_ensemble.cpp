#include "cgflow/Error.h"
#include "cgflow/nn/MLPEnsemble.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

using cgflow::Error;
using cgflow::nn::Activation;
using cgflow::nn::MLP;
using cgflow::nn::MLPEnsemble;

// Counting every heap allocation is the only way to hold evaluate() to its no-allocation
// promise: Eigen allocates with malloc, not operator new. glibc allows the executable to
// replace malloc; forwarding to its __libc_* entry points keeps one allocator underneath.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CGFLOW_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CGFLOW_SANITIZED 1
#endif
#if defined(__GLIBC__) && !defined(CGFLOW_SANITIZED) && !defined(CGFLOW_NO_MALLOC_COUNTING)
#define CGFLOW_COUNT_MALLOC 1
namespace {
std::atomic<bool> countingAllocations{false};
std::atomic<long> allocationCount{0};
} // namespace
extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* pointer, size_t size);
void __libc_free(void* pointer);
void* malloc(size_t size) {
    if (countingAllocations.load(std::memory_order_relaxed))
        allocationCount++;
    return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) {
    if (countingAllocations.load(std::memory_order_relaxed))
        allocationCount++;
    return __libc_calloc(count, size);
}
void* realloc(void* pointer, size_t size) {
    if (countingAllocations.load(std::memory_order_relaxed))
        allocationCount++;
    return __libc_realloc(pointer, size);
}
void free(void* pointer) {
    __libc_free(pointer);
}
}
#endif

namespace {

MLP randomMember(const std::vector<int>& widths, Activation hidden, uint64_t seed) {
    MLP mlp(widths, hidden);
    mlp.initializeParameters(seed);
    // Nonzero biases so they take part in the comparison.
    std::mt19937_64 rng(seed + 1000);
    std::uniform_real_distribution<double> uniform(-0.5, 0.5);
    for (int l = 0; l < mlp.getNumLayers(); l++)
        for (Eigen::Index i = 0; i < mlp.bias(l).size(); i++)
            mlp.bias(l)(i) = uniform(rng);
    return mlp;
}

MLPEnsemble randomEnsemble(const std::vector<int>& widths, Activation hidden, int members, uint64_t seed) {
    std::vector<MLP> list;
    for (int k = 0; k < members; k++)
        list.push_back(randomMember(widths, hidden, seed + 17 * k));
    return MLPEnsemble(std::move(list));
}

double memberValue(const MLP& mlp, const Eigen::VectorXd& x) {
    MLP::Workspace ws;
    Eigen::MatrixXd y;
    mlp.forward(x, y, ws);
    return y(0, 0);
}

} // namespace

TEST(MLPEnsemble, ConstructorValidatesMembers) {
    EXPECT_THROW(MLPEnsemble(std::vector<MLP>{}), Error);
    EXPECT_THROW(MLPEnsemble({MLP({2, 3, 2}, Activation::Tanh)}), Error);
    EXPECT_THROW(MLPEnsemble({MLP({2, 3, 1}, Activation::Tanh), MLP({2, 4, 1}, Activation::Tanh)}), Error);
    EXPECT_THROW(MLPEnsemble({MLP({2, 3, 1}, Activation::Tanh), MLP({2, 3, 1}, Activation::ReLU)}), Error);
    EXPECT_THROW(MLPEnsemble({MLP({2, 3, 1}, Activation::Tanh),
                              MLP({2, 3, 1}, Activation::Tanh, Activation::Softplus)}),
                 Error);
    EXPECT_THROW(MLPEnsemble({MLP()}), Error);
    MLPEnsemble ok({MLP({2, 3, 1}, Activation::Tanh), MLP({2, 3, 1}, Activation::Tanh)});
    EXPECT_EQ(ok.getNumMembers(), 2);
    EXPECT_EQ(ok.getInputSize(), 2);
    EXPECT_THROW(ok.getMember(2), Error);
    EXPECT_THROW(ok.getMember(-1), Error);
}

TEST(MLPEnsemble, TwoLinearMembersByHand) {
    MLP a({1, 1}, Activation::Identity), b({1, 1}, Activation::Identity);
    a.weight(0) << 1.0;
    b.weight(0) << 3.0;
    b.bias(0) << -1.0;
    MLPEnsemble ensemble({a, b});
    MLPEnsemble::Result result;
    Eigen::VectorXd x(1);
    x << 2.0;
    ensemble.evaluate(x, true, result);
    // Values 2 and 5: mean 3.5, population std 1.5, d(mean)/dx = (1 + 3)/2.
    EXPECT_DOUBLE_EQ(result.mean, 3.5);
    EXPECT_DOUBLE_EQ(result.std, 1.5);
    ASSERT_EQ(result.memberValues.size(), 2u);
    EXPECT_DOUBLE_EQ(result.memberValues[0], 2.0);
    EXPECT_DOUBLE_EQ(result.memberValues[1], 5.0);
    ASSERT_EQ(result.gradMean.size(), 1);
    EXPECT_DOUBLE_EQ(result.gradMean[0], 2.0);
}

TEST(MLPEnsemble, MeanAndStdMatchMembersComputedByHand) {
    MLPEnsemble ensemble = randomEnsemble({4, 16, 8, 1}, Activation::Sigmoid, 5, 1);
    std::mt19937_64 rng(2);
    std::normal_distribution<double> normal(0.0, 1.0);
    MLPEnsemble::Result result;
    for (int trial = 0; trial < 5; trial++) {
        Eigen::VectorXd x(4);
        for (int i = 0; i < 4; i++)
            x[i] = normal(rng);
        ensemble.evaluate(x, false, result);
        std::vector<double> values;
        for (int k = 0; k < 5; k++)
            values.push_back(memberValue(ensemble.getMember(k), x));
        double mean = 0;
        for (double v : values)
            mean += v / 5;
        double var = 0;
        for (double v : values)
            var += (v - mean) * (v - mean) / 5;
        ASSERT_EQ(result.memberValues.size(), 5u);
        for (int k = 0; k < 5; k++)
            EXPECT_NEAR(result.memberValues[k], values[k], 1e-14);
        EXPECT_NEAR(result.mean, mean, 1e-14);
        EXPECT_NEAR(result.std, std::sqrt(var), 1e-14);
        EXPECT_GT(result.std, 0.0);
    }
}

TEST(MLPEnsemble, IdenticalMembersHaveZeroSpread) {
    MLP m = randomMember({3, 5, 1}, Activation::Tanh, 5);
    MLPEnsemble ensemble({m, m, m});
    MLPEnsemble::Result result;
    ensemble.evaluate(Eigen::Vector3d(0.3, -0.2, 0.9), false, result);
    EXPECT_EQ(result.std, 0.0);
    EXPECT_EQ(result.mean, result.memberValues[0]);
}

TEST(MLPEnsemble, GradMeanMatchesFiniteDifferences) {
    for (Activation hidden : {Activation::Sigmoid, Activation::Tanh, Activation::SiLU, Activation::Softplus}) {
        MLPEnsemble ensemble = randomEnsemble({4, 12, 6, 1}, hidden, 4, 30);
        Eigen::VectorXd x(4);
        x << 0.4, -1.2, 0.7, 2.1;
        MLPEnsemble::Result result, probe;
        ensemble.evaluate(x, true, result);
        ASSERT_EQ(result.gradMean.size(), 4);
        const double h = 1e-6;
        for (int i = 0; i < 4; i++) {
            Eigen::VectorXd plus = x, minus = x;
            plus[i] += h;
            minus[i] -= h;
            ensemble.evaluate(plus, false, probe);
            double up = probe.mean;
            ensemble.evaluate(minus, false, probe);
            double fd = (up - probe.mean) / (2 * h);
            EXPECT_NEAR(result.gradMean[i], fd, 1e-8 * std::max(1.0, std::abs(fd)))
                << cgflow::nn::activationName(hidden) << " component " << i;
        }
        // Without a gradient request the values agree and gradMean is left alone.
        MLPEnsemble::Result again = result;
        ensemble.evaluate(x, false, again);
        EXPECT_EQ(again.mean, result.mean);
        EXPECT_EQ(again.gradMean, result.gradMean);
    }
}

TEST(MLPEnsemble, EvaluateBatchMatchesEvaluate) {
    MLPEnsemble ensemble = randomEnsemble({3, 10, 1}, Activation::Softplus, 6, 77);
    Eigen::MatrixXd X = Eigen::MatrixXd::Random(3, 7) * 2.0;
    Eigen::VectorXd means, stds;
    ensemble.evaluateBatch(X, means, stds);
    ASSERT_EQ(means.size(), 7);
    ASSERT_EQ(stds.size(), 7);
    MLPEnsemble::Result result;
    for (int j = 0; j < 7; j++) {
        ensemble.evaluate(X.col(j), false, result);
        EXPECT_NEAR(means[j], result.mean, 1e-13);
        EXPECT_NEAR(stds[j], result.std, 1e-13);
    }
    Eigen::VectorXd m1, s1;
    ensemble.evaluateBatch(X.leftCols(1), m1, s1);
    EXPECT_NEAR(m1[0], means[0], 1e-13);
}

TEST(MLPEnsemble, RejectsWrongInputSize) {
    MLPEnsemble ensemble = randomEnsemble({3, 4, 1}, Activation::Tanh, 2, 1);
    MLPEnsemble::Result result;
    EXPECT_THROW(ensemble.evaluate(Eigen::VectorXd::Zero(4), true, result), Error);
    Eigen::VectorXd m, s;
    EXPECT_THROW(ensemble.evaluateBatch(Eigen::MatrixXd::Zero(2, 5), m, s), Error);
    MLPEnsemble empty;
    EXPECT_THROW(empty.evaluate(Eigen::VectorXd::Zero(3), false, result), Error);
}

TEST(MLPEnsemble, SeparateObjectsCanBeEvaluatedConcurrently) {
    MLPEnsemble original = randomEnsemble({4, 32, 16, 1}, Activation::Sigmoid, 3, 8);
    Eigen::VectorXd x(4);
    x << 0.1, 0.2, 0.3, 0.4;
    MLPEnsemble::Result expected;
    original.evaluate(x, true, expected);
    std::vector<MLPEnsemble> copies(4, original);
    std::vector<int> mismatches(copies.size(), 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < copies.size(); t++)
        threads.emplace_back([&, t] {
            MLPEnsemble::Result result;
            for (int step = 0; step < 200; step++) {
                copies[t].evaluate(x, true, result);
                if (result.mean != expected.mean || result.std != expected.std || result.gradMean != expected.gradMean)
                    mismatches[t]++;
            }
        });
    for (std::thread& thread : threads)
        thread.join();
    for (int count : mismatches)
        EXPECT_EQ(count, 0);
}

TEST(MLPEnsemble, EvaluateDoesNotAllocateAfterFirstCall) {
#ifdef CGFLOW_COUNT_MALLOC
    // The production shape: 10 members of widths [4,256,128,32,1] with sigmoid.
    MLPEnsemble ensemble = randomEnsemble({4, 256, 128, 32, 1}, Activation::Sigmoid, 10, 3);
    Eigen::VectorXd x(4);
    x << 0.5, -0.25, 1.0, 0.75;
    MLPEnsemble::Result result;
    ensemble.evaluate(x, true, result);
    // Sanity check that counting works at all, so the zero below means something.
    allocationCount = 0;
    countingAllocations = true;
    // volatile so the compiler cannot elide the malloc/free pair.
    static void* volatile probe;
    probe = std::malloc(64);
    countingAllocations = false;
    std::free(probe);
    ASSERT_EQ(allocationCount.load(), 1);

    allocationCount = 0;
    countingAllocations = true;
    for (int step = 0; step < 20; step++) {
        x[0] += 0.01;
        ensemble.evaluate(x, step % 2 == 0, result);
    }
    countingAllocations = false;
    EXPECT_EQ(allocationCount.load(), 0);
#else
    GTEST_SKIP() << "allocation counting needs glibc and no sanitizer";
#endif
}

TEST(MLPEnsemble, EvaluateMembersMatchesEvaluatePerColumn) {
    MLPEnsemble ensemble = randomEnsemble({4, 9, 5, 1}, Activation::Sigmoid, 3, 41);
    Eigen::MatrixXd X = Eigen::MatrixXd::Random(4, 6) * 1.5;
    Eigen::MatrixXd outputs, gradMean;
    ensemble.evaluateMembers(X, outputs, &gradMean);
    ASSERT_EQ(outputs.rows(), 3);
    ASSERT_EQ(outputs.cols(), 6);
    ASSERT_EQ(gradMean.rows(), 4);
    ASSERT_EQ(gradMean.cols(), 6);
    MLPEnsemble::Result result;
    for (int j = 0; j < 6; j++) {
        ensemble.evaluate(X.col(j), true, result);
        for (int k = 0; k < 3; k++)
            EXPECT_NEAR(outputs(k, j), result.memberValues[k], 1e-14);
        for (int i = 0; i < 4; i++)
            EXPECT_NEAR(gradMean(i, j), result.gradMean[i], 1e-14);
    }
    // Without a gradient only the outputs are computed, and they are the same.
    Eigen::MatrixXd again;
    ensemble.evaluateMembers(X, again, nullptr);
    EXPECT_EQ(again, outputs);
    EXPECT_THROW(ensemble.evaluateMembers(Eigen::MatrixXd::Zero(3, 2), again, nullptr), Error);
}
