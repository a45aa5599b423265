// _core bindings for the weights engine (cgflow::stats): numpy arrays in, numbers and arrays out.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/stats/Clipping.h"
#include "cgflow/stats/Divergence.h"
#include "cgflow/stats/Histogram.h"
#include "cgflow/stats/LogWeights.h"
#include "cgflow/stats/Structure.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

namespace py = pybind11;
using namespace cgflow::stats;
using cgflow::Error;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::vector<double> vec(const Array& a, const char* name) {
    if (a.ndim() != 1)
        throw Error(std::string(name) + ": expected a 1-D array, got " + std::to_string(a.ndim()) + " dimensions");
    return std::vector<double>(a.data(), a.data() + a.size());
}

std::vector<double> optionalVec(const py::object& a, const char* name) {
    return a.is_none() ? std::vector<double>() : vec(a.cast<Array>(), name);
}

/** Configurations as (n, N, 3) (or one (N, 3)): the flat sample-major array and N. */
std::pair<std::vector<double>, int> configurations(Array x, const char* name) {
    if (x.ndim() == 2 && x.shape(1) == 3)
        x = x.reshape({static_cast<py::ssize_t>(1), x.shape(0), static_cast<py::ssize_t>(3)});
    if (x.ndim() != 3 || x.shape(2) != 3)
        throw Error(std::string(name) + ": expected shape (n, atoms, 3) in nm");
    return {std::vector<double>(x.data(), x.data() + x.size()), static_cast<int>(x.shape(1))};
}

HistogramAxis axisFrom(const py::tuple& t, bool periodic, const char* name) {
    if (t.size() != 3)
        throw Error(std::string(name) + ": expected (low, high, bins)");
    return HistogramAxis{t[0].cast<double>(), t[1].cast<double>(), t[2].cast<int>(), periodic};
}

py::array_t<double> toArray(const std::vector<double>& v, std::vector<py::ssize_t> shape) {
    py::array_t<double> out(shape);
    std::copy(v.begin(), v.end(), out.mutable_data());
    return out;
}

std::vector<py::ssize_t> gridShape(const Histogram& h) {
    std::vector<py::ssize_t> shape;
    for (const HistogramAxis& a : h.axes)
        shape.push_back(a.numBins);
    return shape;
}

py::dict histogramDict(const Histogram& h) {
    py::dict d;
    d["probability"] = toArray(h.probability, gridShape(h));
    d["num_out_of_range"] = h.numOutOfRange;
    d["out_of_range_weight"] = h.outOfRangeWeight;
    py::list edges;
    for (const HistogramAxis& a : h.axes) {
        std::vector<double> e(a.numBins + 1);
        for (int b = 0; b <= a.numBins; b++)
            e[b] = a.low + (a.high - a.low) * b / a.numBins;
        edges.append(toArray(e, {a.numBins + 1}));
    }
    d["edges"] = edges;
    return d;
}

py::dict profileDict(const FreeEnergyProfile& f) {
    py::dict d = histogramDict(f.histogram);
    d["free_energy"] = toArray(f.freeEnergy, gridShape(f.histogram));
    d["error"] = toArray(f.error, gridShape(f.histogram));
    return d;
}

py::tuple estimate(const Estimate& e) {
    return py::make_tuple(e.value, e.error);
}

} // namespace

void bindStats(py::module_& m) {
    py::module_ s = m.def_submodule("stats", "The weights engine: log-weights, ESS, log Z, clipping, histograms, "
                                             "free energies, divergences and structure metrics.");
    s.def("log_sum_exp", [](Array w) { return logSumExp(vec(w, "log_w")); }, py::arg("log_w"));
    s.def("normalized_weights", [](Array w) { auto v = normalizedWeights(vec(w, "log_w")); return toArray(v, {static_cast<py::ssize_t>(v.size())}); },
          py::arg("log_w"));
    s.def("effective_sample_size", [](Array w) { return effectiveSampleSize(vec(w, "log_w")); }, py::arg("log_w"));
    s.def("effective_sample_fraction", [](Array w) { return effectiveSampleFraction(vec(w, "log_w")); }, py::arg("log_w"));
    s.def("log_z", [](Array w) { return estimate(logMeanExp(vec(w, "log_w"))); }, py::arg("log_w"),
          "(log mean w, its delta-method standard error sqrt(1/ESS - 1/n))");
    s.def("weighted_mean", [](Array w, Array f) { return estimate(selfNormalizedMean(vec(w, "log_w"), vec(f, "values"))); },
          py::arg("log_w"), py::arg("values"), "(self-normalized estimate, delta-method standard error)");
    s.def("bootstrap_mean", [](Array w, Array f, int b, uint64_t seed) {
        std::vector<double> lw = vec(w, "log_w"), v = vec(f, "values");
        Estimate e;
        {
            py::gil_scoped_release release;
            e = bootstrapMean(lw, v, b, seed);
        }
        return estimate(e);
    }, py::arg("log_w"), py::arg("values"), py::arg("num_resamples") = 200, py::arg("seed") = 0);
    s.def("bootstrap_log_z", [](Array w, int b, uint64_t seed) {
        std::vector<double> lw = vec(w, "log_w");
        Estimate e;
        {
            py::gil_scoped_release release;
            e = bootstrapLogZ(lw, b, seed);
        }
        return estimate(e);
    }, py::arg("log_w"), py::arg("num_resamples") = 200, py::arg("seed") = 0);
    s.def("clip_top_k", [](Array w, int k) { auto v = clipTopK(vec(w, "log_w"), k); return toArray(v, {static_cast<py::ssize_t>(v.size())}); },
          py::arg("log_w"), py::arg("k"));
    s.def("drop_top_fraction", [](Array w, double f) { auto v = dropTopFraction(vec(w, "log_w"), f); return toArray(v, {static_cast<py::ssize_t>(v.size())}); },
          py::arg("log_w"), py::arg("fraction"));
    s.def("clip_above_percentile", [](Array w, double p) { auto v = clipAbovePercentile(vec(w, "log_w"), p); return toArray(v, {static_cast<py::ssize_t>(v.size())}); },
          py::arg("log_w"), py::arg("percentile"));
    s.def("clipping_report", [](Array w, const std::string& policy, const std::vector<double>& levels, py::object values) {
        std::vector<double> lw = vec(w, "log_w"), f = optionalVec(values, "values");
        auto statistic = [&](const std::vector<double>& clipped) {
            return f.empty() ? logMeanExp(clipped).value : selfNormalizedMean(clipped, f).value;
        };
        py::list rows;
        for (const ClippingRow& r : clippingReport(lw, policy, levels, statistic)) {
            py::dict d;
            d["level"] = r.level;
            d["estimate"] = r.estimate;
            d["ess"] = r.ess;
            d["num_modified"] = r.numModified;
            rows.append(d);
        }
        return rows;
    }, py::arg("log_w"), py::arg("policy"), py::arg("levels"), py::arg("values") = py::none(),
       "Per level: the weighted mean of `values` (or log Z without values), the ESS and the entries changed.");
    s.def("histogram_1d", [](Array x, py::object w, py::tuple axis, bool periodic) {
        return histogramDict(histogram1D(vec(x, "values"), optionalVec(w, "log_w"), axisFrom(axis, periodic, "axis")));
    }, py::arg("values"), py::arg("log_w") = py::none(), py::arg("axis"), py::arg("periodic") = false);
    s.def("histogram_2d", [](Array x, Array y, py::object w, py::tuple xAxis, py::tuple yAxis, bool xPeriodic, bool yPeriodic) {
        return histogramDict(histogram2D(vec(x, "x"), vec(y, "y"), optionalVec(w, "log_w"), axisFrom(xAxis, xPeriodic, "x_axis"),
                                         axisFrom(yAxis, yPeriodic, "y_axis")));
    }, py::arg("x"), py::arg("y"), py::arg("log_w") = py::none(), py::arg("x_axis"), py::arg("y_axis"),
       py::arg("x_periodic") = false, py::arg("y_periodic") = false);
    s.def("free_energy_1d", [](Array x, py::object w, py::tuple axis, double kT, bool periodic, int b, uint64_t seed) {
        std::vector<double> v = vec(x, "values"), lw = optionalVec(w, "log_w");
        HistogramAxis a = axisFrom(axis, periodic, "axis");
        FreeEnergyProfile f;
        {
            py::gil_scoped_release release;
            f = freeEnergy1D(v, lw, a, kT, b, seed);
        }
        return profileDict(f);
    }, py::arg("values"), py::arg("log_w") = py::none(), py::arg("axis"), py::arg("kT"), py::arg("periodic") = false,
       py::arg("num_resamples") = 100, py::arg("seed") = 0);
    s.def("free_energy_2d", [](Array x, Array y, py::object w, py::tuple xAxis, py::tuple yAxis, double kT, bool xPeriodic,
                               bool yPeriodic, int b, uint64_t seed) {
        std::vector<double> vx = vec(x, "x"), vy = vec(y, "y"), lw = optionalVec(w, "log_w");
        HistogramAxis ax = axisFrom(xAxis, xPeriodic, "x_axis"), ay = axisFrom(yAxis, yPeriodic, "y_axis");
        FreeEnergyProfile f;
        {
            py::gil_scoped_release release;
            f = freeEnergy2D(vx, vy, lw, ax, ay, kT, b, seed);
        }
        return profileDict(f);
    }, py::arg("x"), py::arg("y"), py::arg("log_w") = py::none(), py::arg("x_axis"), py::arg("y_axis"), py::arg("kT"),
       py::arg("x_periodic") = false, py::arg("y_periodic") = false, py::arg("num_resamples") = 100, py::arg("seed") = 0);
    s.def("kl_divergence", [](Array p, Array q, double eps) { return klDivergence(vec(p, "p"), vec(q, "q"), eps); },
          py::arg("p"), py::arg("q"), py::arg("epsilon") = DefaultDivergenceEpsilon);
    s.def("js_divergence", [](Array p, Array q, double eps) { return jensenShannonDivergence(vec(p, "p"), vec(q, "q"), eps); },
          py::arg("p"), py::arg("q"), py::arg("epsilon") = DefaultDivergenceEpsilon);
    s.def("pmf_error", [](Array p, Array q, double eps) { return pmfError(vec(p, "p"), vec(q, "q"), eps); },
          py::arg("sampled"), py::arg("reference"), py::arg("epsilon") = DefaultDivergenceEpsilon);
    s.def("radius_of_gyration", [](Array x, py::object masses) {
        auto [flat, n] = configurations(x, "positions");
        auto v = radiusOfGyration(n, flat, optionalVec(masses, "masses"));
        return toArray(v, {static_cast<py::ssize_t>(v.size())});
    }, py::arg("positions"), py::arg("masses") = py::none());
    s.def("rmsd", [](Array x, Array reference) {
        auto [flat, n] = configurations(x, "positions");
        auto [ref, nr] = configurations(reference, "reference");
        if (nr != n || ref.size() != 3 * static_cast<size_t>(n))
            throw Error("reference: expected one configuration of shape (" + std::to_string(n) + ", 3)");
        auto v = rmsd(n, flat, ref);
        return toArray(v, {static_cast<py::ssize_t>(v.size())});
    }, py::arg("positions"), py::arg("reference"), "RMSD after optimal superposition (proper rotations only).");
    s.def("bond_score", [](Array x, const std::vector<std::array<int, 2>>& bonds, Array lengths, double tolerance) {
        auto [flat, n] = configurations(x, "positions");
        return bondScore(n, flat, bonds, vec(lengths, "reference_lengths"), tolerance);
    }, py::arg("positions"), py::arg("bonds"), py::arg("reference_lengths"), py::arg("tolerance") = 0.1);
    s.def("diversity_score", [](Array generated, Array reference) {
        auto [g, n] = configurations(generated, "generated");
        auto [r, nr] = configurations(reference, "reference");
        if (nr != n)
            throw Error("reference: has " + std::to_string(nr) + " atoms but generated has " + std::to_string(n));
        double score;
        {
            py::gil_scoped_release release;
            score = diversityScore(n, g, r);
        }
        return score;
    }, py::arg("generated"), py::arg("reference"));
}
