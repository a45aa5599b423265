#ifndef CGFLOW_STATS_RUNNINGWEIGHTS_H_
#define CGFLOW_STATS_RUNNINGWEIGHTS_H_

#include "cgflow/stats/LogWeights.h"

#include <limits>

namespace cgflow::stats {

/** log(exp(a) + exp(b)) without overflow; either may be -inf (a zero weight). */
double logAddExp(double a, double b);

/**
 * The importance-weight statistics of a stream of log-weights that arrive one at a time (a
 * Boltzmann-generator chain, a reporter): the same quantities as the batch functions of
 * LogWeights.h, kept in O(1) memory as log(sum w) and log(sum w^2), accumulated with logAddExp so
 * that any range of log w is safe.
 *
 * Conventions as in LogWeights.h: log w = -inf is a weight of zero (a clash, a sample outside the
 * flow's support) and counts as a sample; NaN or +inf is an Error.
 */
class RunningWeights {
public:
    /** Adds one log-weight. */
    void add(double logWeight);
    /** Forgets every weight. */
    void reset();

    /** Samples added, zero weights included. */
    long long getCount() const { return count; }
    /** Samples whose weight is zero (log w = -inf). */
    long long getNumZero() const { return numZero; }
    /** log sum w and log sum w^2 (-inf while every weight is zero). */
    double getLogSumWeights() const { return logSumW; }
    double getLogSumSquaredWeights() const { return logSumW2; }

    /** Kish ESS (sum w)^2 / sum w^2, in [1, count]; 0 while every weight is zero or none was added. */
    double getEffectiveSampleSize() const;
    /** ESS / count; 0 before the first sample. */
    double getEffectiveSampleFraction() const;
    /**
     * log Z = log mean w with its delta-method standard error sqrt(1/ESS - 1/n), as logMeanExp().
     * No sample: value and error NaN. Every weight zero: value -inf, error +inf.
     */
    Estimate getLogZ() const;

private:
    long long count = 0, numZero = 0;
    double logSumW = -std::numeric_limits<double>::infinity();
    double logSumW2 = -std::numeric_limits<double>::infinity();
};

} // namespace cgflow::stats

#endif
