// PMFForce and CGMonteCarloIntegrator on the Reference and CPU platforms (double precision, the ground truth).
#include "PMFForce.h"
#include <map>
#include <memory>
#include <string>
#include <thread>

extern "C" void registerCGFlowReferenceKernelFactories();

static std::string currentPlatform = "Reference";
static const char* platformName() { return currentPlatform.c_str(); }
static std::map<std::string, std::string> platformProperties() { return {}; }
static bool isDoublePrecision() { return true; }
static double energyTolerance() { return 1e-10; }

#include "PMFForceTests.h"
#include "CGMonteCarloTests.h"

// Mixed precision is a Reference/CPU setting (GPU platforms follow their Precision property).

/** Two dihedrals of a 5-particle chain, the phi/psi ensemble of the conditional-flow paper. */
static System phiPsiSystem(PMFForce*& force, const std::string& precision) {
    System system = makeSystem(5);
    force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({4, 256, 128, 32, 1}, 10, Activation::Sigmoid, 7));
    force->addDihedral(0, 1, 2, 3);
    force->addDihedral(1, 2, 3, 4);
    force->setPrecision(precision);
    system.addForce(force);
    return system;
}

TEST(PMFForceMixedPrecision, EnergyAndForcesAgreeWithFloat64ToFloatRounding) {
    PMFForce *f64, *mixed;
    System s64 = phiPsiSystem(f64, "float64"), sMixed = phiPsiSystem(mixed, "mixed");
    EXPECT_EQ(mixed->getPrecision(), "mixed");
    VerletIntegrator i1(0.001), i2(0.001);
    Context c64(s64, i1, platform()), cMixed(sMixed, i2, platform());
    double largestEnergyDifference = 0;
    for (unsigned seed = 0; seed < 20; seed++) {
        std::vector<Vec3> pos = randomPositions(5, 300 + seed);
        c64.setPositions(pos);
        cMixed.setPositions(pos);
        State a = c64.getState(State::Energy | State::Forces), b = cMixed.getState(State::Energy | State::Forces);
        const double dE = std::fabs(a.getPotentialEnergy() - b.getPotentialEnergy());
        largestEnergyDifference = std::max(largestEnergyDifference, dE);
        EXPECT_LT(dE, 1e-5 * std::max(1.0, std::fabs(a.getPotentialEnergy()))) << "seed " << seed;
        double norm = 0;
        for (const Vec3& f : a.getForces())
            norm += f.dot(f);
        norm = std::sqrt(norm);
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 3; k++)
                EXPECT_NEAR(b.getForces()[i][k], a.getForces()[i][k], 1e-5 * std::max(1.0, norm)) << "seed " << seed;
    }
    // The float path really ran: float rounding shows in the energy.
    EXPECT_GT(largestEnergyDifference, 0.0);
}

// The mixed force field is self-consistent (forces are minus the gradient of the energy it reports),
// which is what MD needs; the step is large enough that float rounding of the energy stays below it.
TEST(PMFForceMixedPrecision, ForcesMatchFiniteDifferencesOfTheMixedEnergy) {
    System system = makeSystem(6);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 64, 32, 1}, 3, Activation::SiLU, 3));
    addAllFeatureKinds(*force);
    force->setPrecision("mixed");
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform());
    std::vector<Vec3> pos = randomPositions(6, 11);
    context.setPositions(pos);
    State state = context.getState(State::Forces | State::Energy);
    std::vector<Vec3> fd = finiteDifferenceForces(context, pos, 1e-3);
    double norm = 0;
    for (const Vec3& f : fd)
        norm += f.dot(f);
    norm = std::sqrt(norm);
    ASSERT_GT(norm, 1e-3);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++)
            EXPECT_NEAR(state.getForces()[i][k], fd[i][k], 1e-3 * std::max(1.0, norm)) << i << " " << k;
}

TEST(PMFForceMixedPrecision, EnsembleQueriesUseTheSameArithmeticAndPrecisionCanBeUpdated) {
    PMFForce* force;
    System system = phiPsiSystem(force, "mixed");
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, platform());
    context.setPositions(randomPositions(5, 4));
    const double mixedEnergy = context.getState(State::Energy).getPotentialEnergy();
    std::vector<double> members = force->getEnsembleEnergies(context);
    double mean = 0;
    for (double e : members)
        mean += e;
    mean /= members.size();
    EXPECT_NEAR(mean, mixedEnergy, 1e-12 * std::max(1.0, std::fabs(mixedEnergy)));
    force->setPrecision("double");
    EXPECT_EQ(force->getPrecision(), "float64");
    force->updateParametersInContext(context);
    const double doubleEnergy = context.getState(State::Energy).getPotentialEnergy();
    EXPECT_NE(doubleEnergy, mixedEnergy);
    EXPECT_NEAR(doubleEnergy, mixedEnergy, 1e-5 * std::max(1.0, std::fabs(doubleEnergy)));
    EXPECT_EQ(doubleEnergy, directEnergy(*force, context.getState(State::Positions).getPositions()));
}

TEST(PMFForceMixedPrecision, UnknownPrecisionIsRefusedNamingTheArgument) {
    PMFForce force;
    try {
        force.setPrecision("single");
        FAIL() << "no exception";
    }
    catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find("precision"), std::string::npos) << e.what();
    }
    EXPECT_EQ(force.getPrecision(), "float64");
}

// Several Contexts on one System, whose PMFForce holds one model, evaluated from several std::threads
// at once (as a replica driver or EnergyTarget's Context pool does): every thread gets the serial
// result bit for bit. scripts/tsan.sh runs this under ThreadSanitizer. On Reference the Contexts are
// also created and destroyed on the threads, so the kernels' initialisation reads the shared force and
// model concurrently. The CPU platform keeps its per-Context data in a static std::map
// (openmm/cpu/CpuPlatform.h), which we do not assume may be inserted into from several threads at once,
// so there the Contexts are created serially and only the evaluation is concurrent.
TEST(PMFForceConcurrency, ContextsSharingOneModelAgreeWithSerialEvaluationOnSeveralThreads) {
    System system = makeSystem(19);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 32, 16, 1}, 4, Activation::SiLU, 31));
    addAllFeatureKinds(*force);
    for (const std::vector<int>& group : threeGroups())
        force->addParticleGroup(group);
    system.addForce(force);
    const int numThreads = 4, numConfigs = 8, rounds = 3;
    std::vector<std::vector<Vec3>> configs;
    for (int c = 0; c < numConfigs; c++)
        configs.push_back(randomPositions(19, 700 + c));
    std::vector<double> serialEnergy(numConfigs);
    std::vector<std::vector<Vec3>> serialForces(numConfigs);
    std::vector<std::vector<double>> serialMembers(numConfigs);
    {
        VerletIntegrator integrator(0.001);
        Context context(system, integrator, platform(), platformProperties());
        for (int c = 0; c < numConfigs; c++) {
            context.setPositions(configs[c]);
            State state = context.getState(State::Energy | State::Forces);
            serialEnergy[c] = state.getPotentialEnergy();
            serialForces[c] = state.getForces();
            serialMembers[c] = force->getEnsembleEnergies(context);
        }
    }
    const bool createOnThreads = std::string(platformName()) == "Reference";
    std::vector<std::unique_ptr<VerletIntegrator>> integrators(numThreads);
    std::vector<std::unique_ptr<Context>> contexts(numThreads);
    auto createContext = [&](int t) {
        integrators[t] = std::make_unique<VerletIntegrator>(0.001);
        contexts[t] = std::make_unique<Context>(system, *integrators[t], platform(), platformProperties());
    };
    if (!createOnThreads)
        for (int t = 0; t < numThreads; t++)
            createContext(t);
    std::vector<int> mismatches(numThreads, 0);
    std::vector<std::string> errors(numThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < numThreads; t++)
        threads.emplace_back([&, t] {
            try {
                if (createOnThreads)
                    createContext(t);
                Context& context = *contexts[t];
                for (int k = 0; k < rounds * numConfigs; k++) {
                    const int c = (k + 3 * t) % numConfigs;  // the threads work on different configurations
                    context.setPositions(configs[c]);
                    State state = context.getState(State::Energy | State::Forces);
                    if (state.getPotentialEnergy() != serialEnergy[c] || state.getForces() != serialForces[c] ||
                        force->getEnsembleEnergies(context) != serialMembers[c])
                        mismatches[t]++;
                }
                if (createOnThreads) {
                    contexts[t].reset();
                    integrators[t].reset();
                }
            }
            catch (const std::exception& e) {
                errors[t] = e.what();
            }
        });
    for (std::thread& thread : threads)
        thread.join();
    for (int t = 0; t < numThreads; t++) {
        EXPECT_EQ(errors[t], "") << "thread " << t;
        EXPECT_EQ(mismatches[t], 0) << "thread " << t;
    }
}

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc > 1 && std::string(argv[1]) == "CPU") {
        // C++ programs load no plugins by themselves; the CPU platform is one.
        Platform::loadPluginLibrary(std::string(CGFLOW_OPENMM_PLUGIN_DIR) + "/libOpenMMCPU.so");
        currentPlatform = "CPU";
    }
    registerCGFlowReferenceKernelFactories();
    return RUN_ALL_TESTS();
}
