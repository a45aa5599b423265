#ifndef CGFLOW_STATS_HISTOGRAM_H_
#define CGFLOW_STATS_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace cgflow::stats {

/** One histogram axis: numBins equal bins on [low, high). A periodic axis wraps values into it first (angles). */
struct HistogramAxis {
    double low = 0;
    double high = 1;
    int numBins = 1;
    bool periodic = false;
};

/**
 * A weighted histogram on a fixed grid, 1-D or 2-D (bins row-major: index = i0 * bins1 + i1).
 * probability sums to 1 over the grid (the weight of in-range samples); samples outside a
 * non-periodic axis are not clamped into an edge bin but counted in numOutOfRange and
 * outOfRangeWeight (their fraction of the total weight), so a caller can see what the grid missed.
 */
struct Histogram {
    std::vector<HistogramAxis> axes;
    std::vector<double> probability;
    long long numOutOfRange = 0;
    double outOfRangeWeight = 0;
};

/**
 * values: n >= 1 samples (none is an Error); logW: n log-weights, or empty for equal weights (plain
 * samples). Non-finite values with positive weight are an Error naming values[i] (x[i] or y[i] in
 * 2-D); -inf log-weights contribute nothing. Error if no weight falls on the grid.
 */
Histogram histogram1D(const std::vector<double>& values, const std::vector<double>& logW, const HistogramAxis& axis);
Histogram histogram2D(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& logW,
                      const HistogramAxis& xAxis, const HistogramAxis& yAxis);

/**
 * A free-energy profile F = -kT ln p per bin (kJ/mol when kT is), shifted so that its minimum is 0,
 * with bootstrap error bars: error = kT times the standard deviation of ln p_b over numResamples
 * resamples of the (value, weight) pairs (shift-free, since every resample is normalized). Empty
 * bins have F = +inf and error NaN; a bin empty in some resamples gets its error from the others.
 */
struct FreeEnergyProfile {
    Histogram histogram;
    std::vector<double> freeEnergy;
    std::vector<double> error;
};
FreeEnergyProfile freeEnergy1D(const std::vector<double>& values, const std::vector<double>& logW,
                               const HistogramAxis& axis, double kT, int numResamples = 100, uint64_t seed = 0);
FreeEnergyProfile freeEnergy2D(const std::vector<double>& x, const std::vector<double>& y,
                               const std::vector<double>& logW, const HistogramAxis& xAxis,
                               const HistogramAxis& yAxis, double kT, int numResamples = 100, uint64_t seed = 0);

} // namespace cgflow::stats

#endif
