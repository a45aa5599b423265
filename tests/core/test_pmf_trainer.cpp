// PMFTrainer: fitting the model PMFForce evaluates (an MLPEnsemble over features) to free-energy
// labels and to forces (force matching), its loss gradients, determinism, best-validation
// parameters, skipped data and errors.
#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/Features.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "cgflow/train/PMFTrainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::coords::Feature;
using cgflow::coords::FeatureType;
using cgflow::coords::PeriodicBox;
using cgflow::nn::Activation;
using cgflow::nn::MLP;
using cgflow::nn::MLPEnsemble;
using cgflow::train::PMFTrainer;
using cgflow::train::PMFTrainerOptions;
using cgflow::train::PMFEpochCallback;
using cgflow::train::PMFTrainingHistory;
using cgflow::train::PMFTrainingState;
using cgflowtest::errorMessage;
using Eigen::MatrixXd;
using Eigen::Vector3d;
using Eigen::VectorXd;

namespace {

const double pi = 3.14159265358979323846;

Feature distance(int i, int j) {
    return {FeatureType::Distance, {i, j}};
}
Feature angle(int i, int j, int k) {
    return {FeatureType::Angle, {i, j, k}};
}
Feature dihedral(int i, int j, int k, int l) {
    return {FeatureType::Dihedral, {i, j, k, l}};
}

MLPEnsemble makeEnsemble(const std::vector<int>& widths, int numMembers, Activation hidden, uint64_t seed) {
    std::vector<MLP> members;
    for (int i = 0; i < numMembers; i++) {
        MLP mlp(widths, hidden);
        mlp.initializeParameters(seed + static_cast<uint64_t>(i));
        members.push_back(std::move(mlp));
    }
    return MLPEnsemble(std::move(members));
}

std::vector<double> parametersOf(const MLPEnsemble& ensemble) {
    std::vector<double> all;
    for (int m = 0; m < ensemble.getNumMembers(); m++) {
        std::vector<double> p(ensemble.getMember(m).getNumParameters());
        ensemble.getMember(m).getParameters(p.data());
        all.insert(all.end(), p.begin(), p.end());
    }
    return all;
}

// ---- labels: a smooth function of two torsions, seen through (cos phi, sin phi, cos psi, sin psi)

double torsionSurface(double phi, double psi) {
    return 1.5 * std::cos(phi) + std::sin(phi) * std::sin(psi) + 0.5 * std::cos(2.0 * psi);
}

struct LabelData {
    MatrixXd inputs;
    VectorXd energies;
};

// n points with phi and psi uniform in [phiLow, phiHigh] x [psiLow, psiHigh], plus Gaussian label noise.
LabelData torsionLabels(int n, double phiLow, double phiHigh, double psiLow, double psiHigh, double noise, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    std::normal_distribution<double> normal(0.0, 1.0);
    LabelData data{MatrixXd(4, n), VectorXd(n)};
    for (int s = 0; s < n; s++) {
        const double phi = phiLow + (phiHigh - phiLow) * u01(rng);
        const double psi = psiLow + (psiHigh - psiLow) * u01(rng);
        data.inputs.col(s) << std::cos(phi), std::sin(phi), std::cos(psi), std::sin(psi);
        data.energies[s] = torsionSurface(phi, psi) + noise * normal(rng);
    }
    return data;
}

// ---- forces: harmonic springs between particles of a 4-bead chain, seen through all 6 pair distances

struct Spring {
    int i, j;
    double k, r0;
};

const std::vector<Spring> springs = {{0, 1, 800.0, 0.38}, {1, 2, 800.0, 0.38}, {2, 3, 800.0, 0.38}, {0, 2, 150.0, 0.60}};

std::vector<Feature> allPairDistances(int numParticles) {
    std::vector<Feature> features;
    for (int i = 0; i < numParticles; i++)
        for (int j = i + 1; j < numParticles; j++)
            features.push_back(distance(i, j));
    return features;
}

double springEnergy(const double* x, double* forces) {
    double energy = 0;
    if (forces != nullptr)
        std::fill(forces, forces + 12, 0.0);
    for (const Spring& s : springs) {
        Vector3d d(x[3 * s.j] - x[3 * s.i], x[3 * s.j + 1] - x[3 * s.i + 1], x[3 * s.j + 2] - x[3 * s.i + 2]);
        const double r = d.norm();
        energy += 0.5 * s.k * (r - s.r0) * (r - s.r0);
        if (forces != nullptr) {
            const Vector3d onJ = -s.k * (r - s.r0) / r * d;
            for (int c = 0; c < 3; c++) {
                forces[3 * s.j + c] += onJ[c];
                forces[3 * s.i + c] -= onJ[c];
            }
        }
    }
    return energy;
}

struct ForceData {
    MatrixXd positions, forces;
    VectorXd energies;
};

// Positions scattered around a zig-zag chain, with the springs' exact forces and energies.
ForceData springSamples(int n, double spread, uint64_t seed) {
    const Vector3d base[4] = {{0.0, 0.0, 0.0}, {0.3, 0.23, 0.0}, {0.6, 0.0, 0.05}, {0.9, 0.22, 0.12}};
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, spread);
    ForceData data{MatrixXd(12, n), MatrixXd(12, n), VectorXd(n)};
    for (int s = 0; s < n; s++) {
        for (int p = 0; p < 4; p++)
            for (int c = 0; c < 3; c++)
                data.positions(3 * p + c, s) = base[p][c] + normal(rng);
        data.energies[s] = springEnergy(data.positions.col(s).data(), data.forces.col(s).data());
    }
    return data;
}

MatrixXd columnsOf(const MatrixXd& m, const std::vector<int>& columns) {
    MatrixXd out(m.rows(), static_cast<Eigen::Index>(columns.size()));
    for (size_t k = 0; k < columns.size(); k++)
        out.col(static_cast<Eigen::Index>(k)) = m.col(columns[k]);
    return out;
}

VectorXd entriesOf(const VectorXd& v, const std::vector<int>& indices) {
    VectorXd out(static_cast<Eigen::Index>(indices.size()));
    for (size_t k = 0; k < indices.size(); k++)
        out[static_cast<Eigen::Index>(k)] = v[indices[k]];
    return out;
}

} // namespace

// (a) Labels: a small ensemble fits the torsion surface where there is data, and its members
// disagree more where there is none.
TEST(PMFTrainer, FitsFreeEnergyLabelsAndIsUncertainAwayFromTheData) {
    // Data on a patch of the torus: phi in [-pi, -pi/4], psi in [0, 3pi/4].
    const LabelData train = torsionLabels(400, -pi, -0.25 * pi, 0.0, 0.75 * pi, 0.0, 1);
    const LabelData heldOut = torsionLabels(200, -pi, -0.25 * pi, 0.0, 0.75 * pi, 0.0, 2);
    const LabelData away = torsionLabels(200, 0.25 * pi, pi, -pi, -0.25 * pi, 0.0, 3);
    MLPEnsemble ensemble = makeEnsemble({4, 32, 32, 1}, 4, Activation::Tanh, 10);
    PMFTrainerOptions options;
    options.batchSize = 32;
    options.epochs = 150;
    options.adam.learningRate = 5e-3;
    options.learningRateDecay = 0.98;
    options.validationFraction = 0.2; // bagging 80/20
    options.numThreads = 2;
    PMFTrainer trainer(ensemble, {}, options);
    const PMFTrainingHistory history = trainer.fitLabels(train.inputs, train.energies);
    ASSERT_EQ(history.trainLoss.size(), 150u);

    VectorXd means, stds;
    ensemble.evaluateBatch(heldOut.inputs, means, stds);
    const double rmse = std::sqrt((means - heldOut.energies).squaredNorm() / static_cast<double>(means.size()));
    const double spread = std::sqrt((heldOut.energies.array() - heldOut.energies.mean()).square().mean());
    RecordProperty("label_rmse", std::to_string(rmse));
    std::cout << "labels: held-out RMSE " << rmse << " (target std " << spread << ")";
    EXPECT_LT(rmse, 0.03 * spread);
    const double stdOnData = stds.mean();
    ensemble.evaluateBatch(away.inputs, means, stds);
    const double stdAway = stds.mean();
    std::cout << ", ensemble std on the data " << stdOnData << ", away from it " << stdAway << "\n";
    EXPECT_GT(stdAway, 5.0 * stdOnData);
}

// (b) Force matching recovers the forces of a potential the features can express, and its energy
// up to a constant, on samples it has not seen.
TEST(PMFTrainer, ForceMatchingRecoversForcesAndEnergyDifferences) {
    const ForceData train = springSamples(600, 0.03, 4);
    const ForceData heldOut = springSamples(200, 0.03, 5);
    const std::vector<Feature> features = allPairDistances(4);
    MLPEnsemble ensemble = makeEnsemble({6, 32, 32, 1}, 2, Activation::Tanh, 20);
    PMFTrainerOptions options;
    options.batchSize = 32;
    // The inputs are raw distances spread over a few hundredths of a nm while the springs are
    // stiff, so the network needs large weights: a high initial rate, decayed.
    options.epochs = 400;
    options.adam.learningRate = 2e-2;
    options.learningRateDecay = 0.99;
    options.maxGradientNorm = 1000.0;
    options.validationFraction = 0.1; // the CG-BG paper's 90/10
    options.numThreads = 2;
    PMFTrainer trainer(ensemble, features, options);
    trainer.fitForces(train.positions, train.forces);

    VectorXd energies;
    MatrixXd forces;
    trainer.predict(heldOut.positions, PeriodicBox(), energies, forces);
    const double forceError = (forces - heldOut.forces).norm() / heldOut.forces.norm();
    const VectorXd predictedShifted = energies.array() - energies.mean();
    const VectorXd trueShifted = heldOut.energies.array() - heldOut.energies.mean();
    const double energyError = (predictedShifted - trueShifted).norm() / trueShifted.norm();
    std::cout << "forces: held-out relative force error " << forceError << ", relative error of energy differences "
              << energyError << "\n";
    EXPECT_LT(forceError, 0.04);
    EXPECT_LT(energyError, 0.03);
}

namespace {

// A few particles in general position, jittered per sample, and arbitrary target forces.
ForceData randomSamples(int numParticles, int n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    ForceData data{MatrixXd(3 * numParticles, n), MatrixXd(3 * numParticles, n), VectorXd::Zero(n)};
    for (int s = 0; s < n; s++)
        for (int p = 0; p < numParticles; p++)
            for (int c = 0; c < 3; c++) {
                data.positions(3 * p + c, s) = 0.35 * p * (c == 0 ? 1.0 : 0.4 * (p % 2)) + 0.1 * normal(rng);
                data.forces(3 * p + c, s) = 5.0 * normal(rng);
            }
    return data;
}

PeriodicBox triclinicBox() {
    PeriodicBox box;
    box.periodic = true;
    box.a = Vector3d(1.6, 0, 0);
    box.b = Vector3d(0.3, 1.5, 0);
    box.c = Vector3d(-0.2, 0.25, 1.7);
    return box;
}

// Central differences of loss() in each parameter of one member against the analytic gradient.
template <class Loss>
void checkGradientAgainstFiniteDifferences(MLPEnsemble& ensemble, int member, const std::vector<double>& gradient,
                                           const Loss& loss, const std::string& label) {
    MLP& mlp = ensemble.getMember(member);
    std::vector<double> theta(mlp.getNumParameters());
    mlp.getParameters(theta.data());
    ASSERT_EQ(gradient.size(), theta.size());
    for (size_t p = 0; p < theta.size(); p++) {
        const double h = 1e-5 * std::max(1.0, std::abs(theta[p]));
        std::vector<double> shifted = theta;
        shifted[p] = theta[p] + h;
        mlp.setParameters(shifted.data());
        const double up = loss();
        shifted[p] = theta[p] - h;
        mlp.setParameters(shifted.data());
        const double down = loss();
        const double fd = (up - down) / (2 * h);
        EXPECT_NEAR(gradient[p], fd, 1e-6 * std::max(1.0, std::abs(fd))) << label << " parameter " << p;
    }
    mlp.setParameters(theta.data());
}

} // namespace

// (c) The force-matching loss's parameter gradient, the R-operator through the feature Jacobian,
// against finite differences of the loss, for every kind of feature, with and without a periodic
// box, for curved and piecewise-linear activations, over several minibatch chunks.
TEST(PMFTrainer, ForceMatchingGradientMatchesFiniteDifferences) {
    const std::vector<Feature> features = {distance(0, 1), angle(0, 1, 2), dihedral(0, 1, 2, 3), distance(1, 3)};
    const ForceData data = randomSamples(4, 7, 11);
    int checked = 0;
    for (bool periodic : {false, true})
        for (Activation activation : {Activation::Tanh, Activation::Softplus, Activation::SiLU, Activation::Sigmoid,
                                      Activation::ReLU}) {
            MLPEnsemble ensemble = makeEnsemble({5, 6, 4, 1}, 2, activation, 50 + checked);
            PMFTrainerOptions options;
            options.batchSize = 3; // chunks of 3, 3 and 1: the gradient sums over chunks
            PMFTrainer trainer(ensemble, features, options);
            const PeriodicBox box = periodic ? triclinicBox() : PeriodicBox();
            std::vector<double> gradient;
            const double loss = trainer.forceMatchingLoss(1, data.positions, data.forces, box, &gradient);
            EXPECT_TRUE(std::isfinite(loss));
            checkGradientAgainstFiniteDifferences(
                ensemble, 1, gradient, [&] { return trainer.forceMatchingLoss(1, data.positions, data.forces, box); },
                cgflow::nn::activationName(activation) + (periodic ? " periodic" : ""));
            checked++;
        }
}

TEST(PMFTrainer, LabelGradientMatchesFiniteDifferences) {
    const LabelData data = torsionLabels(9, -pi, pi, -pi, pi, 0.1, 12);
    MLPEnsemble ensemble = makeEnsemble({4, 5, 3, 1}, 1, Activation::SiLU, 60);
    PMFTrainerOptions options;
    options.batchSize = 4;
    PMFTrainer trainer(ensemble, {}, options);
    std::vector<double> gradient;
    trainer.labelLoss(0, data.inputs, data.energies, &gradient);
    checkGradientAgainstFiniteDifferences(ensemble, 0, gradient,
                                          [&] { return trainer.labelLoss(0, data.inputs, data.energies); }, "labels");
}

// The loss is what the trainer says it is: the mean over samples and all 3N components of the
// squared difference between PMFForce's force (predict(), through MLPEnsemble::evaluate) and the
// target; and predict()'s forces are minus the gradient of its energies.
TEST(PMFTrainer, ForceMatchingLossIsTheMeanSquaredForceError) {
    const std::vector<Feature> features = {distance(0, 1), angle(0, 1, 2), dihedral(0, 1, 2, 3), distance(1, 3)};
    const ForceData data = randomSamples(5, 6, 13); // particle 4 is in no feature: its force is 0
    MLPEnsemble ensemble = makeEnsemble({5, 8, 1}, 1, Activation::Tanh, 70);
    PMFTrainer trainer(ensemble, features);
    VectorXd energies;
    MatrixXd forces;
    trainer.predict(data.positions, PeriodicBox(), energies, forces);
    EXPECT_EQ(forces.block(12, 0, 3, 6).norm(), 0.0);
    const double expected = (forces - data.forces).squaredNorm() / static_cast<double>(forces.size());
    EXPECT_NEAR(trainer.forceMatchingLoss(0, data.positions, data.forces), expected, 1e-12 * expected);
    for (int i = 0; i < 12; i++) {
        MatrixXd plus = data.positions.col(2), minus = data.positions.col(2);
        plus(i) += 1e-6;
        minus(i) -= 1e-6;
        VectorXd up, down;
        MatrixXd unused;
        trainer.predict(plus, PeriodicBox(), up, unused);
        trainer.predict(minus, PeriodicBox(), down, unused);
        EXPECT_NEAR(forces(i, 2), -(up[0] - down[0]) / 2e-6, 1e-6 * std::max(1.0, std::abs(forces(i, 2))));
    }
}

// (d) Members are trained in parallel, each from its own counter-based draws, so the thread count
// changes nothing, bit for bit; the seed does change the result.
TEST(PMFTrainer, SameSeedGivesBitIdenticalParametersForAnyThreadCount) {
    const ForceData forceData = springSamples(90, 0.03, 8);
    const LabelData labelData = torsionLabels(90, -pi, pi, -pi, pi, 0.1, 9);
    auto train = [&](bool forces, int threads, uint64_t seed) {
        MLPEnsemble ensemble = makeEnsemble({forces ? 6 : 4, 8, 1}, 3, Activation::Tanh, 30);
        PMFTrainerOptions options;
        options.batchSize = 16;
        options.epochs = 4;
        options.bootstrap = true;
        options.validationFraction = 0.2;
        options.maxGradientNorm = 1.0;
        options.seed = seed;
        options.numThreads = threads;
        PMFTrainer trainer(ensemble, forces ? allPairDistances(4) : std::vector<Feature>(), options);
        const PMFTrainingHistory history = forces ? trainer.fitForces(forceData.positions, forceData.forces)
                                                  : trainer.fitLabels(labelData.inputs, labelData.energies);
        return std::make_pair(parametersOf(ensemble), history.trainLoss);
    };
    for (bool forces : {false, true}) {
        const auto one = train(forces, 1, 5);
        const auto two = train(forces, 2, 5);
        const auto three = train(forces, 3, 5);
        EXPECT_EQ(one.first, two.first) << (forces ? "forces" : "labels");
        EXPECT_EQ(one.first, three.first) << (forces ? "forces" : "labels");
        EXPECT_EQ(one.second, two.second);
        EXPECT_NE(one.first, train(forces, 2, 6).first);
    }
}

// A fit resumed from the state its epoch callback saw (a checkpoint) ends bit-identical to the
// uninterrupted fit, for labels and forces; a state from other data or options is refused.
TEST(PMFTrainer, ResumedFitIsBitIdenticalToAnUninterruptedOne) {
    const ForceData forceData = springSamples(80, 0.03, 11);
    const LabelData labelData = torsionLabels(80, -pi, pi, -pi, pi, 0.1, 12);
    PMFTrainerOptions options;
    options.batchSize = 16;
    options.epochs = 6;
    options.bootstrap = true;
    options.validationFraction = 0.2;
    options.maxGradientNorm = 1.0;
    options.learningRateDecay = 0.9;
    options.seed = 3;
    options.numThreads = 2;
    for (bool forces : {false, true}) {
        auto fit = [&](MLPEnsemble& ensemble, const PMFEpochCallback& onEpoch, const PMFTrainingState* resume) {
            PMFTrainer trainer(ensemble, forces ? allPairDistances(4) : std::vector<Feature>(), options);
            return forces ? trainer.fitForces(forceData.positions, forceData.forces, PeriodicBox(), onEpoch, resume)
                          : trainer.fitLabels(labelData.inputs, labelData.energies, onEpoch, resume);
        };
        const std::vector<int> widths = {forces ? 6 : 4, 8, 1};
        MLPEnsemble whole = makeEnsemble(widths, 3, Activation::Tanh, 40);
        PMFTrainingState afterThree;
        int calls = 0;
        const PMFTrainingHistory wholeHistory = fit(whole, [&](const PMFTrainingState& state) {
            EXPECT_EQ(state.epochsDone, ++calls);
            EXPECT_EQ(state.numEpochs, 6);
            if (state.epochsDone == 3)
                afterThree = state;
        }, nullptr);
        EXPECT_EQ(calls, 6);
        // A fresh ensemble (its initial parameters do not matter: the state carries them) resumed after 3 epochs.
        MLPEnsemble resumed = makeEnsemble(widths, 3, Activation::Tanh, 99);
        const PMFTrainingHistory resumedHistory = fit(resumed, {}, &afterThree);
        EXPECT_EQ(parametersOf(resumed), parametersOf(whole)) << (forces ? "forces" : "labels");
        EXPECT_EQ(resumedHistory.trainLoss, wholeHistory.trainLoss);
        EXPECT_EQ(resumedHistory.bestEpoch, wholeHistory.bestEpoch);
        EXPECT_EQ(resumedHistory.bestValidationLoss, wholeHistory.bestValidationLoss);
        PMFTrainingState done = afterThree;
        MLPEnsemble other = makeEnsemble(widths, 3, Activation::Tanh, 41);
        PMFTrainer wrongTrainer(other, forces ? allPairDistances(4) : std::vector<Feature>(), options);
        done.history.trainIndices[1][0] = done.history.trainIndices[1][1] + 1000;
        EXPECT_NE(errorMessage([&] {
                      if (forces)
                          wrongTrainer.fitForces(forceData.positions, forceData.forces, PeriodicBox(), {}, &done);
                      else
                          wrongTrainer.fitLabels(labelData.inputs, labelData.energies, {}, &done);
                  }).find("resume state: it was made from other data or another split"),
                  std::string::npos);
        PMFTrainingState fewer = afterThree;
        fewer.numEpochs = 5;
        EXPECT_NE(errorMessage([&] {
                      if (forces)
                          wrongTrainer.fitForces(forceData.positions, forceData.forces, PeriodicBox(), {}, &fewer);
                      else
                          wrongTrainer.fitLabels(labelData.inputs, labelData.energies, {}, &fewer);
                  }).find("resume state: 3 of 5 epochs done, but this fit runs 6"),
                  std::string::npos);
    }
}

// (e) Each member ends with the parameters of its best validation epoch: their validation loss,
// evaluated afresh, is the minimum of the history, reached before the last epoch (the fit overfits
// noisy labels, so the last parameters are not the best).
TEST(PMFTrainer, KeepsTheBestValidationParameters) {
    const LabelData noisy = torsionLabels(60, -pi, pi, -pi, pi, 0.6, 14);
    MLPEnsemble ensemble = makeEnsemble({4, 64, 64, 1}, 2, Activation::Tanh, 80);
    PMFTrainerOptions options;
    options.batchSize = 8;
    options.epochs = 120;
    options.adam.learningRate = 1e-2;
    options.validationFraction = 0.25;
    PMFTrainer trainer(ensemble, {}, options);
    const PMFTrainingHistory history = trainer.fitLabels(noisy.inputs, noisy.energies);
    for (int m = 0; m < 2; m++) {
        double minimum = std::numeric_limits<double>::infinity();
        int argmin = -1;
        for (int e = 0; e < options.epochs; e++)
            if (history.validationLoss[e][m] < minimum) {
                minimum = history.validationLoss[e][m];
                argmin = e;
            }
        EXPECT_EQ(history.bestEpoch[m], argmin);
        EXPECT_EQ(history.bestValidationLoss[m], minimum);
        ASSERT_LT(argmin, options.epochs - 1) << "member " << m << " did not overfit; the test would prove nothing";
        EXPECT_GT(history.validationLoss.back()[m], minimum);
        const std::vector<int>& validation = history.validationIndices[m];
        ASSERT_EQ(validation.size(), 15u);
        const double now = trainer.labelLoss(m, columnsOf(noisy.inputs, validation), entriesOf(noisy.energies, validation));
        EXPECT_DOUBLE_EQ(now, minimum) << "member " << m;
    }

    // Without validation the last epoch's parameters stay.
    options.validationFraction = 0;
    options.epochs = 3;
    PMFTrainer plain(ensemble, {}, options);
    const PMFTrainingHistory last = plain.fitLabels(noisy.inputs, noisy.energies);
    EXPECT_EQ(last.bestEpoch, std::vector<int>({2, 2}));
    EXPECT_TRUE(std::isnan(last.bestValidationLoss[0]));
    EXPECT_TRUE(std::isnan(last.validationLoss[1][0]));
    EXPECT_EQ(last.trainIndices[0].size(), 60u);
    EXPECT_TRUE(last.validationIndices[0].empty());
}

TEST(PMFTrainer, EachMemberDrawsItsOwnSplitAndBootstrapSample) {
    const LabelData data = torsionLabels(50, -pi, pi, -pi, pi, 0.0, 15);
    MLPEnsemble ensemble = makeEnsemble({4, 4, 1}, 3, Activation::Tanh, 90);
    PMFTrainerOptions options;
    options.epochs = 1;
    options.validationFraction = 0.2;
    options.bootstrap = true;
    PMFTrainer trainer(ensemble, {}, options);
    const PMFTrainingHistory history = trainer.fitLabels(data.inputs, data.energies);
    std::set<std::vector<int>> validationSets;
    for (int m = 0; m < 3; m++) {
        const std::vector<int>& train = history.trainIndices[m];
        const std::vector<int>& validation = history.validationIndices[m];
        ASSERT_EQ(validation.size(), 10u);
        ASSERT_EQ(train.size(), 40u);
        const std::set<int> validationSet(validation.begin(), validation.end());
        const std::set<int> trainSet(train.begin(), train.end());
        EXPECT_EQ(validationSet.size(), 10u);
        EXPECT_LT(trainSet.size(), 40u) << "a bootstrap sample of 40 from 40 repeats some (P(no repeat) ~ 1e-16)";
        for (int i : trainSet)
            EXPECT_EQ(validationSet.count(i), 0u) << "member " << m << " trains on validation sample " << i;
        validationSets.insert(std::vector<int>(validationSet.begin(), validationSet.end()));
    }
    EXPECT_EQ(validationSets.size(), 3u);

    // One network: no bootstrap, it trains on its whole training set.
    MLPEnsemble single = makeEnsemble({4, 4, 1}, 1, Activation::Tanh, 90);
    PMFTrainer singleTrainer(single, {}, options);
    const PMFTrainingHistory plain = singleTrainer.fitLabels(data.inputs, data.energies);
    std::vector<int> all = plain.trainIndices[0];
    all.insert(all.end(), plain.validationIndices[0].begin(), plain.validationIndices[0].end());
    std::sort(all.begin(), all.end());
    for (int i = 0; i < 50; i++)
        EXPECT_EQ(all[i], i);
}

TEST(PMFTrainer, StepsAndPerEpochDecayOfTheLearningRate) {
    const LabelData data = torsionLabels(25, -pi, pi, -pi, pi, 0.0, 16);
    auto train = [&](int64_t steps, int epochs) {
        MLPEnsemble ensemble = makeEnsemble({4, 4, 1}, 1, Activation::Tanh, 100);
        PMFTrainerOptions options;
        options.batchSize = 8; // 20 training samples: 3 updates per epoch
        options.validationFraction = 0.2;
        options.adam.learningRate = 0.01;
        options.learningRateDecay = 0.5;
        options.steps = steps;
        options.epochs = epochs;
        PMFTrainer trainer(ensemble, {}, options);
        const PMFTrainingHistory history = trainer.fitLabels(data.inputs, data.energies);
        return std::make_pair(parametersOf(ensemble), history);
    };
    const auto seven = train(7, 1);
    EXPECT_EQ(seven.second.stepsPerMember, 7);
    ASSERT_EQ(seven.second.learningRate.size(), 3u); // 3 + 3 + 1 updates
    EXPECT_EQ(seven.second.learningRate[0], 0.01);
    EXPECT_DOUBLE_EQ(seven.second.learningRate[1], 0.005);
    EXPECT_DOUBLE_EQ(seven.second.learningRate[2], 0.0025);
    for (const std::vector<double>& row : seven.second.trainLoss)
        EXPECT_TRUE(std::isfinite(row[0]));
    // Nine steps are exactly three epochs; seven stop two updates short of them.
    const auto nine = train(9, 1);
    const auto threeEpochs = train(0, 3);
    EXPECT_EQ(threeEpochs.second.stepsPerMember, 9);
    EXPECT_EQ(nine.first, threeEpochs.first);
    EXPECT_NE(seven.first, threeEpochs.first);
}

TEST(PMFTrainer, NonFiniteSamplesAreSkippedAndCounted) {
    LabelData labels = torsionLabels(40, -pi, pi, -pi, pi, 0.0, 17);
    labels.energies[3] = std::numeric_limits<double>::quiet_NaN();
    labels.energies[10] = std::numeric_limits<double>::infinity();
    labels.inputs(2, 17) = std::numeric_limits<double>::quiet_NaN();
    MLPEnsemble ensemble = makeEnsemble({4, 6, 1}, 2, Activation::Tanh, 110);
    PMFTrainerOptions options;
    options.epochs = 3;
    options.validationFraction = 0.2;
    PMFTrainer trainer(ensemble, {}, options);
    const PMFTrainingHistory history = trainer.fitLabels(labels.inputs, labels.energies);
    EXPECT_EQ(history.numSamples, 40);
    EXPECT_EQ(history.numSkipped, 3);
    for (int m = 0; m < 2; m++) {
        EXPECT_EQ(history.trainIndices[m].size() + history.validationIndices[m].size(), 37u);
        for (const std::vector<int>* indices : {&history.trainIndices[m], &history.validationIndices[m]})
            for (int i : *indices)
                EXPECT_TRUE(i != 3 && i != 10 && i != 17) << "skipped sample " << i << " used";
        for (int e = 0; e < 3; e++)
            EXPECT_TRUE(std::isfinite(history.trainLoss[e][m]) && std::isfinite(history.validationLoss[e][m]));
    }
    for (double p : parametersOf(ensemble))
        ASSERT_TRUE(std::isfinite(p));

    ForceData forces = springSamples(30, 0.03, 18);
    forces.forces(4, 5) = std::numeric_limits<double>::quiet_NaN();
    forces.positions(0, 12) = -std::numeric_limits<double>::infinity();
    MLPEnsemble forceEnsemble = makeEnsemble({6, 6, 1}, 1, Activation::Tanh, 120);
    PMFTrainer forceTrainer(forceEnsemble, allPairDistances(4), options);
    const PMFTrainingHistory forceHistory = forceTrainer.fitForces(forces.positions, forces.forces);
    EXPECT_EQ(forceHistory.numSkipped, 2);
    for (double p : parametersOf(forceEnsemble))
        ASSERT_TRUE(std::isfinite(p));
    // Losses asked for directly are not cleaned: non-finite data there is an Error.
    EXPECT_THROW(forceTrainer.forceMatchingLoss(0, forces.positions, forces.forces), Error);

    labels.energies.setConstant(std::numeric_limits<double>::quiet_NaN());
    const std::string message = errorMessage([&] { trainer.fitLabels(labels.inputs, labels.energies); });
    EXPECT_NE(message.find("no usable sample"), std::string::npos) << message;
}

// (f) Bad input names the argument.
TEST(PMFTrainer, ErrorsNameTheArgument) {
    MLPEnsemble ensemble = makeEnsemble({6, 4, 1}, 2, Activation::Tanh, 130);
    const ForceData data = springSamples(10, 0.03, 19);
    auto messageContains = [](const std::function<void()>& f, const std::string& needle) {
        const std::string message = errorMessage(f);
        EXPECT_NE(message.find(needle), std::string::npos) << "expected '" << needle << "' in: " << message;
    };
    messageContains([&] { PMFTrainer(ensemble, {distance(0, 1), dihedral(0, 1, 2, 3)}); }, "features");
    MLPEnsemble empty;
    messageContains([&] { PMFTrainer(empty, {}); }, "ensemble");
    PMFTrainerOptions bad;
    bad.batchSize = 0;
    messageContains([&] { PMFTrainer(ensemble, allPairDistances(4), bad); }, "batch_size");

    PMFTrainer noFeatures(ensemble, {});
    messageContains([&] { noFeatures.fitForces(data.positions, data.forces); }, "features");
    std::vector<Feature> outOfRange = allPairDistances(4);
    outOfRange[5] = distance(2, 7);
    PMFTrainer wrongParticles(ensemble, outOfRange);
    messageContains([&] { wrongParticles.fitForces(data.positions, data.forces); }, "features[5]");
    messageContains([&] { wrongParticles.fitForces(data.positions, data.forces); }, "particle index 7");

    PMFTrainer trainer(ensemble, allPairDistances(4));
    messageContains([&] { trainer.fitForces(data.positions.topRows(11), data.forces.topRows(11)); }, "positions");
    messageContains([&] { trainer.fitForces(data.positions, data.forces.leftCols(9)); }, "forces");
    PeriodicBox skewed = triclinicBox();
    skewed.a[1] = 0.1;
    messageContains([&] { trainer.fitForces(data.positions, data.forces, skewed); }, "box");
    messageContains([&] { trainer.fitLabels(MatrixXd::Zero(5, 10), VectorXd::Zero(10)); }, "inputs");
    messageContains([&] { trainer.fitLabels(MatrixXd::Zero(6, 10), VectorXd::Zero(9)); }, "energies");
    messageContains([&] { trainer.forceMatchingLoss(2, data.positions, data.forces); }, "index 2");
    VectorXd energies;
    MatrixXd forces;
    messageContains([&] { trainer.predict(data.positions.topRows(6), PeriodicBox(), energies, forces); }, "features[");

    // No usable sample: an empty batch, or every sample non-finite, names the argument(s) at fault.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    messageContains([&] { trainer.fitForces(MatrixXd(12, 0), MatrixXd(12, 0)); }, "positions: an empty batch");
    messageContains([&] { trainer.fitLabels(MatrixXd(6, 0), VectorXd(0)); }, "inputs: an empty batch");
    messageContains([&] { trainer.fitForces(MatrixXd::Constant(12, 10, nan), data.forces); }, "positions: no usable sample");
    MatrixXd nanForces = data.forces;
    nanForces.row(4).setConstant(nan);
    messageContains([&] { trainer.fitForces(data.positions, nanForces); }, "forces: no usable sample");
    messageContains([&] { trainer.fitLabels(MatrixXd::Constant(6, 10, nan), VectorXd::Constant(10, nan)); },
                    "inputs and energies: no usable sample");
    messageContains([&] { trainer.forceMatchingLoss(0, MatrixXd(12, 0), MatrixXd(12, 0)); }, "positions: an empty batch");

    // NaN positions predict a NaN energy and NaN forces (not forces of exactly 0).
    MatrixXd nanPosition = data.positions.leftCols(1);
    nanPosition(0, 0) = nan;
    trainer.predict(nanPosition, PeriodicBox(), energies, forces);
    EXPECT_TRUE(std::isnan(energies[0]));
    for (Eigen::Index c = 0; c < forces.rows(); c++)
        EXPECT_TRUE(std::isnan(forces(c, 0))) << "force component " << c;

    PMFTrainerOptions mostlyValidation;
    mostlyValidation.validationFraction = 0.9;
    PMFTrainer tooFew(ensemble, allPairDistances(4), mostlyValidation);
    messageContains([&] { tooFew.fitForces(data.positions.leftCols(3), data.forces.leftCols(3)); }, "validation_fraction");
}

TEST(PMFTrainerOptions, FromJsonReadsEveryFieldAndRoundTrips) {
    const nlohmann::json config = {{"batch_size", 128},        {"steps", 5000},           {"learning_rate", 5e-4},
                                   {"beta1", 0.8},             {"beta2", 0.99},           {"epsilon", 1e-7},
                                   {"weight_decay", 1e-5},     {"learning_rate_decay", 0.95},
                                   {"max_gradient_norm", 1.0}, {"validation_fraction", 0.2},
                                   {"bootstrap", true},        {"seed", 42},              {"threads", 4}};
    const PMFTrainerOptions options = PMFTrainerOptions::fromJson(config);
    EXPECT_EQ(options.batchSize, 128);
    EXPECT_EQ(options.steps, 5000);
    EXPECT_EQ(options.adam.learningRate, 5e-4);
    EXPECT_EQ(options.adam.beta1, 0.8);
    EXPECT_EQ(options.adam.beta2, 0.99);
    EXPECT_EQ(options.adam.epsilon, 1e-7);
    EXPECT_EQ(options.adam.weightDecay, 1e-5);
    EXPECT_EQ(options.learningRateDecay, 0.95);
    EXPECT_EQ(options.maxGradientNorm, 1.0);
    EXPECT_EQ(options.validationFraction, 0.2);
    EXPECT_TRUE(options.bootstrap);
    EXPECT_EQ(options.seed, 42u);
    EXPECT_EQ(options.numThreads, 4);
    EXPECT_EQ(options.toJson(), config);
    const PMFTrainerOptions defaults = PMFTrainerOptions::fromJson(nlohmann::json::object());
    EXPECT_EQ(defaults.epochs, 100);
    EXPECT_TRUE(std::isinf(defaults.maxGradientNorm));
    EXPECT_EQ(PMFTrainerOptions::fromJson(defaults.toJson()).toJson(), defaults.toJson());
}

TEST(PMFTrainerOptions, FromJsonErrorsNameTheField) {
    auto messageOf = [](const nlohmann::json& config) {
        return errorMessage([&] { PMFTrainerOptions::fromJson(config); });
    };
    const std::vector<std::pair<nlohmann::json, std::string>> cases = {
        {{{"epoch", 10}}, "unknown key \"epoch\""},
        {{{"epochs", 10}, {"steps", 100}}, "not both"},
        {{{"batch_size", 0}}, "\"batch_size\""},
        {{{"epochs", 2.5}}, "\"epochs\""},
        {{{"steps", -1}}, "\"steps\""},
        {{{"learning_rate", "fast"}}, "\"learning_rate\""},
        {{{"learning_rate", -1.0}}, "\"learning_rate\""},
        {{{"beta2", 1.0}}, "\"beta2\""},
        {{{"learning_rate_decay", 1.5}}, "\"learning_rate_decay\""},
        {{{"max_gradient_norm", 0.0}}, "\"max_gradient_norm\""},
        {{{"validation_fraction", 1.0}}, "\"validation_fraction\""},
        {{{"bootstrap", 1}}, "\"bootstrap\""},
        {{{"seed", -3}}, "\"seed\""},
        {{{"threads", 0}}, "\"threads\""},
    };
    for (const auto& [config, needle] : cases) {
        const std::string message = messageOf(config);
        EXPECT_NE(message.find(needle), std::string::npos) << config.dump() << " -> " << message;
        EXPECT_NE(message.find("PMF trainer options"), std::string::npos) << message;
    }
    EXPECT_NE(messageOf(nlohmann::json::array()).find("JSON object"), std::string::npos);
}
