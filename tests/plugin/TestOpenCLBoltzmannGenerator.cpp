// BoltzmannGeneratorIntegrator on OpenCL (PoCL in CI) against the Reference platform, in the precision
// given as the first argument (single, mixed, double). Both platforms draw the same base points
// (Philox keyed by seed and proposal index), so with the same model and seed every step must give the
// same positions, log q and acceptance decision, whatever the block sizes.
#include "../core/AlanineGeometry.h"
#include "BoltzmannGeneratorIntegrator.h"
#include "cgflow/coords/InternalCoordinates.h"
#include "cgflow/coords/PositionMap.h"
#include "cgflow/coords/ZMatrix.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "openmm/Context.h"
#include "openmm/CustomExternalForce.h"
#include "openmm/CustomNonbondedForce.h"
#include "openmm/CustomTorsionForce.h"
#include "openmm/HarmonicBondForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include <gtest/gtest.h>
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace OpenMM;
using namespace CGFlowPlugin;
using cgflowtest::alanineTleap;
using cgflow::coords::InternalCoordinates;
using cgflow::coords::PositionMap;
using cgflow::coords::ZMatrix;

extern "C" void registerCGFlowOpenCLKernelFactories();
extern "C" void registerCGFlowReferenceKernelFactories();

namespace {

std::string precision = "single";

/**
 * Stated tolerances against the double-precision Reference platform (measured on PoCL in brackets).
 * Positions (nm): float rounding through the couplings and the NeRF chain, relative to coordinates of
 * up to ~5 nm in the double-well models (single and mixed: alanine 2.4e-6, double well 6.8e-6;
 * double: 1e-14). log q (nats): single sums ~60 log-dets and a normalization constant of ~-250 in
 * float (3.4e-5); mixed sums in double but the terms are float (1.8e-5); double 1.1e-13.
 */
double positionTolerance() { return precision == "double" ? 1e-10 : 2e-5; }
double logQTolerance() { return precision == "double" ? 1e-8 : precision == "mixed" ? 2e-4 : 2e-3; }
/**
 * Energies are priced by each platform's own force kernels, relative to |U|: float rounding, and in
 * double precision OpenMM's OpenCL bonded and torsion kernels differ from Reference by up to ~3e-7
 * relative even for bit-identical positions.
 */
double energyTolerance(double energy) { return (precision == "double" ? 1e-6 : 1e-4) * std::max(1.0, std::fabs(energy)); }

/** Adds noise to every parameter, so that zero-initialized output layers do not make the flow the identity. */
void perturb(cgflow::flows::Flow& flow, double scale, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    std::vector<double> params = flow.getParameters();
    for (double& p : params)
        p += scale * normal(rng);
    flow.setParameters(params);
}

/** A spline-coupling flow over the normalized internal coordinates of alanine dipeptide (12 circular torsions). */
std::string alanineModel(int numLayers, int hidden) {
    InternalCoordinates ic(ZMatrix::alanineDipeptide());
    ic.setNormalization(alanineTleap.data());
    PositionMap map = PositionMap::internal(ic);
    std::vector<int> circular;
    for (int d = 0; d < map.getDimension(); d++)
        if (map.getCircular()[d])
            circular.push_back(d);
    auto flow = cgflow::flows::buildFlow({{"dimension", map.getDimension()}, {"circular", circular},
                                          {"num_layers", numLayers}, {"hidden", hidden}, {"mask_seed", 1},
                                          {"shift_seed", 1}, {"seed", 1}, {"num_threads", 1}});
    perturb(*flow, 0.02, 1);
    return cgflow::io::encodeBoltzmannGenerator(*flow, map);
}

/**
 * 22 particles with the Z-matrix's bonds (harmonic around tleap's lengths) and a 1-fold term on every
 * circular torsion, so Metropolis proposals are priced differently enough to be both accepted and
 * rejected. periodic: add a soft pair repulsion with a periodic cutoff, so OpenMM reorders and wraps.
 */
System* alanineSystem(bool periodic) {
    const ZMatrix z = ZMatrix::alanineDipeptide();
    System* system = new System();
    for (int i = 0; i < z.getNumAtoms(); i++)
        system->addParticle(i == 1 || i == 4 || i == 8 || i == 10 || i == 14 || i == 18 ? 12.0 : i == 5 || i == 15 ? 16.0 : i == 6 || i == 16 ? 14.0 : 1.0);
    HarmonicBondForce* bonds = new HarmonicBondForce();
    CustomTorsionForce* torsions = new CustomTorsionForce("5*(1+cos(theta))");
    for (int c = 0; c < z.getNumInternal(); c++) {
        const std::vector<int> atoms = z.getColumnAtoms(c);
        if (z.getColumnType(c) == cgflow::coords::InternalCoordinateType::Bond) {
            const Vec3 a(alanineTleap[3 * atoms[0]], alanineTleap[3 * atoms[0] + 1], alanineTleap[3 * atoms[0] + 2]);
            const Vec3 b(alanineTleap[3 * atoms[1]], alanineTleap[3 * atoms[1] + 1], alanineTleap[3 * atoms[1] + 2]);
            bonds->addBond(atoms[0], atoms[1], std::sqrt((a - b).dot(a - b)), 2e4);
        }
        else if (z.isCircularColumn(c))
            torsions->addTorsion(atoms[0], atoms[1], atoms[2], atoms[3]);
    }
    system->addForce(bonds);
    system->addForce(torsions);
    if (periodic) {
        system->setDefaultPeriodicBoxVectors(Vec3(3, 0, 0), Vec3(0, 3, 0), Vec3(0, 0, 3));
        CustomNonbondedForce* pairs = new CustomNonbondedForce("0.5*exp(-r^2/0.02)");
        pairs->setNonbondedMethod(CustomNonbondedForce::CutoffPeriodic);
        pairs->setCutoffDistance(1.0);
        for (int i = 0; i < z.getNumAtoms(); i++)
            pairs->addParticle();
        system->addForce(pairs);
    }
    return system;
}

std::vector<Vec3> toVec3(const std::vector<double>& flat, Vec3 offset = Vec3()) {
    std::vector<Vec3> positions;
    for (size_t i = 0; i < flat.size(); i += 3)
        positions.push_back(Vec3(flat[i], flat[i + 1], flat[i + 2]) + offset);
    return positions;
}

/** What a chain reports after each step, plus a batch of proposals evaluated at the end. */
struct ChainRecord {
    std::vector<std::vector<Vec3>> positions;
    std::vector<double> logQ, energy;
    std::vector<bool> accepted;
    std::vector<double> batchPositions, batchLogQ;
};

ChainRecord runChain(const System& system, const std::string& model, BoltzmannGeneratorIntegrator::Mode mode, bool gpu,
        const std::vector<Vec3>& start, int steps, int blockSize, const std::vector<double>& condition = {}) {
    BoltzmannGeneratorIntegrator integrator(300.0, mode);
    integrator.setModelBytes(model);
    integrator.setRandomNumberSeed(5);
    integrator.setBlockSize(blockSize);
    if (!condition.empty())
        integrator.setConditionVector(condition);
    std::unique_ptr<Context> context;
    if (gpu)
        context.reset(new Context(system, integrator, Platform::getPlatformByName("OpenCL"), {{"Precision", precision}}));
    else
        context.reset(new Context(system, integrator, Platform::getPlatformByName("Reference")));
    context->setPositions(start);
    ChainRecord result;
    for (int i = 0; i < steps; i++) {
        integrator.step(1);
        result.positions.push_back(context->getState(State::Positions).getPositions());
        result.logQ.push_back(integrator.getLastLogQ());
        result.energy.push_back(integrator.getLastEnergy());
        result.accepted.push_back(integrator.getLastAccepted());
    }
    integrator.evaluateProposals(6);
    result.batchPositions = integrator.getBatchPositions();
    result.batchLogQ = integrator.getBatchLogQ();
    // evaluateProposals leaves the chain where it was.
    const std::vector<Vec3> after = context->getState(State::Positions).getPositions();
    for (size_t i = 0; i < after.size(); i++)
        for (int a = 0; a < 3; a++)
            EXPECT_EQ(after[i][a], result.positions.back()[i][a]) << "particle " << i;
    return result;
}

/** GPU and Reference chains must agree step by step within the stated tolerances. */
void expectSameChain(const ChainRecord& ref, const ChainRecord& gpu, const std::string& label) {
    ASSERT_EQ(ref.positions.size(), gpu.positions.size());
    double maxPosition = 0, maxLogQ = 0;
    for (size_t s = 0; s < ref.positions.size(); s++) {
        for (size_t i = 0; i < ref.positions[s].size(); i++)
            for (int a = 0; a < 3; a++) {
                const double diff = std::fabs(ref.positions[s][i][a] - gpu.positions[s][i][a]);
                maxPosition = std::max(maxPosition, diff);
                EXPECT_LE(diff, positionTolerance()) << label << ": step " << s << " particle " << i << " axis " << a;
            }
        maxLogQ = std::max(maxLogQ, std::fabs(ref.logQ[s] - gpu.logQ[s]));
        EXPECT_NEAR(gpu.logQ[s], ref.logQ[s], logQTolerance()) << label << ": step " << s;
        EXPECT_NEAR(gpu.energy[s], ref.energy[s], energyTolerance(ref.energy[s])) << label << ": step " << s;
        EXPECT_EQ(gpu.accepted[s], ref.accepted[s]) << label << ": step " << s;
    }
    ASSERT_EQ(ref.batchPositions.size(), gpu.batchPositions.size());
    for (size_t k = 0; k < ref.batchPositions.size(); k++)
        EXPECT_NEAR(gpu.batchPositions[k], ref.batchPositions[k], positionTolerance()) << label << ": batch value " << k;
    for (size_t k = 0; k < ref.batchLogQ.size(); k++)
        EXPECT_NEAR(gpu.batchLogQ[k], ref.batchLogQ[k], logQTolerance()) << label << ": batch proposal " << k;
    std::cout << "[ measured ] " << label << " (" << precision << "): max |dx| " << maxPosition
              << " nm, max |d log q| " << maxLogQ << std::endl;
}

/** The comparison is only meaningful if the chain moves and, in Metropolis mode, also stays sometimes. */
void expectInformativeChain(const ChainRecord& ref, BoltzmannGeneratorIntegrator::Mode mode, const std::string& label) {
    int accepted = 0;
    for (bool a : ref.accepted)
        accepted += a ? 1 : 0;
    EXPECT_GT(accepted, 0) << label;
    if (mode == BoltzmannGeneratorIntegrator::Metropolis) {
        EXPECT_LT(accepted, static_cast<int>(ref.accepted.size())) << label;
    }
}

const BoltzmannGeneratorIntegrator::Mode modes[] = {BoltzmannGeneratorIntegrator::Importance,
                                                    BoltzmannGeneratorIntegrator::Metropolis};
const char* modeName(BoltzmannGeneratorIntegrator::Mode mode) {
    return mode == BoltzmannGeneratorIntegrator::Importance ? "importance" : "metropolis";
}

/** One particle in a 2-D double well (kJ/mol): the slot map moves its x and y, z stays where it is. */
System* doubleWellSystem() {
    System* system = new System();
    system->addParticle(1.0);
    CustomExternalForce* force = new CustomExternalForce("x^4/4 - 3*x^2 + x + y^2/2");
    force->addParticle(0);
    system->addForce(force);
    return system;
}

} // namespace

TEST(OpenCLBoltzmannGenerator, InternalCoordinateModelMatchesReference) {
    const std::string model = alanineModel(4, 32);
    std::unique_ptr<System> system(alanineSystem(false));
    // Away from the origin, so the centroid placement is exercised.
    const std::vector<Vec3> start = toVec3(alanineTleap, Vec3(1.0, -2.0, 0.5));
    for (auto mode : modes) {
        const std::string label = std::string("alanine dipeptide, ") + modeName(mode);
        // Different block sizes: proposal k must be base draw k on both platforms.
        const ChainRecord ref = runChain(*system, model, mode, false, start, 10, 7);
        const ChainRecord gpu = runChain(*system, model, mode, true, start, 10, 4);
        expectInformativeChain(ref, mode, label);
        expectSameChain(ref, gpu, label);
    }
}

TEST(OpenCLBoltzmannGenerator, PeriodicInternalModelIsRefused) {
    // An internal-coordinate map builds the molecule in a canonical orientation around the current
    // centroid: exact only for an energy invariant to rigid motions, which periodic boundaries break.
    // Every platform refuses the Context.
    const std::string model = alanineModel(2, 16);
    std::unique_ptr<System> system(alanineSystem(true));
    const std::vector<Vec3> start = toVec3(alanineTleap, Vec3(7.2, -4.1, 5.3));
    for (bool gpu : {false, true}) {
        std::string message;
        try {
            runChain(*system, model, modes[0], gpu, start, 1, 3);
        } catch (const OpenMMException& e) {
            message = e.what();
        }
        EXPECT_NE(message.find("periodic boundary conditions"), std::string::npos) << (gpu ? "OpenCL" : "Reference");
    }
}

TEST(OpenCLBoltzmannGenerator, CartesianSlotModelsMatchReference) {
    struct Case {
        std::string label;
        nlohmann::json config;
        std::vector<PositionMap::Slot> slots;
        std::vector<double> condition;
        bool permutation;
    };
    const std::vector<Case> cases = {
        // Spline couplings, a circular z (cos/sin pass-through features, circular spline, circular
        // shifts), a truncated-normal base for x and y, two residual blocks, SiLU, and an explicit
        // permutation of x and y.
        {"spline, circular z, truncated base, permutation",
         {{"dimension", 3}, {"circular", {2}}, {"masks", {{true, false, true}, {false, true, false}}}, {"num_layers", 4},
          {"hidden", 16}, {"num_blocks", 2}, {"activation", "silu"}, {"bound", 6.0}, {"base", "truncated_normal"},
          {"base_bound", 4.0}, {"shift_seed", 3}, {"seed", 3}},
         {{0, 0}, {0, 1}, {0, 2}}, {}, true},
        {"affine couplings, tanh",
         {{"dimension", 2}, {"coupling", "affine"}, {"masks", {{true, false}}}, {"num_layers", 2}, {"hidden", 8},
          {"activation", "tanh"}, {"seed", 4}},
         {{0, 0}, {0, 1}}, {}, false},
        // The conditional form: the condition vector (a circular context, as cos/sin) feeds every conditioner.
        {"conditional spline, circular context",
         {{"dimension", 2}, {"context_dimension", 1}, {"context_circular", {0}}, {"num_layers", 2}, {"hidden", 16},
          {"bound", 6.0}, {"seed", 7}},
         {{0, 0}, {0, 1}}, {2.0}, false},
        // The elementwise form: splines with free parameters (no conditioner), on x only.
        {"elementwise spline", {{"dimension", 1}, {"coupling", "elementwise"}, {"num_layers", 2}, {"bound", 6.0}, {"seed", 8}},
         {{0, 0}}, {}, false},
    };
    std::unique_ptr<System> system(doubleWellSystem());
    const std::vector<Vec3> start = {Vec3(0.5, 2.0, 0.7)};
    unsigned noiseSeed = 10;
    for (const Case& c : cases) {
        nlohmann::json config = c.config;
        config["num_threads"] = 1;
        config = cgflow::flows::expandFlowConfig(config);
        if (c.permutation) {
            const nlohmann::json permutation = {{"type", "permutation"}, {"permutation", {1, 0, 2}}};
            config["layers"].insert(config["layers"].begin() + 1, permutation);
        }
        auto flow = cgflow::flows::buildFlow(config);
        perturb(*flow, 0.2, noiseSeed++);
        const std::string model = cgflow::io::encodeBoltzmannGenerator(*flow, PositionMap::cartesian(1, c.slots));
        std::vector<Vec3> chainStart = start;
        for (auto mode : modes) {
            const std::string label = c.label + ", " + modeName(mode);
            const ChainRecord ref = runChain(*system, model, mode, false, chainStart, 16, 5, c.condition);
            const ChainRecord gpu = runChain(*system, model, mode, true, chainStart, 16, 16, c.condition);
            expectInformativeChain(ref, mode, label);
            expectSameChain(ref, gpu, label);
            // The Metropolis chain starts at a typical proposal (the first of the importance run), so
            // that it both accepts and rejects.
            chainStart = ref.positions[0];
            // Coordinates outside the slots are the template's (float posq in single and mixed: 1e-6 nm).
            for (int axis = static_cast<int>(c.slots.size()); axis < 3; axis++)
                for (const auto& step : gpu.positions)
                    EXPECT_NEAR(step[0][axis], start[0][axis], 1e-6) << label << ": axis " << axis;
        }
    }
}

TEST(OpenCLBoltzmannGenerator, PeriodicSlotModelKeepsOtherParticlesUnwrapped) {
    // Three particles, each its own molecule, all outside the box: OpenMM wraps them in posq. The model
    // moves particle 0's x and y only; its z and the other particles must still read as they were set.
    System system;
    system.setDefaultPeriodicBoxVectors(Vec3(3, 0, 0), Vec3(0, 3, 0), Vec3(0, 0, 3));
    CustomNonbondedForce* pairs = new CustomNonbondedForce("2*exp(-r^2/0.5)");
    pairs->setNonbondedMethod(CustomNonbondedForce::CutoffPeriodic);
    pairs->setCutoffDistance(1.2);
    for (int i = 0; i < 3; i++) {
        system.addParticle(1.0);
        pairs->addParticle();
    }
    system.addForce(pairs);
    CustomExternalForce* well = new CustomExternalForce("x^2 + y^2");
    well->addParticle(0);
    system.addForce(well);
    auto flow = cgflow::flows::buildFlow({{"dimension", 2}, {"masks", {{true, false}}}, {"num_layers", 2},
                                          {"hidden", 8}, {"seed", 2}, {"num_threads", 1}});
    perturb(*flow, 0.2, 2);
    const std::string model = cgflow::io::encodeBoltzmannGenerator(*flow, PositionMap::cartesian(3, {{0, 0}, {0, 1}}));
    const std::vector<Vec3> start = {Vec3(0.3, 0.2, 7.7), Vec3(-4.1, 0.5, 0.5), Vec3(1.0, 6.4, -2.2)};
    for (auto mode : modes) {
        const std::string label = std::string("periodic slots, ") + modeName(mode);
        const ChainRecord ref = runChain(system, model, mode, false, start, 12, 4);
        const ChainRecord gpu = runChain(system, model, mode, true, start, 12, 4);
        expectInformativeChain(ref, mode, label);
        expectSameChain(ref, gpu, label);
        for (const auto& step : gpu.positions) {
            EXPECT_NEAR(step[0][2], 7.7, 1e-6) << label;
            for (int i = 1; i < 3; i++)
                for (int a = 0; a < 3; a++)
                    EXPECT_NEAR(step[i][a], start[i][a], 1e-6) << label << ": particle " << i;
        }
    }
}

TEST(OpenCLBoltzmannGenerator, RefusesLayersWithoutAGpuKernel) {
    auto flow = cgflow::flows::buildFlow({{"dimension", 3},
                                          {"base", {{"kinds", {"normal", "normal", "normal"}}}},
                                          {"layers", {{{"type", "right_stochastic_linear"}, {"num_atoms", 1}}}},
                                          {"num_threads", 1}});
    std::unique_ptr<System> system(new System());
    system->addParticle(1.0);
    BoltzmannGeneratorIntegrator integrator(300.0);
    integrator.setModelBytes(cgflow::io::encodeBoltzmannGenerator(*flow, PositionMap::allCartesian(1)));
    try {
        Context context(*system, integrator, Platform::getPlatformByName("OpenCL"), {{"Precision", precision}});
        FAIL() << "a right_stochastic_linear layer was accepted on OpenCL";
    }
    catch (const OpenMMException& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("layer 0 ('right_stochastic_linear') has no GPU kernel"), std::string::npos) << message;
    }
    // The Reference platform runs the same model.
    BoltzmannGeneratorIntegrator reference(300.0);
    reference.setModelBytes(integrator.getModelBytes());
    Context context(*system, reference, Platform::getPlatformByName("Reference"));
    context.setPositions({Vec3(0.1, 0.2, 0.3)});
    reference.step(2);
    EXPECT_TRUE(std::isfinite(reference.getLastLogQ()));
}

// The benchmark of the brief (slow on PoCL: run with --gtest_also_run_disabled_tests): a block of 1024
// proposals of the alanine-dipeptide flow (12 spline couplings, hidden 256) on both platforms.
TEST(OpenCLBoltzmannGenerator, DISABLED_BlockOf1024Timing) {
    const std::string model = alanineModel(12, 256);
    std::unique_ptr<System> system(alanineSystem(false));
    const std::vector<Vec3> start = toVec3(alanineTleap);
    std::map<std::string, std::vector<double>> logQ;
    for (bool gpu : {false, true}) {
        BoltzmannGeneratorIntegrator integrator(300.0, BoltzmannGeneratorIntegrator::Importance);
        integrator.setModelBytes(model);
        integrator.setRandomNumberSeed(5);
        integrator.setBlockSize(1024);
        std::unique_ptr<Context> context;
        if (gpu)
            context.reset(new Context(*system, integrator, Platform::getPlatformByName("OpenCL"), {{"Precision", precision}}));
        else
            context.reset(new Context(*system, integrator, Platform::getPlatformByName("Reference")));
        context->setPositions(start);
        integrator.step(1); // the first block (and, on OpenCL, kernel compilation)
        const double first = integrator.getFlowSeconds();
        integrator.step(1024); // the second block is drawn on step 1025
        const double second = integrator.getFlowSeconds() - first;
        std::cout << "[ timing ] " << (gpu ? "OpenCL " + precision : std::string("Reference"))
                  << ": one block of 1024 proposals " << second << " s (" << 1e6 * second / 1024
                  << " us per proposal); energy " << 1e6 * integrator.getEnergySeconds() / 1025 << " us per proposal"
                  << std::endl;
        logQ[gpu ? "gpu" : "ref"].push_back(integrator.getLastLogQ());
    }
    EXPECT_NEAR(logQ["gpu"][0], logQ["ref"][0], 10 * logQTolerance());
}

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc > 1)
        precision = argv[1];
    if (precision != "single" && precision != "mixed" && precision != "double") {
        std::cerr << "precision must be single, mixed or double, got " << precision << std::endl;
        return 2;
    }
    registerCGFlowOpenCLKernelFactories();
    registerCGFlowReferenceKernelFactories();
    return RUN_ALL_TESTS();
}
