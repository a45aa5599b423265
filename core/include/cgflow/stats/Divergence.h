#ifndef CGFLOW_STATS_DIVERGENCE_H_
#define CGFLOW_STATS_DIVERGENCE_H_

#include <vector>

namespace cgflow::stats {

/**
 * Divergences between two histograms on the same grid (probabilities, or any non-negative
 * weights: each is normalized first). Empty bins would make the logarithms infinite, so every bin
 * gets an epsilon floor: p_b <- (p_b + epsilon) / (1 + B epsilon), likewise q. The default
 * epsilon = 1e-10 changes a well-sampled divergence by O(B epsilon) and is part of the stated
 * definition, as in the papers' codes. Natural logarithms (nats). Errors: different sizes, empty
 * grids, negative or non-finite entries, an all-zero grid, epsilon < 0.
 */
constexpr double DefaultDivergenceEpsilon = 1e-10;

/** Forward KL D(p || q) = sum p ln(p / q). */
double klDivergence(const std::vector<double>& p, const std::vector<double>& q,
                    double epsilon = DefaultDivergenceEpsilon);

/** Jensen-Shannon divergence: (D(p || m) + D(q || m)) / 2 with m = (p + q) / 2; symmetric, in [0, ln 2]. */
double jensenShannonDivergence(const std::vector<double>& p, const std::vector<double>& q,
                               double epsilon = DefaultDivergenceEpsilon);

/**
 * The PMF error of the CG Boltzmann-generator paper (Chen, Zhao, Eckwert & Zavadlav, "Metrics",
 * section 4): the squared distance between the negative logarithms of the sampled and reference
 * densities, which weighs low-density regions more than JS does. Here p is the sampled histogram,
 * q the reference, and d_b = ln p_b - ln q_b over the bins where the reference is populated (q_b > 0;
 * elsewhere there is no reference PMF to compare with), p with the epsilon floor so that a sampler
 * that misses populated reference bins is penalized heavily. PMFs are defined up to a constant, so
 * the error is taken after the best constant shift: min_c mean_b (d_b - c)^2 = the variance of d_b.
 * Units: kT^2 (nats^2); a mean, so it does not grow with the number of bins.
 */
double pmfError(const std::vector<double>& p, const std::vector<double>& q, double epsilon = DefaultDivergenceEpsilon);

} // namespace cgflow::stats

#endif
