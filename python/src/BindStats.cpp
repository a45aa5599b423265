// _core bindings for the weights engine (cgflow::stats): numpy arrays in, numbers and arrays out.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/stats/Clipping.h"
#include "cgflow/stats/Divergence.h"
#include "cgflow/stats/Histogram.h"
#include "cgflow/stats/LogWeights.h"
#include "cgflow/stats/RunningWeights.h"
#include "cgflow/stats/Structure.h"
#include "cgflow/train/Tempering.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

namespace py = pybind11;
using namespace cgflow::stats;
using cgflow::Error;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

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
    auto array1d = [](const std::vector<double>& v) { return toArray(v, {static_cast<py::ssize_t>(v.size())}); };

    s.def("log_sum_exp", [](Array w) { return logSumExp(vectorFromNumpy(w, "log_w")); }, py::arg("log_w"),
          "log sum exp(log_w), stable for any offset; -inf entries are weight 0, all -inf gives -inf; NaN or +inf "
          "is an error.");
    py::class_<RunningWeights>(s, "RunningWeights", R"doc(
The weight statistics of a stream of log-weights added one at a time, in O(1) memory: the type
BoltzmannGeneratorIntegrator keeps its running ESS and log Z in. -inf is a weight of zero (counted
as a sample); NaN or +inf is an error.)doc")
        .def(py::init<>())
        .def("add", [](RunningWeights& r, py::object logW) {
                 DoubleArray values = logW.cast<DoubleArray>();
                 for (py::ssize_t i = 0; i < values.size(); i++)
                     r.add(values.data()[i]);
             }, py::arg("log_w"), "Adds one log-weight or an array of them, in order.")
        .def("reset", &RunningWeights::reset, "Forgets every weight.")
        .def_property_readonly("count", &RunningWeights::getCount, "Samples added, zero weights included.")
        .def_property_readonly("num_zero", &RunningWeights::getNumZero, "Samples of weight zero (log w = -inf).")
        .def_property_readonly("effective_sample_size", &RunningWeights::getEffectiveSampleSize, "Kish ESS.")
        .def_property_readonly("effective_sample_fraction", &RunningWeights::getEffectiveSampleFraction, "Kish ESS / count.")
        .def_property_readonly("log_z", [](const RunningWeights& r) { return estimate(r.getLogZ()); },
                               "(log mean w, its delta-method standard error), as log_z() of the whole stream.");
    s.def("normalized_weights", [array1d](Array w) { return array1d(normalizedWeights(vectorFromNumpy(w, "log_w"))); },
          py::arg("log_w"), "w / sum w from log-weights (an error if every weight is zero).");
    s.def("effective_sample_size", [](Array w) { return effectiveSampleSize(vectorFromNumpy(w, "log_w")); }, py::arg("log_w"),
          "Kish ESS (sum w)^2 / sum w^2, in [1, n] (0 if every weight is zero).");
    s.def("effective_sample_fraction", [](Array w) { return effectiveSampleFraction(vectorFromNumpy(w, "log_w")); },
          py::arg("log_w"), "Kish ESS / n.");
    s.def("log_z", [](Array w) { return estimate(logMeanExp(vectorFromNumpy(w, "log_w"))); }, py::arg("log_w"),
          "(log mean w, its delta-method standard error sqrt(1/ESS - 1/n)). With w = exp(-beta U) / q and a "
          "normalized q this is log Z.");
    s.def("weighted_mean", [](Array w, Array f) { return estimate(selfNormalizedMean(vectorFromNumpy(w, "log_w"), vectorFromNumpy(f, "values"))); },
          py::arg("log_w"), py::arg("values"),
          "(self-normalized estimate sum w f / sum w, delta-method standard error). values may be non-finite only "
          "where the weight is zero.");
    s.def("bootstrap_mean", [](Array w, Array f, int b, uint64_t seed) {
        std::vector<double> lw = vectorFromNumpy(w, "log_w"), v = vectorFromNumpy(f, "values");
        Estimate e;
        {
            py::gil_scoped_release release;
            e = bootstrapMean(lw, v, b, seed);
        }
        return estimate(e);
    }, py::arg("log_w"), py::arg("values"), py::arg("num_resamples") = 200, py::arg("seed") = 0,
       "(weighted_mean value, bootstrap standard error over num_resamples Philox resamples keyed by seed).");
    s.def("bootstrap_log_z", [](Array w, int b, uint64_t seed) {
        std::vector<double> lw = vectorFromNumpy(w, "log_w");
        Estimate e;
        {
            py::gil_scoped_release release;
            e = bootstrapLogZ(lw, b, seed);
        }
        return estimate(e);
    }, py::arg("log_w"), py::arg("num_resamples") = 200, py::arg("seed") = 0,
       "(log_z value, bootstrap standard error; +inf if a resample has no positive weight).");
    s.def("clip_top_k", [array1d](Array w, int k) { return array1d(clipTopK(vectorFromNumpy(w, "log_w"), k)); },
          py::arg("log_w"), py::arg("k"),
          "The k largest log-weights set to the k-th largest (the conditional-flow paper: k = 3 of 30). Order kept.");
    s.def("drop_top_fraction", [array1d](Array w, double f) { return array1d(dropTopFraction(vectorFromNumpy(w, "log_w"), f)); },
          py::arg("log_w"), py::arg("fraction"),
          "The largest ceil(fraction * m) of the m finite log-weights set to -inf: the CG-BG paper's rule, "
          "fraction 0.01 (section G.2). Order kept.");
    s.def("clip_above_percentile", [array1d](Array w, double p) { return array1d(clipAbovePercentile(vectorFromNumpy(w, "log_w"), p)); },
          py::arg("log_w"), py::arg("percentile"),
          "Log-weights above the percentile (numpy's linear rule, of the finite ones) set to it. Order kept.");
    s.def("clipping_report", [](Array w, const std::string& policy, const std::vector<double>& levels, py::object values) {
        std::vector<double> lw = vectorFromNumpy(w, "log_w"), f = optionalVectorFromNumpy(values, "values");
        auto statistic = [&](const std::vector<double>& clipped) {
            return f.empty() ? logMeanExp(clipped).value : selfNormalizedMean(clipped, f).value;
        };
        std::vector<ClippingRow> report;
        {
            py::gil_scoped_release release;
            report = clippingReport(lw, policy, levels, statistic);
        }
        py::list rows;
        for (const ClippingRow& r : report) {
            py::dict d;
            d["level"] = r.level;
            d["estimate"] = r.estimate;
            d["ess"] = r.ess;
            d["num_modified"] = r.numModified;
            rows.append(d);
        }
        return rows;
    }, py::arg("log_w"), py::arg("policy"), py::arg("levels"), py::arg("values") = py::none(),
       "policy: 'percentile', 'drop_fraction' or 'top_k'. Per level a dict: level, estimate (the weighted mean of "
       "values, or log Z without values), ess, num_modified.");
    s.def("histogram_1d", [](Array x, py::object w, py::tuple axis, bool periodic) {
        std::vector<double> v = vectorFromNumpy(x, "values"), lw = optionalVectorFromNumpy(w, "log_w");
        HistogramAxis a = axisFrom(axis, periodic, "axis");
        Histogram h;
        {
            py::gil_scoped_release release;
            h = histogram1D(v, lw, a);
        }
        return histogramDict(h);
    }, py::arg("values"), py::arg("log_w") = py::none(), py::arg("axis"), py::arg("periodic") = false,
       "Weighted histogram on axis = (low, high, bins), [low, high): dict with probability (sums to 1 over the grid), "
       "edges, num_out_of_range and out_of_range_weight (samples off a non-periodic axis are counted, not clamped).");
    s.def("histogram_2d", [](Array x, Array y, py::object w, py::tuple xAxis, py::tuple yAxis, bool xPeriodic, bool yPeriodic) {
        std::vector<double> vx = vectorFromNumpy(x, "x"), vy = vectorFromNumpy(y, "y"), lw = optionalVectorFromNumpy(w, "log_w");
        HistogramAxis ax = axisFrom(xAxis, xPeriodic, "x_axis"), ay = axisFrom(yAxis, yPeriodic, "y_axis");
        Histogram h;
        {
            py::gil_scoped_release release;
            h = histogram2D(vx, vy, lw, ax, ay);
        }
        return histogramDict(h);
    }, py::arg("x"), py::arg("y"), py::arg("log_w") = py::none(), py::arg("x_axis"), py::arg("y_axis"),
       py::arg("x_periodic") = false, py::arg("y_periodic") = false,
       "2-D version of histogram_1d; probability has shape (x bins, y bins).");
    s.def("free_energy_1d", [](Array x, py::object w, py::tuple axis, double kT, bool periodic, int b, uint64_t seed) {
        std::vector<double> v = vectorFromNumpy(x, "values"), lw = optionalVectorFromNumpy(w, "log_w");
        HistogramAxis a = axisFrom(axis, periodic, "axis");
        FreeEnergyProfile f;
        {
            py::gil_scoped_release release;
            f = freeEnergy1D(v, lw, a, kT, b, seed);
        }
        return profileDict(f);
    }, py::arg("values"), py::arg("log_w") = py::none(), py::arg("axis"), py::arg("kT"), py::arg("periodic") = false,
       py::arg("num_resamples") = 100, py::arg("seed") = 0,
       "histogram_1d plus free_energy = -kT ln p (units of kT, e.g. kJ/mol), minimum 0, and its bootstrap error; "
       "empty bins have free_energy +inf and error NaN.");
    s.def("free_energy_2d", [](Array x, Array y, py::object w, py::tuple xAxis, py::tuple yAxis, double kT, bool xPeriodic,
                               bool yPeriodic, int b, uint64_t seed) {
        std::vector<double> vx = vectorFromNumpy(x, "x"), vy = vectorFromNumpy(y, "y"), lw = optionalVectorFromNumpy(w, "log_w");
        HistogramAxis ax = axisFrom(xAxis, xPeriodic, "x_axis"), ay = axisFrom(yAxis, yPeriodic, "y_axis");
        FreeEnergyProfile f;
        {
            py::gil_scoped_release release;
            f = freeEnergy2D(vx, vy, lw, ax, ay, kT, b, seed);
        }
        return profileDict(f);
    }, py::arg("x"), py::arg("y"), py::arg("log_w") = py::none(), py::arg("x_axis"), py::arg("y_axis"), py::arg("kT"),
       py::arg("x_periodic") = false, py::arg("y_periodic") = false, py::arg("num_resamples") = 100, py::arg("seed") = 0,
       "2-D version of free_energy_1d (e.g. a weighted Ramachandran surface with periodic axes).");
    s.def("kl_divergence", [](Array p, Array q, double eps) { return klDivergence(vectorFromNumpy(p, "p"), vectorFromNumpy(q, "q"), eps); },
          py::arg("p"), py::arg("q"), py::arg("epsilon") = DefaultDivergenceEpsilon,
          "Forward KL D(p || q) in nats between two grids (normalized first); every bin gets the floor "
          "(p + epsilon) / (1 + bins * epsilon).");
    s.def("js_divergence", [](Array p, Array q, double eps) { return jensenShannonDivergence(vectorFromNumpy(p, "p"), vectorFromNumpy(q, "q"), eps); },
          py::arg("p"), py::arg("q"), py::arg("epsilon") = DefaultDivergenceEpsilon,
          "Jensen-Shannon divergence in nats, symmetric, in [0, ln 2], with the same floor as kl_divergence.");
    s.def("pmf_error", [](Array p, Array q, double baseline) { return pmfError(vectorFromNumpy(p, "p"), vectorFromNumpy(q, "q"), baseline); },
          py::arg("p"), py::arg("q"), py::arg("baseline") = DefaultPmfErrorBaseline,
          "The CG-BG paper's PMF error (in kT^2) of a sampled grid p against a reference grid q: "
          "sum_b m_b (ln p_b - ln q_b)^2 over bins populated in either, m = (p + q) / 2 renormalized, an empty "
          "bin taking `baseline` (1e-6, as the code the paper cites).");
    s.def("radius_of_gyration", [array1d](Array x, py::object masses) {
        auto [flat, n] = configurations(x, "positions");
        std::vector<double> m = optionalVectorFromNumpy(masses, "masses"), rg;
        {
            py::gil_scoped_release release;
            rg = radiusOfGyration(n, flat, m);
        }
        return array1d(rg);
    }, py::arg("positions"), py::arg("masses") = py::none(),
       "Rg of each configuration (positions (n, atoms, 3) or (atoms, 3), nm), mass-weighted if masses are given.");
    s.def("rmsd", [array1d](Array x, Array reference) {
        auto [flat, n] = configurations(x, "positions");
        auto [ref, nr] = configurations(reference, "reference");
        if (nr != n || ref.size() != 3 * static_cast<size_t>(n))
            throw Error("reference: expected one configuration of shape (" + std::to_string(n) + ", 3)");
        std::vector<double> r;
        {
            py::gil_scoped_release release;
            r = rmsd(n, flat, ref);
        }
        return array1d(r);
    }, py::arg("positions"), py::arg("reference"),
       "RMSD of each configuration to the reference after optimal superposition (Kabsch, proper rotations only: a "
       "mirror image keeps a non-zero RMSD).");
    s.def("bond_score", [](Array x, const std::vector<std::array<int, 2>>& bonds, Array lengths, double tolerance) {
        auto [flat, n] = configurations(x, "positions");
        std::vector<double> l = vectorFromNumpy(lengths, "reference_lengths");
        py::gil_scoped_release release;
        return bondScore(n, flat, bonds, l, tolerance);
    }, py::arg("positions"), py::arg("bonds"), py::arg("reference_lengths"), py::arg("tolerance") = 0.1,
       "Fraction of (sample, bond) pairs whose length is within tolerance (relative) of reference_lengths "
       "(data-free CG paper, section 3.3).");
    s.def("diversity_score", [](Array generated, Array reference) {
        auto [g, n] = configurations(generated, "generated");
        auto [r, nr] = configurations(reference, "reference");
        if (nr != n)
            throw Error("reference: has " + std::to_string(nr) + " atoms but generated has " + std::to_string(n));
        py::gil_scoped_release release;
        return diversityScore(n, g, r);
    }, py::arg("generated"), py::arg("reference"),
       "1 - mean RMSD between generated structures / mean RMSD between generated and reference structures "
       "(data-free CG paper, section 3.3): about 0 for a generator as diverse as the reference, 1 for a collapsed one.");
    // The adaptive-tempering rules of data-free training (core/train/Tempering.h).
    s.def("tempering_statistics", [](const Array& u, const Array& logQ, double beta, const py::object& objective) {
        const cgflow::train::TemperingStatistics t =
            cgflow::train::temperingStatistics(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, optionalVectorFromNumpy(objective, "objective_log_q"));
        py::dict d;
        d["kl"] = t.klEstimate;
        d["log_z"] = t.logZ;
        d["mean_energy"] = t.meanEnergy;
        d["ess_fraction"] = t.essFraction;
        d["num_finite"] = t.numFinite;
        d["num_samples"] = t.numSamples;
        return d;
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("objective_log_q") = py::none());
    s.def("relative_kl_increase", [](const Array& u, const Array& logQ, double beta, double d, const py::object& objective,
                                     double floor) {
        return cgflow::train::relativeKLIncrease(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, d, optionalVectorFromNumpy(objective, "objective_log_q"), floor);
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("delta_beta"), py::arg("objective_log_q") = py::none(),
       py::arg("kl_floor") = 1e-3);
    s.def("adaptive_temperature_step", [](const Array& u, const Array& logQ, double beta, double target, double cmax,
                                          double maxStep, const py::object& objective, double floor) {
        return cgflow::train::adaptiveTemperatureStep(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, target, cmax, maxStep,
                                              optionalVectorFromNumpy(objective, "objective_log_q"), floor);
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("beta_target"), py::arg("max_relative_increase"),
       py::arg("max_step"), py::arg("objective_log_q") = py::none(), py::arg("kl_floor") = 1e-3,
       "Rule (a) of the data-free CG paper (Eq. 23): the step whose relative KL increase is max_relative_increase.");
    s.def("shrinking_temperature_step", [](const Array& u, const Array& logQ, double beta, double target, double cmax,
                                           double maxStep, const py::object& objective, double floor) {
        return cgflow::train::shrinkingTemperatureStep(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, target, cmax, maxStep,
                                               optionalVectorFromNumpy(objective, "objective_log_q"), floor);
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("beta_target"), py::arg("max_relative_increase"),
       py::arg("max_step"), py::arg("objective_log_q") = py::none(), py::arg("kl_floor") = 1e-3,
       "Rule (b) of the embedded-physics paper: max_step shrunk by 0.6 until the increase is within the limit.");
}
