#ifndef CGFLOW_STATS_MOMENTS_H_
#define CGFLOW_STATS_MOMENTS_H_

#include <cmath>
#include <utility>

namespace cgflow::stats {

/**
 * Mean and population standard deviation (ddof = 0) of n >= 1 values: the spread of an ensemble's
 * members that PMFForce reports and CGMonteCarloIntegrator thresholds. Two passes, because the
 * one-pass E[x^2] - E[x]^2 cancels badly when the values agree closely (an ensemble on its data).
 */
inline std::pair<double, double> meanAndStd(const double* values, int n) {
    double mean = 0;
    for (int i = 0; i < n; i++)
        mean += values[i];
    mean /= n;
    double variance = 0;
    for (int i = 0; i < n; i++)
        variance += (values[i] - mean) * (values[i] - mean);
    return {mean, std::sqrt(variance / n)};
}

} // namespace cgflow::stats

#endif
