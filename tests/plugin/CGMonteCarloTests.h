// CGMonteCarloIntegrator on every platform: exact sampling (statistical tests against quadrature and
// a harmonic well), the uncertainty search, reproducibility, serialization and clear errors. Included
// after PMFForceTests.h (which defines platform(), makeSystem() and the tolerances).
#include "CGMonteCarloIntegrator.h"
#include "openmm/CustomExternalForce.h"
#include "openmm/serialization/XmlSerializer.h"
#include <functional>
#include <memory>
#include <sstream>
#include <utility>

namespace {

constexpr double kT300 = 0.00831446261815324 * 300.0; // kJ/mol
constexpr double Pi = 3.141592653589793;

/** A one-member ensemble E = a cos x + b sin x on a periodic coordinate (a linear layer on (cos, sin)). */
std::string cosineModel(double a, double b, double offset = 0.0) {
    cgflow::nn::MLP linear({2, 1}, Activation::Identity);
    linear.weight(0)(0, 0) = a;
    linear.weight(0)(0, 1) = b;
    linear.bias(0)[0] = offset;
    return cgflow::io::encodeMLPEnsemble(cgflow::nn::MLPEnsemble({linear}));
}

/**
 * K walkers of one particle each, the PMF on its periodic x coordinate (period 2 pi, so x is an angle),
 * and an integrator that moves x.
 */
struct WalkerSystem {
    System system;
    PMFForce* force;
    WalkerSystem(int walkers, const std::string& model) {
        for (int i = 0; i < walkers; i++)
            system.addParticle(1.0);
        force = new PMFForce();
        force->setModelBytes(model);
        force->addCoordinate(0, 0, 2 * Pi);
        for (int i = 0; i < walkers; i++)
            force->addParticleGroup({i});
        system.addForce(force);
    }
};

std::unique_ptr<CGMonteCarloIntegrator> walkerIntegrator(int walkers, double scale, int seed) {
    auto integrator = std::make_unique<CGMonteCarloIntegrator>(300.0, scale);
    for (int i = 0; i < walkers; i++)
        integrator->addMovedCoordinate(i, 0, 2 * Pi);
    integrator->setRandomNumberSeed(seed);
    return integrator;
}

/** <f(x)> under exp(-E(x)/kT) on [-pi, pi), E = a cos x + b sin x, by the midpoint rule. */
double exactAverage(double a, double b, double (*f)(double)) {
    const int n = 20000;
    double z = 0, sum = 0;
    for (int i = 0; i < n; i++) {
        const double x = -Pi + (i + 0.5) * 2 * Pi / n;
        const double w = std::exp(-(a * std::cos(x) + b * std::sin(x)) / kT300);
        z += w;
        sum += w * f(x);
    }
    return sum / z;
}

/**
 * Mean and standard error of `observable` of the Context's particle-0 x coordinate over `batches` batches of
 * `perBatch` single steps (batch means: their spread gives an honest error for a correlated chain).
 */
std::pair<double, double> batchMean(CGMonteCarloIntegrator& integrator, Context& context, int batches, int perBatch,
                                    const std::function<double(double)>& observable) {
    std::vector<double> means;
    for (int b = 0; b < batches; b++) {
        double m = 0;
        for (int s = 0; s < perBatch; s++) {
            integrator.step(1);
            m += observable(context.getState(State::Positions).getPositions()[0][0]) / perBatch;
        }
        means.push_back(m);
    }
    double mean = 0, var = 0;
    for (double m : means)
        mean += m / batches;
    for (double m : means)
        var += (m - mean) * (m - mean) / (batches - 1);
    return {mean, std::sqrt(var / batches)};
}

void expectErrorContaining(const std::function<void()>& action, const std::string& fragment) {
    try {
        action();
        ADD_FAILURE() << "expected an error containing '" << fragment << "'";
    }
    catch (const OpenMMException& e) {
        EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
}

} // namespace

TEST(CGMonteCarloIntegrator, ManyWalkersSampleTheExactDistribution) {
    // Independent walkers give independent time averages: their spread is an honest error bar.
    const int walkers = 64;
    const double a = 5.0, b = -2.0;
    WalkerSystem ws(walkers, cosineModel(a, b));
    auto integrator = walkerIntegrator(walkers, 0.8, 11);
    Context context(ws.system, *integrator, platform(), platformProperties());
    std::vector<Vec3> start(walkers);
    for (int i = 0; i < walkers; i++)
        start[i] = Vec3(-Pi + 2 * Pi * i / walkers, 0.1 * i, 0);
    context.setPositions(start);
    integrator->step(100); // burn-in
    std::vector<double> meanCos(walkers, 0.0), meanSin(walkers, 0.0);
    const int samples = 600;
    for (int s = 0; s < samples; s++) {
        integrator->step(5);
        std::vector<Vec3> pos = context.getState(State::Positions).getPositions();
        for (int i = 0; i < walkers; i++) {
            ASSERT_GE(pos[i][0], -Pi - 1e-6);
            ASSERT_LT(pos[i][0], Pi + 1e-6);
            // Only the moved coordinate changes.
            ASSERT_NEAR(pos[i][1], start[i][1], 1e-6 * (1 + std::fabs(start[i][1])));
            meanCos[i] += std::cos(pos[i][0]) / samples;
            meanSin[i] += std::sin(pos[i][0]) / samples;
        }
    }
    for (int which = 0; which < 2; which++) {
        const std::vector<double>& values = which == 0 ? meanCos : meanSin;
        double mean = 0, var = 0;
        for (double v : values)
            mean += v / walkers;
        for (double v : values)
            var += (v - mean) * (v - mean) / (walkers - 1);
        const double error = std::sqrt(var / walkers);
        const double exact = exactAverage(a, b, which == 0 ? [](double x) { return std::cos(x); }
                                                            : [](double x) { return std::sin(x); });
        std::cout << "[ info     ] <" << (which == 0 ? "cos" : "sin") << " x> = " << mean << " +- " << error
                  << ", exact " << exact << std::endl;
        EXPECT_NEAR(mean, exact, 5 * error + 1e-3);
    }
    EXPECT_EQ(integrator->getNumProposals(), (long long) walkers * (100 + 5 * samples));
    EXPECT_GT(integrator->getAcceptanceRate(), 0.2);
    EXPECT_LT(integrator->getAcceptanceRate(), 0.9);
    // The walkers' energies are their group energies at the current state.
    std::vector<double> energies = integrator->getWalkerEnergies();
    std::vector<double> groups = ws.force->getGroupEnergies(context);
    ASSERT_EQ(energies.size(), groups.size());
    for (int i = 0; i < walkers; i++)
        EXPECT_NEAR(energies[i], groups[i], 1e-9 + energyTolerance() * std::fabs(groups[i]));
}

TEST(CGMonteCarloIntegrator, OneWalkerUsesEveryForce) {
    // No PMFForce at all: one walker priced by a harmonic well, <x> = x0 and var x = kT / (2k).
    System system;
    system.addParticle(1.0);
    CustomExternalForce* well = new CustomExternalForce("k * (x - x0)^2");
    well->addGlobalParameter("k", 200.0);
    well->addGlobalParameter("x0", 0.3);
    well->addParticle(0);
    system.addForce(well);
    CGMonteCarloIntegrator integrator(300.0, 0.1);
    integrator.addMovedCoordinate(0, 0);
    integrator.setRandomNumberSeed(3);
    Context context(system, integrator, platform(), platformProperties());
    context.setPositions({Vec3(0.3, 0, 0)});
    EXPECT_EQ(integrator.getNumWalkers(), 1);
    integrator.step(500);
    const std::pair<double, double> x = batchMean(integrator, context, 40, 200, [](double v) { return v; });
    EXPECT_NEAR(x.first, 0.3, 5 * x.second + 1e-4);
    const double exactVariance = kT300 / (2 * 200.0);
    const std::pair<double, double> squares =
        batchMean(integrator, context, 40, 200, [](double v) { return (v - 0.3) * (v - 0.3); });
    EXPECT_NEAR(squares.first, exactVariance, 5 * squares.second + 0.02 * exactVariance);
}

TEST(CGMonteCarloIntegrator, SearchRecordsUncertainPointsAndStopsTheirWalkers) {
    // Two members, E0 = 0 and E1 = c cos x: the spread is |c cos x| / 2, largest at x = 0 and pi.
    const double c = 4.0, threshold = 0.9 * c / 2;
    cgflow::nn::MLP zero({2, 1}, Activation::Identity), cosine({2, 1}, Activation::Identity);
    zero.weight(0).setZero();
    zero.bias(0).setZero();
    cosine.weight(0)(0, 0) = c;
    cosine.weight(0)(0, 1) = 0;
    cosine.bias(0).setZero();
    const int walkers = 16;
    WalkerSystem ws(walkers, cgflow::io::encodeMLPEnsemble(cgflow::nn::MLPEnsemble({zero, cosine})));
    auto integrator = walkerIntegrator(walkers, 0.3, 5);
    integrator->setUncertaintyThreshold(threshold);
    integrator->setMinimumSteps(5);
    Context context(ws.system, *integrator, platform(), platformProperties());
    std::vector<Vec3> start(walkers, Vec3(Pi / 2, 0, 0)); // spread 0 here
    context.setPositions(start);
    for (int round = 0; round < 100 && integrator->getNumActiveWalkers() > 0; round++)
        integrator->step(10);
    ASSERT_GT(integrator->getNumFoundPoints(), walkers / 2);
    std::vector<int> stopped = integrator->getWalkersStopped();
    std::vector<double> steps = integrator->getWalkerSteps();
    std::vector<Vec3> pos = context.getState(State::Positions).getPositions();
    for (int i = 0; i < integrator->getNumFoundPoints(); i++) {
        const int w = integrator->getFoundPointWalker(i);
        const std::vector<double> point = integrator->getFoundPointCoordinates(i);
        ASSERT_EQ(point.size(), 1u);
        EXPECT_GT(integrator->getFoundPointStd(i), threshold);
        EXPECT_NEAR(integrator->getFoundPointStd(i), std::fabs(c * std::cos(point[0])) / 2, 1e-4);
        EXPECT_GE(integrator->getFoundPointStep(i), 5);
        EXPECT_EQ(stopped[w], 1);
        EXPECT_EQ(steps[w], integrator->getFoundPointStep(i));
        EXPECT_EQ(pos[w][0], point[0]); // a stopped walker stays where it was found
    }
    // A stopped walker no longer moves; resetWalkers() lets it go again.
    const long long before = integrator->getNumProposals();
    integrator->step(3);
    EXPECT_EQ(integrator->getNumProposals() - before, 3LL * integrator->getNumActiveWalkers());
    std::vector<double> spreads = ws.force->getGroupEnsembleStd(context);
    for (int i = 0; i < integrator->getNumFoundPoints(); i++)
        EXPECT_NEAR(spreads[integrator->getFoundPointWalker(i)], integrator->getFoundPointStd(i), 1e-4);
    integrator->resetWalkers();
    EXPECT_EQ(integrator->getNumActiveWalkers(), walkers);
    integrator->clearFoundPoints();
    EXPECT_EQ(integrator->getNumFoundPoints(), 0);
}

TEST(CGMonteCarloIntegrator, SameSeedSameChain) {
    const int walkers = 8;
    WalkerSystem ws(walkers, cosineModel(3.0, 1.0));
    std::vector<Vec3> start(walkers, Vec3(0.5, 0, 0));
    std::vector<std::vector<Vec3>> finals;
    for (int run = 0; run < 2; run++) {
        auto integrator = walkerIntegrator(walkers, 0.5, 42);
        Context context(ws.system, *integrator, platform(), platformProperties());
        context.setPositions(start);
        integrator->step(30);
        finals.push_back(context.getState(State::Positions).getPositions());
    }
    for (int i = 0; i < walkers; i++)
        EXPECT_EQ(finals[0][i][0], finals[1][i][0]);
}

TEST(CGMonteCarloIntegrator, SerializationRoundTrip) {
    CGMonteCarloIntegrator integrator(310.0, 0.25);
    integrator.addMovedCoordinate(3, 1, 2 * Pi);
    integrator.addMovedCoordinate(4, 0);
    integrator.setMovedCoordinateBounds(1, -0.5, 2.0);
    integrator.setRandomNumberSeed(9);
    integrator.setUncertaintyThreshold(0.5);
    integrator.setMinimumSteps(12);
    std::stringstream buffer;
    XmlSerializer::serialize<Integrator>(&integrator, "Integrator", buffer);
    std::unique_ptr<Integrator> copy(XmlSerializer::deserialize<Integrator>(buffer));
    const CGMonteCarloIntegrator& restored = dynamic_cast<const CGMonteCarloIntegrator&>(*copy);
    EXPECT_EQ(restored.getTemperature(), 310.0);
    EXPECT_EQ(restored.getProposalScale(), 0.25);
    EXPECT_EQ(restored.getRandomNumberSeed(), 9);
    EXPECT_EQ(restored.getUncertaintyThreshold(), 0.5);
    EXPECT_EQ(restored.getMinimumSteps(), 12);
    ASSERT_EQ(restored.getNumMovedCoordinates(), 2);
    EXPECT_EQ(restored.getMovedParticle(0), 3);
    EXPECT_EQ(restored.getMovedAxis(0), 1);
    EXPECT_EQ(restored.getMovedPeriod(0), 2 * Pi);
    EXPECT_EQ(restored.getMovedPeriod(1), 0.0);
    EXPECT_EQ(restored.getMovedLowerBound(1), -0.5);
    EXPECT_EQ(restored.getMovedUpperBound(1), 2.0);
    EXPECT_TRUE(std::isinf(restored.getMovedLowerBound(0)));
}

TEST(CGMonteCarloIntegrator, BoundsRestrictTheChainExactly) {
    // The harmonic well of OneWalkerUsesEveryForce cut at its centre: the chain samples the half-normal,
    // <x - x0> = sqrt(2 var / pi), and never leaves [x0, x0 + 1].
    System system;
    system.addParticle(1.0);
    CustomExternalForce* well = new CustomExternalForce("100 * (x - 0.3)^2");
    well->addParticle(0);
    system.addForce(well);
    CGMonteCarloIntegrator integrator(300.0, 0.1);
    integrator.addMovedCoordinate(0, 0);
    integrator.setMovedCoordinateBounds(0, 0.3, 1.3);
    integrator.setRandomNumberSeed(8);
    Context context(system, integrator, platform(), platformProperties());
    context.setPositions({Vec3(0.35, 0, 0)});
    integrator.step(200);
    const std::pair<double, double> offset = batchMean(integrator, context, 40, 250, [](double v) {
        EXPECT_GE(v, 0.3);
        EXPECT_LE(v, 1.3);
        return v - 0.3;
    });
    const double exact = std::sqrt(2 * (kT300 / 200.0) / Pi);
    EXPECT_NEAR(offset.first, exact, 5 * offset.second + 1e-4);
    expectErrorContaining([&] { integrator.setMovedCoordinateBounds(0, 1.0, 0.5); }, "upper > lower");
    CGMonteCarloIntegrator periodic(300.0, 0.1);
    periodic.addMovedCoordinate(0, 0, 2 * Pi);
    expectErrorContaining([&] { periodic.setMovedCoordinateBounds(0, -1.0, 1.0); }, "periodic");
}

TEST(CGMonteCarloIntegrator, ClearErrors) {
    expectErrorContaining([] { CGMonteCarloIntegrator(300.0, 0.0); }, "proposalScale");
    expectErrorContaining([] { CGMonteCarloIntegrator(-1.0, 0.1); }, "temperature");
    CGMonteCarloIntegrator integrator(300.0, 0.1);
    expectErrorContaining([&] { integrator.addMovedCoordinate(0, 3); }, "axis");
    expectErrorContaining([&] { integrator.addMovedCoordinate(-1, 0); }, "particle");
    expectErrorContaining([&] { integrator.addMovedCoordinate(0, 0, -2.0); }, "period");
    expectErrorContaining([&] { integrator.setUncertaintyThreshold(-0.1); }, "threshold");
    expectErrorContaining([&] { integrator.setMinimumSteps(-1); }, "steps");
    integrator.addMovedCoordinate(0, 0);
    expectErrorContaining([&] { integrator.addMovedCoordinate(0, 0); }, "already");

    auto contextError = [](System& system, std::unique_ptr<CGMonteCarloIntegrator> mc, const std::string& fragment) {
        expectErrorContaining([&] { Context context(system, *mc, platform(), platformProperties()); }, fragment);
    };
    // A threshold on a one-member PMFForce: no spread to threshold.
    {
        WalkerSystem ws(4, cosineModel(1.0, 0.0));
        auto mc = walkerIntegrator(4, 0.1, 1);
        mc->setUncertaintyThreshold(0.5);
        contextError(ws.system, std::move(mc), "at least two ensemble members");
    }
    // A moved coordinate in no group, and one beyond the System.
    {
        WalkerSystem ws(4, cosineModel(1.0, 0.0));
        ws.system.addParticle(1.0);
        auto mc = walkerIntegrator(5, 0.1, 1);
        contextError(ws.system, std::move(mc), "in no particle group");
        auto far = walkerIntegrator(7, 0.1, 1);
        contextError(ws.system, std::move(far), "not in the System");
    }
    // Another energy term beside walkers priced per group.
    {
        WalkerSystem ws(4, cosineModel(1.0, 0.0));
        CustomExternalForce* extra = new CustomExternalForce("x^2");
        extra->addParticle(0);
        ws.system.addForce(extra);
        contextError(ws.system, walkerIntegrator(4, 0.1, 1), "only force with an energy");
    }
}
