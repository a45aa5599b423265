#include "cgflow/stats/Clipping.h"

#include "cgflow/Error.h"
#include "cgflow/stats/LogWeights.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace cgflow::stats {

namespace {

constexpr double NegativeInfinity = -std::numeric_limits<double>::infinity();

/** Indices of the finite entries, largest log-weight first (ties by index, so results are deterministic). */
std::vector<size_t> finiteByDescendingWeight(const std::vector<double>& logW, const char* function) {
    std::vector<size_t> order;
    for (size_t i = 0; i < logW.size(); i++) {
        if (std::isnan(logW[i]) || logW[i] == std::numeric_limits<double>::infinity())
            throw Error(std::string(function) + ": logW[" + std::to_string(i) + "] is NaN or +inf");
        if (logW[i] != NegativeInfinity)
            order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logW[a] > logW[b]; });
    return order;
}

} // namespace

std::vector<double> dropTopFraction(const std::vector<double>& logW, double fraction) {
    if (!(fraction >= 0 && fraction < 1))
        throw Error("dropTopFraction: fraction must be in [0, 1), got " + std::to_string(fraction));
    const std::vector<size_t> order = finiteByDescendingWeight(logW, "dropTopFraction");
    // The 1e-12 keeps fraction * m that should be an integer (0.3 * 10) from rounding up past it.
    const size_t count = static_cast<size_t>(std::ceil(fraction * order.size() - 1e-12));
    if (!order.empty() && count >= order.size())
        throw Error("dropTopFraction: fraction " + std::to_string(fraction) + " would drop all " +
                    std::to_string(order.size()) + " finite log-weights");
    std::vector<double> out = logW;
    for (size_t j = 0; j < count; j++)
        out[order[j]] = NegativeInfinity;
    return out;
}

std::vector<double> clipTopK(const std::vector<double>& logW, int k) {
    const std::vector<size_t> order = finiteByDescendingWeight(logW, "clipTopK");
    if (k < 0 || static_cast<size_t>(k) > order.size())
        throw Error("clipTopK: k must be in [0, " + std::to_string(order.size()) + "] (the finite log-weights), got " +
                    std::to_string(k));
    std::vector<double> out = logW;
    if (k == 0)
        return out;
    const double floor = logW[order[k - 1]];
    for (int j = 0; j < k; j++)
        out[order[j]] = floor;
    return out;
}

std::vector<double> clipAbovePercentile(const std::vector<double>& logW, double percentile) {
    if (!(percentile > 0 && percentile <= 100))
        throw Error("clipAbovePercentile: percentile must be in (0, 100], got " + std::to_string(percentile));
    std::vector<size_t> order = finiteByDescendingWeight(logW, "clipAbovePercentile");
    if (order.empty())
        throw Error("clipAbovePercentile: logW has no finite entries");
    std::vector<double> sorted;
    for (auto it = order.rbegin(); it != order.rend(); ++it)
        sorted.push_back(logW[*it]);
    // numpy's default ("linear") percentile.
    const double position = percentile / 100.0 * (sorted.size() - 1);
    const size_t below = static_cast<size_t>(std::floor(position));
    const size_t above = std::min(below + 1, sorted.size() - 1);
    const double threshold = sorted[below] + (position - below) * (sorted[above] - sorted[below]);
    std::vector<double> out = logW;
    for (double& v : out)
        if (v > threshold)
            v = threshold;
    return out;
}

std::vector<ClippingRow> clippingReport(const std::vector<double>& logW, const std::string& policy,
                                        const std::vector<double>& levels,
                                        const std::function<double(const std::vector<double>&)>& statistic) {
    if (policy != "percentile" && policy != "drop_fraction" && policy != "top_k")
        throw Error("clippingReport: policy must be \"percentile\", \"drop_fraction\" or \"top_k\", got \"" + policy + "\"");
    std::vector<ClippingRow> rows;
    for (double level : levels) {
        std::vector<double> clipped;
        if (policy == "percentile")
            clipped = clipAbovePercentile(logW, level);
        else if (policy == "drop_fraction")
            clipped = dropTopFraction(logW, level);
        else {
            if (level != std::floor(level))
                throw Error("clippingReport: top_k levels must be integers, got " + std::to_string(level));
            clipped = clipTopK(logW, static_cast<int>(level));
        }
        ClippingRow row;
        row.level = level;
        row.estimate = statistic(clipped);
        row.ess = effectiveSampleSize(clipped);
        for (size_t i = 0; i < logW.size(); i++)
            row.numModified += clipped[i] != logW[i];
        rows.push_back(row);
    }
    return rows;
}

} // namespace cgflow::stats
