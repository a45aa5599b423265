// EnergyTarget against direct OpenMM evaluation: values, threads, counting, non-finite
// flags and energy regularization.
#include "cgflow/Error.h"
#include "cgflow/energy/EnergyTarget.h"
#include "openmm/Context.h"
#include "openmm/HarmonicBondForce.h"
#include "openmm/NonbondedForce.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include "openmm/serialization/XmlSerializer.h"
#include <gtest/gtest.h>
#include <cmath>
#include <random>
#include <sstream>
#include <thread>

using namespace OpenMM;
using cgflow::energy::EnergyTarget;

namespace {

const int NumAtoms = 8;

System makeSystem() {
    System system;
    NonbondedForce* nb = new NonbondedForce();
    HarmonicBondForce* bonds = new HarmonicBondForce();
    for (int i = 0; i < NumAtoms; i++) {
        system.addParticle(12.0);
        nb->addParticle(i % 2 ? 0.3 : -0.3, 0.3, 0.5);
    }
    for (int i = 0; i + 1 < NumAtoms; i++) {
        bonds->addBond(i, i + 1, 0.15, 1000.0);
        nb->addException(i, i + 1, 0.0, 1.0, 0.0);
    }
    bonds->setForceGroup(1);
    system.addForce(nb);
    system.addForce(bonds);
    return system;
}

std::string toXml(const System& system) {
    std::stringstream s;
    XmlSerializer::serialize<System>(&system, "System", s);
    return s.str();
}

std::vector<double> randomBatch(int batch, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> normal(0.0, 0.05);
    std::vector<double> x((size_t) batch * NumAtoms * 3);
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < NumAtoms; i++) {
            x[((size_t) b * NumAtoms + i) * 3] = 0.16 * i + normal(gen);
            x[((size_t) b * NumAtoms + i) * 3 + 1] = normal(gen);
            x[((size_t) b * NumAtoms + i) * 3 + 2] = normal(gen);
        }
    return x;
}

void directEvaluate(const System& system, const double* x, double& energy, std::vector<double>& forces, int groups = -1) {
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, Platform::getPlatformByName("Reference"));
    std::vector<Vec3> pos(NumAtoms);
    for (int i = 0; i < NumAtoms; i++)
        pos[i] = Vec3(x[3 * i], x[3 * i + 1], x[3 * i + 2]);
    context.setPositions(pos);
    State state = context.getState(State::Energy | State::Forces, false, groups);
    energy = state.getPotentialEnergy();
    forces.resize(3 * NumAtoms);
    for (int i = 0; i < NumAtoms; i++)
        for (int k = 0; k < 3; k++)
            forces[3 * i + k] = state.getForces()[i][k];
}

} // namespace

TEST(EnergyTarget, MatchesDirectEvaluationForAnyThreadCount) {
    System system = makeSystem();
    const int batch = 13;
    std::vector<double> x = randomBatch(batch, 1);
    std::vector<double> reference(batch), referenceForces;
    std::vector<std::vector<double>> refForces(batch);
    for (int b = 0; b < batch; b++)
        directEvaluate(system, &x[(size_t) b * NumAtoms * 3], reference[b], refForces[b]);
    for (int threads : {1, 2, 3}) {
        EnergyTarget target(toXml(system), "Reference", threads);
        EXPECT_EQ(target.getNumThreads(), threads);
        std::vector<double> e(batch), f((size_t) batch * NumAtoms * 3);
        std::vector<uint8_t> finite(batch);
        EXPECT_EQ(target.evaluate(x.data(), batch, e.data(), f.data(), finite.data()), 0);
        for (int b = 0; b < batch; b++) {
            EXPECT_EQ(e[b], reference[b]) << "threads " << threads << " config " << b;
            EXPECT_EQ(finite[b], 1);
            for (int k = 0; k < 3 * NumAtoms; k++)
                EXPECT_EQ(f[(size_t) b * NumAtoms * 3 + k], refForces[b][k]);
        }
    }
}

TEST(EnergyTarget, ForceGroups) {
    System system = makeSystem();
    std::vector<double> x = randomBatch(1, 2);
    double expected;
    std::vector<double> f;
    directEvaluate(system, x.data(), expected, f, 1 << 1);
    EnergyTarget target(toXml(system), "Reference", 1, {}, 1 << 1);
    double e;
    target.evaluate(x.data(), 1, &e, nullptr, nullptr);
    EXPECT_EQ(e, expected);
}

TEST(EnergyTarget, CountsAreExactUnderConcurrentCallers) {
    EnergyTarget target(toXml(makeSystem()), "Reference", 2);
    std::vector<double> x = randomBatch(7, 3);
    std::vector<std::thread> callers;
    for (int c = 0; c < 4; c++)
        callers.emplace_back([&target, &x, c]() {
            std::vector<double> e(7);
            for (int repeat = 0; repeat < 5; repeat++)
                target.evaluate(x.data(), 7, e.data(), nullptr, nullptr, c % 2 ? "train" : "reweight");
        });
    for (std::thread& t : callers)
        t.join();
    EXPECT_EQ(target.getEvaluationCount("train"), 2 * 5 * 7);
    EXPECT_EQ(target.getEvaluationCount("reweight"), 2 * 5 * 7);
    EXPECT_EQ(target.getTotalEvaluationCount(), 4 * 5 * 7);
    target.resetEvaluationCounts("train");
    EXPECT_EQ(target.getEvaluationCount("train"), 0);
    EXPECT_EQ(target.getTotalEvaluationCount(), 2 * 5 * 7);
    target.resetEvaluationCounts();
    EXPECT_EQ(target.getTotalEvaluationCount(), 0);
}

TEST(EnergyTarget, NonFiniteResultsAreFlaggedAndCounted) {
    EnergyTarget target(toXml(makeSystem()), "Reference", 2);
    const int batch = 4;
    std::vector<double> x = randomBatch(batch, 4);
    x[(size_t) 1 * NumAtoms * 3] = std::nan("");                   // NaN coordinate
    for (int k = 0; k < 3; k++)                                     // two atoms on top of each other
        x[(size_t) 2 * NumAtoms * 3 + 3 * 4 + k] = x[(size_t) 2 * NumAtoms * 3 + 3 * 2 + k];
    std::vector<double> e(batch), f((size_t) batch * NumAtoms * 3);
    std::vector<uint8_t> finite(batch);
    int bad = target.evaluate(x.data(), batch, e.data(), f.data(), finite.data(), "train");
    EXPECT_EQ(bad, 2);
    EXPECT_EQ(finite[0], 1);
    EXPECT_EQ(finite[1], 0);
    EXPECT_EQ(finite[2], 0);
    EXPECT_EQ(finite[3], 1);
    EXPECT_TRUE(std::isfinite(e[0]) && std::isfinite(e[3]));
    EXPECT_EQ(target.getEvaluationCount("train"), batch);
}

TEST(EnergyTarget, EnergyRegularization) {
    System system = makeSystem();
    EnergyTarget target(toXml(system), "Reference", 1);
    std::vector<double> x = randomBatch(1, 5);
    double raw;
    std::vector<double> rawForces;
    directEvaluate(system, x.data(), raw, rawForces);
    // Choose thresholds around the actual energy to exercise each branch.
    struct Case { double eHigh, eMax; } cases[] = {{raw + 10, raw + 100}, {raw - 10, raw + 100}, {raw - 50, raw - 49}};
    for (const Case& c : cases) {
        target.setEnergyRegularization(c.eHigh, c.eMax);
        double e, r;
        std::vector<double> f(3 * NumAtoms);
        target.evaluate(x.data(), 1, &e, f.data(), nullptr, "default", &r);
        EXPECT_EQ(r, raw);
        double expected = raw <= c.eHigh ? raw : std::min(c.eHigh + std::log1p(raw - c.eHigh), c.eMax);
        double slope = raw <= c.eHigh ? 1.0 : (expected >= c.eMax ? 0.0 : 1.0 / (1.0 + raw - c.eHigh));
        EXPECT_NEAR(e, expected, 1e-12 * std::max(1.0, std::fabs(expected)));
        for (int k = 0; k < 3 * NumAtoms; k++)
            EXPECT_NEAR(f[k], slope * rawForces[k], 1e-9 * std::max(1.0, std::fabs(rawForces[k])));
    }
    EXPECT_THROW(target.setEnergyRegularization(10, 5), cgflow::Error);
    target.clearEnergyRegularization();
    double e;
    target.evaluate(x.data(), 1, &e, nullptr, nullptr);
    EXPECT_EQ(e, raw);
}

TEST(EnergyTarget, ClearErrors) {
    EXPECT_THROW(EnergyTarget("<not a system/>", "Reference", 1), cgflow::Error);
    EXPECT_THROW(EnergyTarget(toXml(makeSystem()), "NoSuchPlatform", 1), cgflow::Error);
    EXPECT_THROW(EnergyTarget(toXml(makeSystem()), "Reference", 0), cgflow::Error);
    try {
        EnergyTarget target(toXml(makeSystem()), "NoSuchPlatform", 1);
    }
    catch (const cgflow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("Reference"), std::string::npos) << "should list available platforms";
    }
}
