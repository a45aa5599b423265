#ifndef CGFLOW_STATS_LOGWEIGHTS_H_
#define CGFLOW_STATS_LOGWEIGHTS_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace cgflow::stats {

/**
 * The weights engine: every workflow ends in self-normalized importance sampling with log-weights
 * log w_i = -beta U(x_i) - log q(x_i) (or a CG analogue). Everything here works on log-weights in
 * double with log-sum-exp, so weights spanning hundreds of nats are safe.
 *
 * Conventions for every function: log w = -inf is a weight of zero (a clash, a rejected or
 * out-of-support sample) and is allowed; NaN or +inf is an Error naming the argument; an empty
 * array is an Error except where stated. Nothing is clamped silently.
 */

/** log sum exp(logW); -inf when every entry is -inf. */
double logSumExp(const std::vector<double>& logW);

/** w_i / sum w (sums to 1). Error if every weight is zero. */
std::vector<double> normalizedWeights(const std::vector<double>& logW);

/** Kish effective sample size (sum w)^2 / sum w^2, in [1, n] (0 if every weight is zero). */
double effectiveSampleSize(const std::vector<double>& logW);
/** effectiveSampleSize / n. */
double effectiveSampleFraction(const std::vector<double>& logW);

/** An estimate with its standard error. */
struct Estimate {
    double value = 0;
    double error = 0;
};

/**
 * log Z = log mean(w) (Z = integral of exp(-beta U) when q is normalized) and its standard error
 * by the delta method: se(mean w) / mean w with se from the population variance of w, which is
 * sqrt(1/ESS - 1/n) exactly (Kish ESS). Computed from max-shifted weights, so it is scale-free.
 * All weights zero: value -inf, error +inf.
 */
Estimate logMeanExp(const std::vector<double>& logW);

/**
 * Self-normalized estimate sum_i w_i values_i / sum_i w_i of an observable (one value per weight),
 * and its delta-method standard error sqrt(sum wn_i^2 (values_i - estimate)^2) with normalized
 * weights wn.
 * Non-finite values where the weight is zero are ignored; where the weight is positive they are an Error.
 */
Estimate selfNormalizedMean(const std::vector<double>& logW, const std::vector<double>& values);

/**
 * Bootstrap: B resamples of the indices (with replacement; Philox keyed by seed, so a seed gives
 * the same resamples on every machine) and the statistic of each: value = statistic(logW, values) of
 * the data, error = the standard deviation (n - 1 normalization) over the resamples. statistic
 * receives the resampled logW and values (values may be empty). numResamples >= 2. An Error thrown by statistic on a
 * resample (e.g. a self-normalized mean of a resample with no positive weight) is rethrown naming the
 * resample; a NaN value is an Error; an infinite value (log Z of such a resample) gives error = +inf.
 */
using Statistic = std::function<double(const std::vector<double>& logW, const std::vector<double>& values)>;
Estimate bootstrap(const std::vector<double>& logW, const std::vector<double>& values, const Statistic& statistic,
                   int numResamples = 200, uint64_t seed = 0);
/** The bootstrap of selfNormalizedMean(logW, values).value. */
Estimate bootstrapMean(const std::vector<double>& logW, const std::vector<double>& values, int numResamples = 200,
                       uint64_t seed = 0);
/** The bootstrap of logMeanExp(logW).value. */
Estimate bootstrapLogZ(const std::vector<double>& logW, int numResamples = 200, uint64_t seed = 0);

/** Index i of resample b of n items: the counter-based draw shared by every bootstrap here. */
int bootstrapIndex(uint64_t seed, int resample, int i, int n);

} // namespace cgflow::stats

#endif
