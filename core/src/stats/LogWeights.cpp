#include "cgflow/stats/LogWeights.h"

#include "cgflow/Error.h"
#include "cgflow/util/Random.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace cgflow::stats {

namespace {

constexpr double NegativeInfinity = -std::numeric_limits<double>::infinity();
constexpr uint32_t bootstrapStream = 0x424F4F54; // "BOOT": apart from every other use of a seed

void checkLogWeights(const std::vector<double>& logW, const char* function) {
    if (logW.empty())
        throw Error(std::string(function) + ": logW is empty");
    for (size_t i = 0; i < logW.size(); i++)
        if (std::isnan(logW[i]) || logW[i] == std::numeric_limits<double>::infinity())
            throw Error(std::string(function) + ": logW[" + std::to_string(i) + "] is " +
                        (std::isnan(logW[i]) ? "NaN" : "+inf") + " (a log-weight must be finite or -inf)");
}

double maxOf(const std::vector<double>& v) {
    return *std::max_element(v.begin(), v.end());
}

} // namespace

double logSumExp(const std::vector<double>& logW) {
    checkLogWeights(logW, "logSumExp");
    const double top = maxOf(logW);
    if (top == NegativeInfinity)
        return NegativeInfinity;
    double sum = 0;
    for (double v : logW)
        sum += std::exp(v - top);
    return top + std::log(sum);
}

std::vector<double> normalizedWeights(const std::vector<double>& logW) {
    const double total = logSumExp(logW);
    if (total == NegativeInfinity)
        throw Error("normalizedWeights: every weight is zero (all logW are -inf)");
    std::vector<double> w(logW.size());
    for (size_t i = 0; i < w.size(); i++)
        w[i] = std::exp(logW[i] - total);
    return w;
}

double effectiveSampleSize(const std::vector<double>& logW) {
    checkLogWeights(logW, "effectiveSampleSize");
    const double top = maxOf(logW);
    if (top == NegativeInfinity)
        return 0;
    double s1 = 0, s2 = 0;
    for (double v : logW) {
        const double w = std::exp(v - top);
        s1 += w;
        s2 += w * w;
    }
    return s1 * s1 / s2;
}

double effectiveSampleFraction(const std::vector<double>& logW) {
    return effectiveSampleSize(logW) / logW.size();
}

Estimate logMeanExp(const std::vector<double>& logW) {
    Estimate e;
    e.value = logSumExp(logW) - std::log(static_cast<double>(logW.size()));
    const double ess = effectiveSampleSize(logW);
    e.error = ess > 0 ? std::sqrt(std::max(0.0, 1.0 / ess - 1.0 / logW.size()))
                      : std::numeric_limits<double>::infinity();
    return e;
}

Estimate selfNormalizedMean(const std::vector<double>& logW, const std::vector<double>& values) {
    if (values.size() != logW.size())
        throw Error("selfNormalizedMean: values has " + std::to_string(values.size()) + " entries but logW has " +
                    std::to_string(logW.size()));
    const std::vector<double> w = normalizedWeights(logW);
    Estimate e;
    for (size_t i = 0; i < w.size(); i++) {
        if (w[i] == 0)
            continue;
        if (!std::isfinite(values[i]))
            throw Error("selfNormalizedMean: values[" + std::to_string(i) +
                        "] is not finite but its weight is positive");
        e.value += w[i] * values[i];
    }
    double variance = 0;
    for (size_t i = 0; i < w.size(); i++)
        if (w[i] > 0)
            variance += w[i] * w[i] * (values[i] - e.value) * (values[i] - e.value);
    e.error = std::sqrt(variance);
    return e;
}

int bootstrapIndex(uint64_t seed, int resample, int i, int n) {
    const util::PhiloxUniforms u =
        util::philoxOpenUniforms(seed, bootstrapStream, static_cast<uint64_t>(i), static_cast<uint32_t>(resample));
    return std::min(n - 1, static_cast<int>(u.u[0] * n));
}

Estimate bootstrap(const std::vector<double>& logW, const std::vector<double>& values, const Statistic& statistic,
                   int numResamples, uint64_t seed) {
    checkLogWeights(logW, "bootstrap");
    if (!values.empty() && values.size() != logW.size())
        throw Error("bootstrap: values has " + std::to_string(values.size()) + " entries but logW has " +
                    std::to_string(logW.size()) + " (or pass no values)");
    if (numResamples < 2)
        throw Error("bootstrap: numResamples must be >= 2, got " + std::to_string(numResamples));
    const int n = static_cast<int>(logW.size());
    Estimate e;
    e.value = statistic(logW, values);
    std::vector<double> statistics(numResamples), w(n), g(values.empty() ? 0 : n);
    for (int b = 0; b < numResamples; b++) {
        for (int i = 0; i < n; i++) {
            const int k = bootstrapIndex(seed, b, i, n);
            w[i] = logW[k];
            if (!values.empty())
                g[i] = values[k];
        }
        try {
            statistics[b] = statistic(w, g);
        } catch (const Error& error) {
            // Typically a resample that drew none of the few positive-weight samples: with k of them a
            // fraction of about exp(-k) of the resamples does, and the bootstrap is meaningless there.
            throw Error("bootstrap: the statistic failed on resample " + std::to_string(b) + " (too few samples with "
                        "positive weight for a bootstrap?): " + error.what());
        }
        if (std::isnan(statistics[b]))
            throw Error("bootstrap: the statistic is NaN on resample " + std::to_string(b));
        if (std::isinf(statistics[b])) {
            // e.g. log Z = -inf on a resample with no positive weight: the spread is unbounded.
            e.error = std::numeric_limits<double>::infinity();
            return e;
        }
    }
    double mean = 0;
    for (double v : statistics)
        mean += v / numResamples;
    double variance = 0;
    for (double v : statistics)
        variance += (v - mean) * (v - mean) / (numResamples - 1);
    e.error = std::sqrt(variance);
    return e;
}

Estimate bootstrapMean(const std::vector<double>& logW, const std::vector<double>& values, int numResamples,
                       uint64_t seed) {
    if (values.size() != logW.size())
        throw Error("bootstrapMean: values has " + std::to_string(values.size()) + " entries but logW has " +
                    std::to_string(logW.size()));
    return bootstrap(
        logW, values,
        [](const std::vector<double>& w, const std::vector<double>& g) { return selfNormalizedMean(w, g).value; },
        numResamples, seed);
}

Estimate bootstrapLogZ(const std::vector<double>& logW, int numResamples, uint64_t seed) {
    return bootstrap(
        logW, {}, [](const std::vector<double>& w, const std::vector<double>&) { return logMeanExp(w).value; },
        numResamples, seed);
}

} // namespace cgflow::stats
