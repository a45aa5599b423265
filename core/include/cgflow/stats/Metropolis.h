#ifndef CGFLOW_STATS_METROPOLIS_H_
#define CGFLOW_STATS_METROPOLIS_H_

#include <cmath>
#include <limits>

namespace cgflow::stats {

/**
 * The independence Metropolis-Hastings test of a Boltzmann generator. Proposals x' come from the
 * flow q independently of the state x, the target is exp(-beta U), so with importance weights
 * w = exp(-beta U) / q the move is accepted with probability min(1, w(x') / w(x)); this makes the
 * chain exact for exp(-beta U) whatever q is (Liu 1996; Noe et al. 2019).
 *
 * Arguments are log-weights; `uniform` is a draw from U(0, 1), used only when w(x') < w(x). A
 * proposal of weight zero (log w = -inf: a clash, outside the flow's support) is never accepted; a
 * current state of weight zero is left for any proposal of positive weight.
 */
inline bool metropolisAccept(double logWeightProposed, double logWeightCurrent, double uniform) {
    constexpr double zeroWeight = -std::numeric_limits<double>::infinity();
    if (logWeightProposed == zeroWeight)
        return false;
    if (logWeightCurrent == zeroWeight || logWeightProposed >= logWeightCurrent)
        return true;
    return std::log(uniform) < logWeightProposed - logWeightCurrent;
}

} // namespace cgflow::stats

#endif
