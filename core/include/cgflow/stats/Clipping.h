#ifndef CGFLOW_STATS_CLIPPING_H_
#define CGFLOW_STATS_CLIPPING_H_

#include <functional>
#include <string>
#include <vector>

namespace cgflow::stats {

/**
 * Weight clipping: the bias-for-variance trades of the papers. Each returns new log-weights in the
 * original order (zero-weight entries, -inf, stay as they are and never count among the "largest").
 */

/**
 * The largest ceil(fraction * m) of the m finite log-weights set to -inf (dropped); fraction in
 * [0, 1), and at least one finite entry must remain. This is the CG-BG paper's rule ("discarding the
 * top 1 % of samples with the largest log-weights", section G.2 and Algorithm 3): fraction 0.01.
 * Ties at the cut are broken by index, so the result is deterministic.
 */
std::vector<double> dropTopFraction(const std::vector<double>& logW, double fraction);

/**
 * The k largest log-weights set to the smallest among them, the k-th largest (the conditional-flow
 * paper's rule for its PMF estimate, k = 3 of 30). k in [0, number of finite entries].
 */
std::vector<double> clipTopK(const std::vector<double>& logW, int k);

/**
 * Log-weights above the given percentile (of the finite ones, linear interpolation between order
 * statistics as numpy's default, percentile in (0, 100]) set to that percentile's value: weight
 * truncation at a quantile. Unlike dropTopFraction it keeps the clipped samples, at the cap (less
 * bias, more variance). The CG-BG paper discards its top 1 % instead: dropTopFraction(logW, 0.01).
 */
std::vector<double> clipAbovePercentile(const std::vector<double>& logW, double percentile);

/** How an estimate moves with the clipping level. */
struct ClippingRow {
    double level = 0;         // the percentile, fraction or k that was applied
    double estimate = 0;      // statistic of the clipped log-weights
    double ess = 0;           // Kish ESS of the clipped log-weights
    int numModified = 0;      // entries the clipping changed
};

/**
 * For each level, clip with the named policy ("percentile", "drop_fraction" or "top_k") and evaluate
 * statistic on the clipped log-weights (e.g. a self-normalized mean or log Z).
 */
std::vector<ClippingRow> clippingReport(const std::vector<double>& logW, const std::string& policy,
                                        const std::vector<double>& levels,
                                        const std::function<double(const std::vector<double>&)>& statistic);

} // namespace cgflow::stats

#endif
