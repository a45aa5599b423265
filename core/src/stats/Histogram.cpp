#include "cgflow/stats/Histogram.h"

#include "cgflow/Error.h"
#include "cgflow/stats/LogWeights.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace cgflow::stats {

namespace {

void checkAxis(const HistogramAxis& axis, const char* name) {
    if (!(std::isfinite(axis.low) && std::isfinite(axis.high) && axis.high > axis.low))
        throw Error(std::string(name) + ": needs finite low < high, got [" + std::to_string(axis.low) + ", " +
                    std::to_string(axis.high) + ")");
    if (axis.numBins < 1)
        throw Error(std::string(name) + ": numBins must be >= 1, got " + std::to_string(axis.numBins));
}

/** The bin of v on the axis, or -1 outside a non-periodic axis. */
int binOf(double v, const HistogramAxis& axis) {
    const double width = axis.high - axis.low;
    double t = (v - axis.low) / width; // position in units of the axis length
    if (axis.periodic) {
        // Wrap by the fractional part. A value a hair below low wraps to t = 1 - tiny, which can round
        // to exactly 1: it belongs to the last bin (the min below), not outside a periodic axis.
        t -= std::floor(t);
    } else if (t < 0 || v >= axis.high) {
        return -1;
    }
    // min: t just below 1 can round up to numBins.
    return std::min(axis.numBins - 1, static_cast<int>(t * axis.numBins));
}

/** Weights (max-shifted, so the largest is 1) of logW, or ones for an empty logW. */
std::vector<double> relativeWeights(const std::vector<double>& logW, size_t n, const char* function) {
    if (logW.empty())
        return std::vector<double>(n, 1.0);
    if (logW.size() != n)
        throw Error(std::string(function) + ": logW has " + std::to_string(logW.size()) + " values but there are " +
                    std::to_string(n) + " samples (or pass an empty logW)");
    const double total = logSumExp(logW); // validates logW
    if (total == -std::numeric_limits<double>::infinity())
        throw Error(std::string(function) + ": every weight is zero");
    std::vector<double> w(n);
    const double top = *std::max_element(logW.begin(), logW.end());
    for (size_t i = 0; i < n; i++)
        w[i] = std::exp(logW[i] - top);
    return w;
}

/** The names of the coordinates in errors: "values" in 1-D, "x" and "y" in 2-D (the arguments' names). */
const char* coordinateName(size_t numAxes, size_t d) {
    return numAxes == 1 ? "values" : (d == 0 ? "x" : "y");
}

Histogram build(const std::vector<const std::vector<double>*>& coords, const std::vector<double>& w,
                const std::vector<HistogramAxis>& axes, const char* function) {
    if (coords[0]->empty())
        throw Error(std::string(function) + ": " + (axes.size() == 1 ? "values is empty" : "x and y are empty") +
                    " (no samples to histogram)");
    Histogram h;
    h.axes = axes;
    size_t numBins = 1;
    for (const HistogramAxis& a : axes)
        numBins *= a.numBins;
    h.probability.assign(numBins, 0.0);
    double inside = 0, outside = 0;
    const size_t n = w.size();
    for (size_t s = 0; s < n; s++) {
        if (w[s] == 0)
            continue;
        size_t index = 0;
        bool out = false;
        for (size_t d = 0; d < axes.size(); d++) {
            const double v = (*coords[d])[s];
            if (!std::isfinite(v))
                throw Error(std::string(function) + ": " + coordinateName(axes.size(), d) + "[" + std::to_string(s) +
                            "] is not finite (" + std::to_string(v) + ") and has a positive weight");
            const int b = binOf(v, axes[d]);
            out = out || b < 0;
            index = index * axes[d].numBins + std::max(b, 0);
        }
        if (out) {
            h.numOutOfRange++;
            outside += w[s];
            continue;
        }
        h.probability[index] += w[s];
        inside += w[s];
    }
    if (inside == 0)
        throw Error(std::string(function) + ": no weight falls on the grid (" + std::to_string(h.numOutOfRange) +
                    " samples out of range)");
    for (double& p : h.probability)
        p /= inside;
    h.outOfRangeWeight = outside / (inside + outside);
    return h;
}

FreeEnergyProfile freeEnergy(const std::vector<const std::vector<double>*>& coords, const std::vector<double>& logW,
                             const std::vector<HistogramAxis>& axes, double kT, int numResamples, uint64_t seed,
                             const char* function) {
    if (!(kT > 0) || !std::isfinite(kT))
        throw Error(std::string(function) + ": kT must be a finite number > 0, got " + std::to_string(kT));
    if (numResamples < 2)
        throw Error(std::string(function) + ": numResamples must be >= 2, got " + std::to_string(numResamples));
    const size_t n = coords[0]->size();
    const std::vector<double> w = relativeWeights(logW, n, function);
    FreeEnergyProfile profile;
    profile.histogram = build(coords, w, axes, function);
    const size_t numBins = profile.histogram.probability.size();
    profile.freeEnergy.assign(numBins, std::numeric_limits<double>::infinity());
    double minimum = std::numeric_limits<double>::infinity();
    for (size_t b = 0; b < numBins; b++)
        if (profile.histogram.probability[b] > 0) {
            profile.freeEnergy[b] = -kT * std::log(profile.histogram.probability[b]);
            minimum = std::min(minimum, profile.freeEnergy[b]);
        }
    for (double& f : profile.freeEnergy)
        f -= minimum;
    // Bootstrap: per bin, the spread of ln p over resamples where the bin is occupied.
    std::vector<double> sum(numBins, 0), sumSq(numBins, 0), count(numBins, 0);
    std::vector<std::vector<double>> resampled(coords.size(), std::vector<double>(n));
    std::vector<double> rw(n);
    std::vector<const std::vector<double>*> pointers;
    for (auto& r : resampled)
        pointers.push_back(&r);
    for (int r = 0; r < numResamples; r++) {
        for (size_t i = 0; i < n; i++) {
            const int k = bootstrapIndex(seed, r, static_cast<int>(i), static_cast<int>(n));
            rw[i] = w[k];
            for (size_t d = 0; d < coords.size(); d++)
                resampled[d][i] = (*coords[d])[k];
        }
        Histogram h;
        try {
            h = build(pointers, rw, axes, function);
        } catch (const Error&) {
            continue; // a resample with no weight on the grid carries no information about any bin
        }
        for (size_t b = 0; b < numBins; b++)
            if (h.probability[b] > 0) {
                const double l = std::log(h.probability[b]);
                sum[b] += l;
                sumSq[b] += l * l;
                count[b] += 1;
            }
    }
    profile.error.assign(numBins, std::numeric_limits<double>::quiet_NaN());
    for (size_t b = 0; b < numBins; b++)
        if (profile.histogram.probability[b] > 0 && count[b] >= 2) {
            const double mean = sum[b] / count[b];
            profile.error[b] = kT * std::sqrt(std::max(0.0, (sumSq[b] - count[b] * mean * mean) / (count[b] - 1)));
        }
    return profile;
}

} // namespace

Histogram histogram1D(const std::vector<double>& values, const std::vector<double>& logW, const HistogramAxis& axis) {
    checkAxis(axis, "histogram1D: axis");
    return build({&values}, relativeWeights(logW, values.size(), "histogram1D"), {axis}, "histogram1D");
}

Histogram histogram2D(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& logW,
                      const HistogramAxis& xAxis, const HistogramAxis& yAxis) {
    checkAxis(xAxis, "histogram2D: xAxis");
    checkAxis(yAxis, "histogram2D: yAxis");
    if (x.size() != y.size())
        throw Error("histogram2D: x has " + std::to_string(x.size()) + " values but y has " + std::to_string(y.size()));
    return build({&x, &y}, relativeWeights(logW, x.size(), "histogram2D"), {xAxis, yAxis}, "histogram2D");
}

FreeEnergyProfile freeEnergy1D(const std::vector<double>& values, const std::vector<double>& logW,
                               const HistogramAxis& axis, double kT, int numResamples, uint64_t seed) {
    checkAxis(axis, "freeEnergy1D: axis");
    return freeEnergy({&values}, logW, {axis}, kT, numResamples, seed, "freeEnergy1D");
}

FreeEnergyProfile freeEnergy2D(const std::vector<double>& x, const std::vector<double>& y,
                               const std::vector<double>& logW, const HistogramAxis& xAxis,
                               const HistogramAxis& yAxis, double kT, int numResamples, uint64_t seed) {
    checkAxis(xAxis, "freeEnergy2D: xAxis");
    checkAxis(yAxis, "freeEnergy2D: yAxis");
    if (x.size() != y.size())
        throw Error("freeEnergy2D: x has " + std::to_string(x.size()) + " values but y has " + std::to_string(y.size()));
    return freeEnergy({&x, &y}, logW, {xAxis, yAxis}, kT, numResamples, seed, "freeEnergy2D");
}

} // namespace cgflow::stats
