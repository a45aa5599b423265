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
 * The PMF error of the CG Boltzmann-generator paper (Chen, Zhao, Eckwert & Zavadlav, section 4,
 * "Metrics"): "the squared distance between the negative logarithms of the sampled and reference
 * densities, which gives more weight to low-density regions compared to JS divergence", citing
 * Plainer et al. 2025 and Durumeric et al. 2024. The paper gives no formula; this is the one of the
 * code it cites (Plainer et al.'s evaluation, `helper_metrics_2d` with `fe_sq_error`, weight "mix",
 * baseline 1e-6, itself Durumeric et al.'s `grid_pointwise`), on our grids:
 *
 *   B      = the bins populated in p or in q (a bin empty in both carries no information),
 *   p~, q~ = p, q (each normalized to sum 1), with an empty bin of B set to `baseline`,
 *   m_b    = (p~_b + q~_b) / 2, normalized to sum 1 over B (the mixture density),
 *   error  = sum_{b in B} m_b (ln p~_b - ln q~_b)^2.
 *
 * p is the sampled grid, q the reference; the error is symmetric in them. Densities are normalized,
 * so there is no free additive constant in -ln p. Units: kT^2 (nats^2); multiply by (kT)^2 for
 * (kJ/mol)^2. A sampler that misses a populated reference bin pays (ln(baseline / q_b))^2 (85 for
 * q_b = 0.01 and baseline 1e-6) weighted by half that bin's reference mass, so the metric is
 * dominated by missed regions and depends on the baseline, as in the papers; report it with the
 * baseline. Errors: as above (p and q named), and baseline not in (0, 1].
 */
constexpr double DefaultPmfErrorBaseline = 1e-6;
double pmfError(const std::vector<double>& p, const std::vector<double>& q, double baseline = DefaultPmfErrorBaseline);

} // namespace cgflow::stats

#endif
