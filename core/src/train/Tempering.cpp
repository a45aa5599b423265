#include "cgflow/train/Tempering.h"

#include "cgflow/Error.h"
#include "cgflow/stats/LogWeights.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace cgflow::train {

using stats::effectiveSampleSize;
using stats::logSumExp;

namespace {

constexpr double NegativeInfinity = -std::numeric_limits<double>::infinity();

void checkInputs(const std::vector<double>& energies, const std::vector<double>& logQ,
                 const std::vector<double>& objectiveLogQ, double beta, const char* function) {
    if (energies.empty())
        throw Error(std::string(function) + ": energies is empty");
    if (logQ.size() != energies.size())
        throw Error(std::string(function) + ": logQ has " + std::to_string(logQ.size()) + " values but energies has " +
                    std::to_string(energies.size()));
    if (!objectiveLogQ.empty() && objectiveLogQ.size() != energies.size())
        throw Error(std::string(function) + ": objectiveLogQ has " + std::to_string(objectiveLogQ.size()) +
                    " values, expected " + std::to_string(energies.size()) + " (or none)");
    if (!(beta >= 0) || !std::isfinite(beta))
        throw Error(std::string(function) + ": beta must be finite and >= 0, got " + std::to_string(beta));
}

bool finiteSample(const std::vector<double>& energies, const std::vector<double>& logQ,
                  const std::vector<double>& objectiveLogQ, size_t i) {
    return std::isfinite(energies[i]) && std::isfinite(logQ[i]) && (objectiveLogQ.empty() || std::isfinite(objectiveLogQ[i]));
}

std::vector<double> logWeights(const std::vector<double>& energies, const std::vector<double>& logQ,
                               const std::vector<double>& objectiveLogQ, double beta) {
    std::vector<double> logW(energies.size());
    for (size_t i = 0; i < energies.size(); i++)
        logW[i] = finiteSample(energies, logQ, objectiveLogQ, i) ? -beta * energies[i] - logQ[i] : NegativeInfinity;
    return logW;
}

} // namespace

TemperingStatistics temperingStatistics(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                                        const std::vector<double>& objectiveLogQ) {
    checkInputs(energies, logQ, objectiveLogQ, beta, "temperingStatistics");
    TemperingStatistics s;
    double meanObjective = 0;
    for (size_t i = 0; i < energies.size(); i++)
        if (finiteSample(energies, logQ, objectiveLogQ, i)) {
            s.numFinite++;
            s.meanEnergy += energies[i];
            meanObjective += objectiveLogQ.empty() ? logQ[i] : objectiveLogQ[i];
        }
    if (s.numFinite == 0)
        throw Error("temperingStatistics: no sample has a finite energy and log q");
    s.numSamples = static_cast<int>(energies.size());
    s.meanEnergy /= s.numFinite;
    meanObjective /= s.numFinite;
    const std::vector<double> logW = logWeights(energies, logQ, objectiveLogQ, beta);
    // Weight-zero samples count in n (one convention with the integrator and the weights engine).
    s.logZ = logSumExp(logW) - std::log(static_cast<double>(s.numSamples));
    s.essFraction = effectiveSampleSize(logW) / s.numSamples;
    s.klEstimate = beta * s.meanEnergy + meanObjective + s.logZ;
    return s;
}

double relativeKLIncrease(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                          double deltaBeta, const std::vector<double>& objectiveLogQ, double klFloor) {
    if (!(deltaBeta >= 0) || !std::isfinite(deltaBeta))
        throw Error("relativeKLIncrease: deltaBeta must be finite and >= 0, got " + std::to_string(deltaBeta));
    if (!(klFloor > 0))
        throw Error("relativeKLIncrease: klFloor must be > 0, got " + std::to_string(klFloor));
    const TemperingStatistics s = temperingStatistics(energies, logQ, beta, objectiveLogQ);
    // log Z(beta + d) - log Z(beta) = log sum_i W_i exp(-d U_i), normalized weights W at beta.
    std::vector<double> logW = logWeights(energies, logQ, objectiveLogQ, beta);
    const double logTotal = logSumExp(logW);
    for (size_t i = 0; i < logW.size(); i++)
        if (logW[i] != NegativeInfinity)
            logW[i] += -deltaBeta * energies[i] - logTotal;
    const double logRatio = logSumExp(logW);
    return (logRatio + deltaBeta * s.meanEnergy) / std::max(s.klEstimate, klFloor);
}

double adaptiveTemperatureStep(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                               double betaTarget, double maxRelativeIncrease, double maxStep,
                               const std::vector<double>& objectiveLogQ, double klFloor) {
    if (!(betaTarget > beta))
        throw Error("adaptiveTemperatureStep: betaTarget must exceed beta (" + std::to_string(betaTarget) + " <= " +
                    std::to_string(beta) + ")");
    if (!(maxRelativeIncrease > 0) || !(maxStep > 0))
        throw Error("adaptiveTemperatureStep: maxRelativeIncrease and maxStep must be > 0");
    const double upper = std::min(maxStep, betaTarget - beta);
    auto c = [&](double d) { return relativeKLIncrease(energies, logQ, beta, d, objectiveLogQ, klFloor); };
    if (c(upper) <= maxRelativeIncrease)
        return upper;
    double low = 0, high = upper;
    while (high - low > 1e-6 * upper) {
        const double mid = 0.5 * (low + high);
        (c(mid) <= maxRelativeIncrease ? low : high) = mid;
    }
    return low > 0 ? low : high; // never a zero step: the smallest bracket end that moves beta
}

double shrinkingTemperatureStep(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                                double betaTarget, double maxRelativeIncrease, double maxStep,
                                const std::vector<double>& objectiveLogQ, double klFloor, int maxShrinks) {
    if (!(betaTarget > beta))
        throw Error("shrinkingTemperatureStep: betaTarget must exceed beta");
    if (!(maxRelativeIncrease > 0) || !(maxStep > 0) || maxShrinks < 0)
        throw Error("shrinkingTemperatureStep: maxRelativeIncrease and maxStep must be > 0 and maxShrinks >= 0");
    double f = 1.0;
    double step = std::min(maxStep, betaTarget - beta);
    for (int s = 0; s < maxShrinks; s++) {
        if (relativeKLIncrease(energies, logQ, beta, step, objectiveLogQ, klFloor) <= maxRelativeIncrease)
            break;
        f *= 0.6;
        step = std::min(f * maxStep, betaTarget - beta);
    }
    return step;
}

} // namespace cgflow::train
