// The PMFForce test body shared by every platform. The including file defines
// `platformName()` and `platformProperties()` and a main() that registers the kernels.
#include "PMFForceTestUtils.h"
#include "openmm/LangevinMiddleIntegrator.h"
#include "openmm/OpenMMException.h"
#include "openmm/VerletIntegrator.h"
#include <gtest/gtest.h>
#include <cmath>
#include <functional>
#include <iostream>

using namespace OpenMM;
using namespace CGFlowPlugin;
using namespace cgflowtest;
using cgflow::nn::Activation;

OpenMM::Platform& platform() {
    return Platform::getPlatformByName(platformName());
}

// Forces are tested against finite differences; the step and tolerance depend on precision.
static double fdStep() { return isDoublePrecision() ? 1e-5 : 2e-3; }
static double fdTolerance() { return isDoublePrecision() ? 1e-5 : 5e-3; }

static System makeSystem(int n) {
    System system;
    for (int i = 0; i < n; i++)
        system.addParticle(12.0);
    return system;
}

/**
 * The forces of `state` against central differences of the Context's energy at `pos`, every component,
 * relative to the norm of the difference forces (which must not vanish, or the test would be empty).
 */
static void expectForcesMatchFiniteDifferences(Context& context, const State& state, const std::vector<Vec3>& pos,
                                               const std::string& label) {
    std::vector<Vec3> fd = finiteDifferenceForces(context, pos, fdStep());
    double norm = 0;
    for (const Vec3& f : fd)
        norm += f.dot(f);
    norm = std::sqrt(norm);
    ASSERT_GT(norm, 1e-3) << label;
    for (size_t i = 0; i < pos.size(); i++)
        for (int k = 0; k < 3; k++)
            EXPECT_NEAR(state.getForces()[i][k], fd[i][k], fdTolerance() * std::max(1.0, norm))
                << label << ": particle " << i << " component " << k;
}

TEST(PMFForce, ForcesMatchFiniteDifferences) {
    for (Activation act : {Activation::Tanh, Activation::Sigmoid, Activation::Softplus, Activation::SiLU}) {
        System system = makeSystem(6);
        PMFForce* force = new PMFForce();
        force->setModelBytes(randomEnsembleBytes({8, 16, 12, 1}, 3, act, 3));
        addAllFeatureKinds(*force);
        system.addForce(force);
        VerletIntegrator integrator(0.001);
        Context context(system, integrator, platform(), platformProperties());
        std::vector<Vec3> pos = randomPositions(6, 11);
        context.setPositions(pos);
        State state = context.getState(State::Forces | State::Energy);
        expectForcesMatchFiniteDifferences(context, state, pos, "activation " + std::to_string((int) act));
    }
}

TEST(PMFForce, EnergyMatchesDirectEvaluation) {
    System system = makeSystem(6);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 32, 1}, 4, Activation::Sigmoid, 5));
    addAllFeatureKinds(*force);
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform(), platformProperties());
    for (unsigned seed = 0; seed < 5; seed++) {
        std::vector<Vec3> pos = randomPositions(6, 100 + seed);
        double expected = directEnergy(*force, pos);
        EXPECT_NEAR(energyAt(context, pos), expected, energyTolerance() * std::max(1.0, std::fabs(expected)));
    }
}

TEST(PMFForce, PeriodicDistanceUsesMinimumImage) {
    // A model whose energy is its single input: E = the minimum-image distance.
    cgflow::nn::MLP identity({1, 1}, Activation::Identity);
    identity.weight(0)(0, 0) = 1.0;
    identity.bias(0)[0] = 0.0;
    std::string bytes = cgflow::io::encodeMLPEnsemble(cgflow::nn::MLPEnsemble({identity}));
    for (bool triclinic : {false, true}) {
        System system = makeSystem(2);
        Vec3 a(3, 0, 0), b(triclinic ? 0.5 : 0.0, 3, 0), c(triclinic ? -0.4 : 0.0, 0.3, 3);
        system.setDefaultPeriodicBoxVectors(a, b, c);
        PMFForce* force = new PMFForce();
        force->setModelBytes(bytes);
        force->addDistance(0, 1);
        force->setUsesPeriodicBoundaryConditions(true);
        system.addForce(force);
        ASSERT_TRUE(system.usesPeriodicBoundaryConditions());
        VerletIntegrator integrator(0.001);
        Context context(system, integrator, platform(), platformProperties());
        std::vector<Vec3> pos = {Vec3(0.1, 0.2, 0.1), Vec3(2.9, 2.8, 2.95)};
        // Minimum image by brute force over neighbouring cells.
        double best = 1e10;
        for (int i = -1; i <= 1; i++)
            for (int j = -1; j <= 1; j++)
                for (int k = -1; k <= 1; k++) {
                    Vec3 d = pos[1] - pos[0] + a * i + b * j + c * k;
                    best = std::min(best, std::sqrt(d.dot(d)));
                }
        EXPECT_NEAR(energyAt(context, pos), best, 1e-5);
        // The same positions without periodicity give the direct distance.
        force->setUsesPeriodicBoundaryConditions(false);
        system.setDefaultPeriodicBoxVectors(Vec3(3, 0, 0), Vec3(0, 3, 0), Vec3(0, 0, 3));
        VerletIntegrator integrator2(0.001);
        Context context2(system, integrator2, platform(), platformProperties());
        Vec3 d = pos[1] - pos[0];
        EXPECT_NEAR(energyAt(context2, pos), std::sqrt(d.dot(d)), 1e-5);
    }
}

TEST(PMFForce, EnsembleStdAndMembers) {
    // Members differ only in their output bias: energies are known exactly.
    std::vector<cgflow::nn::MLP> members;
    double offsets[] = {1.0, 2.0, 4.5};
    for (double offset : offsets) {
        cgflow::nn::MLP mlp({1, 4, 1}, Activation::Tanh);
        mlp.initializeParameters(42);
        mlp.bias(1)[0] = offset;
        members.push_back(mlp);
    }
    System system = makeSystem(2);
    PMFForce* force = new PMFForce();
    force->setModelBytes(cgflow::io::encodeMLPEnsemble(cgflow::nn::MLPEnsemble(members)));
    force->addDistance(0, 1);
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform(), platformProperties());
    std::vector<Vec3> pos = {Vec3(0, 0, 0), Vec3(0.3, 0.1, 0)};
    context.setPositions(pos);
    std::vector<double> e = force->getEnsembleEnergies(context);
    ASSERT_EQ(e.size(), 3u);
    EXPECT_NEAR(e[1] - e[0], 1.0, 1e-5);
    EXPECT_NEAR(e[2] - e[0], 3.5, 1e-5);
    double mean = (e[0] + e[1] + e[2]) / 3;
    // Offsets 0, 1, 3.5 relative to member 0: population std of {0, 1, 3.5}.
    double m = (0 + 1 + 3.5) / 3;
    double var = ((0 - m) * (0 - m) + (1 - m) * (1 - m) + (3.5 - m) * (3.5 - m)) / 3;
    EXPECT_NEAR(force->getEnsembleStd(context), std::sqrt(var), 1e-5);
    EXPECT_NEAR(context.getState(State::Energy).getPotentialEnergy(), mean, 1e-4);
}

TEST(PMFForce, UpdateParametersInContext) {
    System system = makeSystem(6);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 16, 1}, 2, Activation::Tanh, 1));
    addAllFeatureKinds(*force);
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform(), platformProperties());
    std::vector<Vec3> pos = randomPositions(6, 3);
    double before = energyAt(context, pos);
    force->setModelBytes(randomEnsembleBytes({8, 16, 1}, 2, Activation::Tanh, 2));
    force->setFeatureParticles(0, {2, 4});
    force->updateParametersInContext(context);
    double after = energyAt(context, pos);
    double expected = directEnergy(*force, pos);
    EXPECT_GT(std::fabs(after - before), 1e-3);
    EXPECT_NEAR(after, expected, energyTolerance() * std::max(1.0, std::fabs(expected)));
    // The architecture is compiled into the Context: changing it must fail loudly.
    force->setModelBytes(randomEnsembleBytes({8, 8, 1}, 2, Activation::Tanh, 2));
    EXPECT_THROW(force->updateParametersInContext(context), OpenMMException);
}

TEST(PMFForce, ClearErrors) {
    auto expectContextError = [](PMFForce* force, int numParticles, const std::string& fragment) {
        System system = makeSystem(numParticles);
        system.addForce(force);
        VerletIntegrator integrator(0.001);
        try {
            Context context(system, integrator, platform(), platformProperties());
            ADD_FAILURE() << "expected an error containing '" << fragment << "'";
        }
        catch (const OpenMMException& e) {
            EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
        }
    };
    std::string model8 = randomEnsembleBytes({8, 4, 1}, 1, Activation::Tanh, 1);
    // Feature count not matching the model.
    PMFForce* f1 = new PMFForce();
    f1->setModelBytes(model8);
    f1->addDistance(0, 1);
    expectContextError(f1, 6, "expects 8");
    // Particle index out of range (known only once the System is known).
    PMFForce* f2 = new PMFForce();
    f2->setModelBytes(randomEnsembleBytes({1, 4, 1}, 1, Activation::Tanh, 1));
    f2->addDistance(0, 7);
    expectContextError(f2, 6, "7");
    // No model.
    PMFForce* f3 = new PMFForce();
    f3->addDistance(0, 1);
    expectContextError(f3, 2, "no model");
    // Errors detected immediately.
    PMFForce f4;
    EXPECT_THROW(f4.addAngle(0, 1, 0), OpenMMException);
    EXPECT_THROW(f4.addDihedral(0, 1, 2, 2), OpenMMException);
    EXPECT_THROW(f4.addDistance(-1, 2), OpenMMException);
    EXPECT_THROW(f4.addCoordinate(0, 3), OpenMMException);
    EXPECT_THROW(f4.addCoordinate(0, 0, -1.0), OpenMMException);
    EXPECT_THROW(f4.setModelBytes("not a model file"), OpenMMException);
    EXPECT_THROW(f4.setModelBytes(model8.substr(0, model8.size() - 5)), OpenMMException);
    EXPECT_THROW(f4.setModelFile("/nonexistent/model.safetensors"), OpenMMException);
}

TEST(PMFForce, LangevinDynamicsStaysFiniteAndVerletConservesEnergy) {
    // A 10-bead CG system driven only by a PMF of all 45 pair distances.
    const int n = 10;
    System system = makeSystem(n);
    PMFForce* force = new PMFForce();
    std::vector<int> widths = {45, 32, 32, 1};
    force->setModelBytes(randomEnsembleBytes(widths, 1, Activation::SiLU, 9, 20.0));
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            force->addDistance(i, j);
    system.addForce(force);
    std::vector<Vec3> pos;
    for (int i = 0; i < n; i++)
        pos.push_back(Vec3(0.38 * i, 0.05 * (i % 3), 0.04 * (i % 2)));

    LangevinMiddleIntegrator langevin(300.0, 1.0, 0.002);
    langevin.setRandomNumberSeed(5);
    Context context(system, langevin, platform(), platformProperties());
    context.setPositions(pos);
    langevin.step(2000);
    State s = context.getState(State::Positions | State::Energy | State::Velocities);
    EXPECT_TRUE(std::isfinite(s.getPotentialEnergy()));
    for (const Vec3& p : s.getPositions())
        EXPECT_TRUE(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]));

    // Verlet at a small step conserves the total energy only if the forces are exactly minus
    // the gradient of the energy: judge the drift against how much the potential energy
    // itself moves during the run (a wrong force would let E wander by about that much).
    VerletIntegrator verlet(0.0005);
    Context context2(system, verlet, platform(), platformProperties());
    context2.setPositions(s.getPositions());
    context2.setVelocities(s.getVelocities());
    State s0 = context2.getState(State::Energy);
    double e0 = s0.getPotentialEnergy() + s0.getKineticEnergy();
    double maxDrift = 0, minPE = s0.getPotentialEnergy(), maxPE = s0.getPotentialEnergy();
    for (int block = 0; block < 100; block++) {
        verlet.step(20);
        State st = context2.getState(State::Energy);
        maxDrift = std::max(maxDrift, std::fabs(st.getPotentialEnergy() + st.getKineticEnergy() - e0));
        minPE = std::min(minPE, st.getPotentialEnergy());
        maxPE = std::max(maxPE, st.getPotentialEnergy());
    }
    std::cout << "[ info     ] Verlet dt=0.5 fs, 2000 steps: max |E - E0| = " << maxDrift
              << " kJ/mol; potential energy range " << maxPE - minPE << " kJ/mol" << std::endl;
    ASSERT_GT(maxPE - minPE, 1.0);  // the PMF really does work on the beads
    EXPECT_LT(maxDrift, (isDoublePrecision() ? 1e-4 : 1e-2) * (maxPE - minPE)) << "max drift " << maxDrift;
}

/** Three copies of the six-particle template, interleaved and permuted in a System of 19 particles. */
static std::vector<std::vector<int>> threeGroups() {
    return {{0, 3, 6, 9, 12, 15}, {17, 1, 4, 7, 10, 13}, {2, 5, 8, 11, 14, 16}};
}

TEST(PMFForce, ParticleGroupsPriceEveryCopyByItself) {
    System system = makeSystem(19);  // particle 18 belongs to no group
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 16, 1}, 3, Activation::Tanh, 21));
    addAllFeatureKinds(*force);
    for (const std::vector<int>& group : threeGroups())
        force->addParticleGroup(group);
    ASSERT_EQ(force->getNumCopies(), 3);
    const std::vector<std::vector<int>> groups = threeGroups();
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform(), platformProperties());
    std::vector<Vec3> pos = randomPositions(19, 5);
    context.setPositions(pos);
    State state = context.getState(State::Energy | State::Forces);
    std::vector<double> groupEnergies = force->getGroupEnergies(context);
    std::vector<double> groupStd = force->getGroupEnsembleStd(context);
    std::vector<double> copyMember = force->getCopyMemberEnergies(context);
    ASSERT_EQ(groupEnergies.size(), 3u);
    ASSERT_EQ(copyMember.size(), 9u);
    double total = 0;
    for (int g = 0; g < 3; g++) {
        std::vector<Vec3> own;
        for (int p : groups[g])
            own.push_back(pos[p]);
        const double expected = directEnergy(*force, own);
        EXPECT_NEAR(groupEnergies[g], expected, energyTolerance() * std::max(1.0, std::fabs(expected))) << "group " << g;
        double mean = (copyMember[3 * g] + copyMember[3 * g + 1] + copyMember[3 * g + 2]) / 3, var = 0;
        for (int m = 0; m < 3; m++)
            var += (copyMember[3 * g + m] - mean) * (copyMember[3 * g + m] - mean) / 3;
        EXPECT_NEAR(groupStd[g], std::sqrt(var), 1e-9 + energyTolerance() * std::fabs(mean));
        total += expected;
    }
    EXPECT_NEAR(state.getPotentialEnergy(), total, energyTolerance() * std::max(1.0, std::fabs(total)));
    std::vector<double> members = force->getEnsembleEnergies(context);
    ASSERT_EQ(members.size(), 3u);
    EXPECT_NEAR(members[1], copyMember[1] + copyMember[4] + copyMember[7], 1e-6 * std::max(1.0, std::fabs(members[1])));
    // Forces: minus the gradient of the sum; the particle in no group feels none.
    expectForcesMatchFiniteDifferences(context, state, pos, "three groups");
    EXPECT_EQ(state.getForces()[18], Vec3(0, 0, 0));
    // Moving one group changes only its own energy.
    std::vector<Vec3> moved = pos;
    for (int p : groups[1])
        moved[p] += Vec3(0.05, -0.1, 0.2);
    context.setPositions(moved);
    std::vector<double> after = force->getGroupEnergies(context);
    EXPECT_NEAR(after[0], groupEnergies[0], 1e-6 * std::max(1.0, std::fabs(groupEnergies[0])));
    EXPECT_NEAR(after[2], groupEnergies[2], 1e-6 * std::max(1.0, std::fabs(groupEnergies[2])));
    EXPECT_GT(std::fabs(after[1] - groupEnergies[1]), 1e-4);
}

TEST(PMFForce, ParticleGroupErrorsNameTheGroup) {
    auto expectMessage = [](const std::function<void()>& action, const std::string& fragment) {
        try {
            action();
            ADD_FAILURE() << "expected an error containing '" << fragment << "'";
        }
        catch (const OpenMMException& e) {
            EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
        }
    };
    PMFForce force;
    force.addParticleGroup({0, 1, 2});
    expectMessage([&] { force.addParticleGroup({3, 2, 4}); }, "overlaps group 0");
    expectMessage([&] { force.addParticleGroup({3, 4}); }, "has 2 particles but group 0 has 3");
    expectMessage([&] { force.addParticleGroup({3, 3, 4}); }, "appears twice");
    expectMessage([&] { force.addParticleGroup({3, -4, 5}); }, "must be >= 0");
    expectMessage([&] { force.getParticleGroup(1); }, "out of range");
    EXPECT_EQ(force.getNumParticleGroups(), 1);
    // A template index beyond the group, or a group particle beyond the System, at Context creation.
    auto contextError = [&](PMFForce* f, int numParticles, const std::string& fragment) {
        System system = makeSystem(numParticles);
        system.addForce(f);
        VerletIntegrator integrator(0.001);
        expectMessage([&] { Context context(system, integrator, platform(), platformProperties()); }, fragment);
    };
    PMFForce* f1 = new PMFForce();
    f1->setModelBytes(randomEnsembleBytes({1, 4, 1}, 1, Activation::Tanh, 1));
    f1->addDistance(0, 3);
    f1->addParticleGroup({0, 1, 2});
    contextError(f1, 6, "within a particle group");
    PMFForce* f2 = new PMFForce();
    f2->setModelBytes(randomEnsembleBytes({1, 4, 1}, 1, Activation::Tanh, 1));
    f2->addDistance(0, 1);
    f2->addParticleGroup({0, 1});
    f2->addParticleGroup({2, 9});
    contextError(f2, 6, "particle group 1: particle 9");
    // The number of groups is compiled into the Context.
    System system = makeSystem(6);
    PMFForce* f3 = new PMFForce();
    f3->setModelBytes(randomEnsembleBytes({1, 4, 1}, 1, Activation::Tanh, 1));
    f3->addDistance(0, 1);
    f3->addParticleGroup({0, 1});
    system.addForce(f3);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform(), platformProperties());
    f3->addParticleGroup({2, 3});
    expectMessage([&] { f3->updateParametersInContext(context); }, "number of particle groups");
}
