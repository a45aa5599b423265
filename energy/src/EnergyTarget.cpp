#include "cgflow/energy/EnergyTarget.h"
#include "cgflow/Error.h"
#include "openmm/Context.h"
#include "openmm/OpenMMException.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include "openmm/serialization/XmlSerializer.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <thread>

using namespace cgflow::energy;
using cgflow::Error;

struct EnergyTarget::Worker {
    std::unique_ptr<OpenMM::System> system;
    std::unique_ptr<OpenMM::VerletIntegrator> integrator;
    std::unique_ptr<OpenMM::Context> context;
    std::vector<OpenMM::Vec3> positions;
};

EnergyTarget::EnergyTarget(const std::string& systemXml, const std::string& platformName, int numThreads,
                           const std::map<std::string, std::string>& properties, int forceGroups)
    : forceGroups(forceGroups), platformName(platformName) {
    if (numThreads < 1)
        throw Error("EnergyTarget: numThreads must be >= 1, got " + std::to_string(numThreads));
    OpenMM::Platform* platform;
    try {
        platform = &OpenMM::Platform::getPlatformByName(platformName);
    }
    catch (const OpenMM::OpenMMException&) {
        std::string names;
        for (int i = 0; i < OpenMM::Platform::getNumPlatforms(); i++)
            names += (i ? ", " : "") + OpenMM::Platform::getPlatform(i).getName();
        throw Error("EnergyTarget: platformName '" + platformName + "' is not available (available: " + names + ")");
    }
    for (int t = 0; t < numThreads; t++) {
        auto worker = std::make_unique<Worker>();
        std::stringstream xml(systemXml);
        try {
            worker->system.reset(OpenMM::XmlSerializer::deserialize<OpenMM::System>(xml));
        }
        catch (const std::exception& e) {
            throw Error(std::string("EnergyTarget: systemXml is not a serialized OpenMM System: ") + e.what());
        }
        numParticles = worker->system->getNumParticles();
        if (numParticles == 0)
            throw Error("EnergyTarget: the System has no particles");
        worker->integrator = std::make_unique<OpenMM::VerletIntegrator>(0.001);
        try {
            worker->context = std::make_unique<OpenMM::Context>(*worker->system, *worker->integrator, *platform, properties);
        }
        catch (const OpenMM::OpenMMException& e) {
            throw Error(std::string("EnergyTarget: could not create a Context: ") + e.what());
        }
        worker->positions.resize(numParticles);
        workers.push_back(std::move(worker));
    }
}

EnergyTarget::~EnergyTarget() = default;

void EnergyTarget::setEnergyRegularization(double high, double max) {
    if (!std::isfinite(high) || !std::isfinite(max) || max <= high)
        throw Error("EnergyTarget.setEnergyRegularization: need finite eHigh < eMax, got eHigh=" + std::to_string(high) +
                    ", eMax=" + std::to_string(max));
    eHigh = high;
    eMax = max;
    regularize = true;
}

void EnergyTarget::clearEnergyRegularization() {
    regularize = false;
}

void EnergyTarget::evaluateChunk(Worker& worker, const double* positions, int begin, int end, double* energies,
                                 double* forces, uint8_t* finite, double* rawEnergies, int* nonFinite) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const int n = numParticles;
    int types = OpenMM::State::Energy | (forces != nullptr ? OpenMM::State::Forces : 0);
    int bad = 0;
    for (int b = begin; b < end; b++) {
        const double* x = positions + (size_t) b * n * 3;
        for (int i = 0; i < n; i++)
            worker.positions[i] = OpenMM::Vec3(x[3 * i], x[3 * i + 1], x[3 * i + 2]);
        double energy = nan;
        double* f = (forces != nullptr ? forces + (size_t) b * n * 3 : nullptr);
        bool ok = true;
        try {
            worker.context->setPositions(worker.positions);
            OpenMM::State state = worker.context->getState(types, false, forceGroups);
            energy = state.getPotentialEnergy();
            ok = std::isfinite(energy);
            if (f != nullptr) {
                const std::vector<OpenMM::Vec3>& stateForces = state.getForces();
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < 3; k++) {
                        f[3 * i + k] = stateForces[i][k];
                        ok = ok && std::isfinite(stateForces[i][k]);
                    }
            }
        }
        catch (const std::exception&) {
            // OpenMM refuses some clashes outright (e.g. NaN coordinates on GPU platforms):
            // the configuration is data, flagged like any other non-finite result.
            ok = false;
            energy = nan;
            if (f != nullptr)
                for (int i = 0; i < 3 * n; i++)
                    f[i] = nan;
        }
        if (rawEnergies != nullptr)
            rawEnergies[b] = energy;
        if (regularize && ok && energy > eHigh) {
            double excess = energy - eHigh;
            double regularized = eHigh + std::log1p(excess);
            double slope = 1.0 / (1.0 + excess);
            if (regularized >= eMax) {
                regularized = eMax;
                slope = 0.0;
            }
            energy = regularized;
            if (f != nullptr)
                for (int i = 0; i < 3 * n; i++)
                    f[i] *= slope;
        }
        energies[b] = energy;
        if (finite != nullptr)
            finite[b] = ok ? 1 : 0;
        if (!ok)
            bad++;
    }
    *nonFinite = bad;
}

int EnergyTarget::evaluate(const double* positions, int batch, double* energies, double* forces, uint8_t* finite,
                           const std::string& phase, double* rawEnergies) {
    if (batch < 0)
        throw Error("EnergyTarget.evaluate: batch must be >= 0, got " + std::to_string(batch));
    if (batch > 0 && (positions == nullptr || energies == nullptr))
        throw Error("EnergyTarget.evaluate: positions and energies must not be null");
    std::lock_guard<std::mutex> lock(evaluateMutex);
    int numThreads = std::min((int) workers.size(), std::max(batch, 1));
    std::vector<int> nonFinite(numThreads, 0);
    if (numThreads == 1)
        evaluateChunk(*workers[0], positions, 0, batch, energies, forces, finite, rawEnergies, &nonFinite[0]);
    else {
        // Contiguous chunks, so which Context evaluates which configuration is fixed by the batch
        // size and thread count alone; every Context gives the same result for the same input.
        std::vector<std::thread> threads;
        for (int t = 0; t < numThreads; t++) {
            int begin = (int) ((long long) batch * t / numThreads);
            int end = (int) ((long long) batch * (t + 1) / numThreads);
            threads.emplace_back([=, &nonFinite]() {
                evaluateChunk(*workers[t], positions, begin, end, energies, forces, finite, rawEnergies, &nonFinite[t]);
            });
        }
        for (std::thread& thread : threads)
            thread.join();
    }
    {
        std::lock_guard<std::mutex> countLock(countMutex);
        counts[phase] += batch;
    }
    int total = 0;
    for (int n : nonFinite)
        total += n;
    return total;
}

long long EnergyTarget::getEvaluationCount(const std::string& phase) const {
    std::lock_guard<std::mutex> lock(countMutex);
    auto it = counts.find(phase);
    return it == counts.end() ? 0 : it->second;
}

long long EnergyTarget::getTotalEvaluationCount() const {
    std::lock_guard<std::mutex> lock(countMutex);
    long long total = 0;
    for (const auto& item : counts)
        total += item.second;
    return total;
}

std::map<std::string, long long> EnergyTarget::getEvaluationCounts() const {
    std::lock_guard<std::mutex> lock(countMutex);
    return counts;
}

void EnergyTarget::resetEvaluationCounts(const std::string& phase) {
    std::lock_guard<std::mutex> lock(countMutex);
    if (phase.empty())
        counts.clear();
    else
        counts.erase(phase);
}
