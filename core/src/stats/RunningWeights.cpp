#include "cgflow/stats/RunningWeights.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace cgflow::stats {

namespace {
constexpr double NegativeInfinity = -std::numeric_limits<double>::infinity();
constexpr double NaN = std::numeric_limits<double>::quiet_NaN();
} // namespace

double logAddExp(double a, double b) {
    if (a == NegativeInfinity)
        return b;
    if (b == NegativeInfinity)
        return a;
    const double high = std::max(a, b);
    return high + std::log1p(std::exp(-std::fabs(a - b)));
}

void RunningWeights::add(double logWeight) {
    if (std::isnan(logWeight) || logWeight == std::numeric_limits<double>::infinity())
        throw Error("RunningWeights::add: logWeight must be finite or -inf (a zero weight), got " +
                    std::to_string(logWeight));
    count++;
    if (logWeight == NegativeInfinity) {
        numZero++;
        return;
    }
    logSumW = logAddExp(logSumW, logWeight);
    logSumW2 = logAddExp(logSumW2, 2 * logWeight);
}

void RunningWeights::reset() {
    *this = RunningWeights();
}

double RunningWeights::getEffectiveSampleSize() const {
    if (logSumW == NegativeInfinity)
        return 0.0;
    return std::exp(2 * logSumW - logSumW2);
}

double RunningWeights::getEffectiveSampleFraction() const {
    return count == 0 ? 0.0 : getEffectiveSampleSize() / count;
}

Estimate RunningWeights::getLogZ() const {
    if (count == 0)
        return {NaN, NaN};
    const double n = static_cast<double>(count);
    const double ess = getEffectiveSampleSize();
    if (ess == 0)
        return {NegativeInfinity, std::numeric_limits<double>::infinity()};
    // Var(mean w) / mean(w)^2 = (n sum w^2 / (sum w)^2 - 1) / n = 1/ESS - 1/n.
    return {logSumW - std::log(n), std::sqrt(std::max(0.0, 1.0 / ess - 1.0 / n))};
}

} // namespace cgflow::stats
