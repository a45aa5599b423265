// _core bindings for normalizing flows, Flow (sample / log_prob / gradients / files), and for
// ModelTrainer, the trainer of every trainable model (Flow, SlowFastModel, EncoderDecoderModel).
// Batches cross as numpy arrays of shape (n, dimension), whose C-order memory is exactly the
// engine's (dimension x n) column-per-sample layout.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/flows/ContinuousFlow.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/train/FlowMatching.h"
#include "cgflow/models/EncoderDecoderModel.h"
#include "cgflow/models/SlowFastModel.h"
#include "cgflow/train/ModelTrainer.h"
#include "cgflow/io/FileUtils.h"
#include "cgflow/io/models/FlowFile.h"
#include "cgflow/optim/LearningRateSchedule.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

namespace py = pybind11;
using namespace cgflow;
using flows::Flow;
using train::ModelTrainer;

namespace {

using InputArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

/** (n, dim) -> (dim x n); a 1-D array is accepted for dim = 1 (n samples) . */
Eigen::MatrixXd batchFromNumpy(const InputArray& a, int dim, const char* name) {
    if (a.ndim() == 1 && dim == 1)
        return Eigen::Map<const Eigen::MatrixXd>(a.data(), 1, a.shape(0));
    if (a.ndim() != 2 || a.shape(1) != dim)
        throw Error(std::string(name) + " must have shape (n, " + std::to_string(dim) + "), one sample per row");
    return Eigen::Map<const Eigen::MatrixXd>(a.data(), dim, a.shape(0));
}

/** A context argument: None, shape (contextDimension,) for one context shared by all, or (n, contextDimension). */
std::optional<Eigen::MatrixXd> contextFromPython(const py::object& context, int contextDimension) {
    if (context.is_none())
        return std::nullopt;
    if (contextDimension == 0)
        throw Error("this flow is not conditional (context_dimension 0), but a context was given");
    InputArray a = context.cast<InputArray>();
    if (a.ndim() == 1) {
        if (a.shape(0) != contextDimension)
            throw Error("context must have shape (" + std::to_string(contextDimension) + ",) or (n, " +
                        std::to_string(contextDimension) + ")");
        return Eigen::Map<const Eigen::MatrixXd>(a.data(), contextDimension, 1);
    }
    return batchFromNumpy(a, contextDimension, "context");
}

/** The ContinuousFlow layers of a flow (a continuous normalizing flow has one). */
std::vector<flows::ContinuousFlow*> continuousLayers(Flow& f) {
    std::vector<flows::ContinuousFlow*> found;
    for (int l = 0; l < f.getNumLayers(); l++)
        if (auto* layer = dynamic_cast<flows::ContinuousFlow*>(&f.getLayer(l)))
            found.push_back(layer);
    if (found.empty())
        throw Error("this flow has no continuous_flow layer (it is not a continuous normalizing flow)");
    return found;
}

py::array_t<double> batchToNumpy(const Eigen::MatrixXd& m) {
    py::array_t<double> out({static_cast<py::ssize_t>(m.cols()), static_cast<py::ssize_t>(m.rows())});
    if (m.size() > 0)  // an empty matrix's data() is null: memcpy from it is UB even for 0 bytes
        std::memcpy(out.mutable_data(), m.data(), sizeof(double) * m.size());
    return out;
}

py::array_t<double> eigenVectorToNumpy(const Eigen::VectorXd& v) {
    py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
    if (v.size() > 0)
        std::memcpy(out.mutable_data(), v.data(), sizeof(double) * v.size());
    return out;
}

py::array_t<double> vectorToNumpy(const double* data, size_t n) {
    py::array_t<double> out(static_cast<py::ssize_t>(n));
    if (n > 0)  // an empty batch comes with a null pointer (found by scripts/sanitize.sh --python)
        std::memcpy(out.mutable_data(), data, sizeof(double) * n);
    return out;
}

const char* actionName(optim::GradientAction action) {
    switch (action) {
    case optim::GradientAction::Accept:
        return "accept";
    case optim::GradientAction::Clip:
        return "clip";
    default:
        return "skip";
    }
}

py::dict reportToDict(const train::TrainStepReport& r) {
    py::dict d;
    d["loss"] = r.loss;
    d["gradient_norm"] = r.gradientNorm;
    d["action"] = actionName(r.action);
    d["learning_rate"] = r.learningRate;
    d["num_samples"] = r.numSamples;
    d["num_dropped"] = r.numDropped;
    d["num_trimmed"] = r.numTrimmed;
    d["step"] = r.step;
    return d;
}

const Eigen::MatrixXd* pointer(const std::optional<Eigen::MatrixXd>& m) {
    return m ? &*m : nullptr;
}

py::tuple sampleFlow(Flow& flow, int n, uint64_t seed, const py::object& context, uint64_t firstIndex) {
    auto ctx = contextFromPython(context, flow.getContextDimension());
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    {
        py::gil_scoped_release release;
        flow.sample(n, seed, pointer(ctx), x, logQ, false, firstIndex);
    }
    return py::make_tuple(batchToNumpy(x), vectorToNumpy(logQ.data(), logQ.size()));
}

} // namespace

void bindFlows(py::module_& m) {
    py::class_<Flow>(m, "Flow", R"doc(
A normalizing flow (base density + bijections, optionally conditional), double precision,
multi-threaded. Build it from a config dict (see FlowConfig.h / the README): either the builder
form, e.g. {"dimension": 60, "circular": [...], "num_layers": 12, "num_bins": 8, "bound": 5.0,
"hidden": 256, "num_blocks": 1}, or the explicit form that `config` returns. Batches are numpy
arrays of shape (n, dimension); contexts (n, context_dimension) or (context_dimension,) for all.)doc")
        .def(py::init([](const py::dict& config) { return Flow::fromConfig(pyToJson(config, "config")); }), py::arg("config"))
        .def_static(
            "from_bytes",
            [](const py::bytes& data) { return std::move(io::decodeFlow(std::string(data), "flow bytes").flow); },
            py::arg("data"), "A flow from model-file bytes (kind \"flow\").")
        .def_static(
            "load",
            [](const std::string& path) { return std::move(io::decodeFlow(io::readFileBytes(path), path).flow); },
            py::arg("path"), "A flow from a model file (kind \"flow\"); training state in it is ignored.")
        .def(
            "to_bytes",
            [](const Flow& f, const py::object& info) {
                return toBytes(io::encodeFlow(f, nullptr, info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
            },
            py::arg("info") = py::none())
        .def(
            "save",
            [](const Flow& f, const std::string& path, const py::object& info) {
                io::writeFileAtomic(path, io::encodeFlow(f, nullptr, info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
            },
            py::arg("path"), py::arg("info") = py::none(), "Write a model file atomically (temp file + rename).")
        .def_property_readonly("config", [](const Flow& f) { return jsonToPy(f.getConfig()); })
        .def_property_readonly("dimension", &Flow::getDimension)
        .def_property_readonly("context_dimension", &Flow::getContextDimension)
        .def_property_readonly("circular", &Flow::getCircular)
        .def_property_readonly("num_parameters", &Flow::getNumParameters)
        .def_property_readonly("num_layers", &Flow::getNumLayers)
        .def("parameter_offset", &Flow::getParameterOffset, py::arg("layer"),
             "Offset of layer `layer`'s parameters in the flat vector (layers in order, each in its own layout).")
        .def_property("num_threads", &Flow::getNumThreads, &Flow::setNumThreads)
        .def_property(
            "precision", [](const Flow& f) { return nn::precisionName(f.getPrecision()); },
            [](Flow& f, const std::string& p) { f.setPrecision(nn::parsePrecision(p)); },
            "\"float64\" or \"mixed\" (conditioner matrix products in float32; splines, log-dets and sums in float64).")
        .def("initialize_parameters", &Flow::initializeParameters, py::arg("seed"))
        .def(
            "ode_statistics",
            [](Flow& f) {
                flows::OdeStatistics total;
                for (auto* layer : continuousLayers(f))
                    total += layer->getStatistics();
                py::dict d;
                d["samples"] = total.samples;
                d["evaluations"] = total.evaluations;
                d["accepted_steps"] = total.accepted;
                d["rejected_steps"] = total.rejected;
                d["failed"] = total.failed;
                d["evaluations_per_sample"] =
                    total.samples > 0 ? static_cast<double>(total.evaluations) / total.samples : 0.0;
                return d;
            },
            "Continuous flows only: what the ODE integrations since the last reset cost (samples integrated in "
            "either direction, vector-field evaluations counted per sample, accepted/rejected steps, samples "
            "given up and returned as NaN).")
        .def(
            "reset_ode_statistics",
            [](Flow& f) {
                for (auto* layer : continuousLayers(f))
                    layer->resetStatistics();
            })
        .def(
            "set_ode_tolerances",
            [](Flow& f, double atol, double rtol, int maxSteps) {
                for (auto* layer : continuousLayers(f)) {
                    flows::OdeOptions ode = layer->getOptions().ode;
                    ode.absoluteTolerance = atol;
                    ode.relativeTolerance = rtol;
                    ode.maxSteps = maxSteps;
                    layer->setOdeOptions(ode);
                }
            },
            py::arg("atol"), py::arg("rtol"), py::arg("max_steps") = 10000,
            "Continuous flows only: the Dormand-Prince tolerances of later integrations (also written to "
            "model files through the config).")
        .def("get_parameters",
             [](const Flow& f) {
                 std::vector<double> p = f.getParameters();
                 return vectorToNumpy(p.data(), p.size());
             })
        .def(
            "set_parameters",
            [](Flow& f, const InputArray& p) {
                if (p.ndim() != 1 || static_cast<size_t>(p.shape(0)) != f.getNumParameters())
                    throw Error("parameters must be a 1-D array of " + std::to_string(f.getNumParameters()) + " values");
                checkFiniteParameters(p.data(), f.getNumParameters());
                f.setParameters(p.data());
            },
            py::arg("parameters"))
        .def("sample", &sampleFlow, py::arg("n"), py::arg("seed"), py::arg("context") = py::none(),
             py::arg("first_index") = 0,
             "(x, log_q) for n samples; sample i uses base draw first_index + i of the seed's stream.")
        .def(
            "sample_from_base",
            [](Flow& f, const InputArray& z, const py::object& context) {
                Eigen::MatrixXd base = batchFromNumpy(z, f.getDimension(), "z");
                auto ctx = contextFromPython(context, f.getContextDimension());
                Eigen::MatrixXd x;
                Eigen::VectorXd logQ;
                {
                    py::gil_scoped_release release;
                    f.transformFromBase(base, pointer(ctx), x, logQ);
                }
                return py::make_tuple(batchToNumpy(x), vectorToNumpy(logQ.data(), logQ.size()));
            },
            py::arg("z"), py::arg("context") = py::none(), "(x, log_q) for given base points z.")
        .def(
            "log_prob",
            [](Flow& f, const InputArray& xs, const py::object& context, bool returnBase) -> py::object {
                Eigen::MatrixXd x = batchFromNumpy(xs, f.getDimension(), "x");
                auto ctx = contextFromPython(context, f.getContextDimension());
                Eigen::VectorXd logQ;
                Eigen::MatrixXd z;
                {
                    py::gil_scoped_release release;
                    f.logProb(x, pointer(ctx), logQ, false, returnBase ? &z : nullptr);
                }
                py::array_t<double> lq = vectorToNumpy(logQ.data(), logQ.size());
                if (returnBase)
                    return py::make_tuple(lq, batchToNumpy(z));
                return std::move(lq);
            },
            py::arg("x"), py::arg("context") = py::none(), py::arg("return_base") = false,
            "log q(x) per sample (and the base points z = f^-1(x) with return_base=True).")
        .def(
            "log_prob_gradients",
            [](Flow& f, const InputArray& xs, const InputArray& gradLogQ, const py::object& context) {
                Eigen::MatrixXd x = batchFromNumpy(xs, f.getDimension(), "x");
                auto ctx = contextFromPython(context, f.getContextDimension());
                if (gradLogQ.ndim() != 1 || gradLogQ.shape(0) != x.cols())
                    throw Error("grad_log_q must be a 1-D array with one value per sample");
                Eigen::VectorXd g = Eigen::Map<const Eigen::VectorXd>(gradLogQ.data(), x.cols());
                Eigen::VectorXd logQ;
                std::vector<double> params(f.getNumParameters(), 0.0);
                Eigen::MatrixXd gradX, gradContext;
                if (ctx)
                    gradContext = Eigen::MatrixXd::Zero(ctx->rows(), ctx->cols());
                {
                    py::gil_scoped_release release;
                    f.logProb(x, pointer(ctx), logQ, true);
                    f.backwardLogProb(g, params.data(), &gradX, ctx ? &gradContext : nullptr);
                }
                py::dict d;
                d["log_q"] = vectorToNumpy(logQ.data(), logQ.size());
                d["parameters"] = vectorToNumpy(params.data(), params.size());
                d["x"] = batchToNumpy(gradX);
                if (ctx)
                    d["context"] = batchToNumpy(gradContext);
                return d;
            },
            py::arg("x"), py::arg("grad_log_q"), py::arg("context") = py::none(),
            "Gradients of sum(grad_log_q * log q(x)) w.r.t. parameters, x and context (a dict with log_q).")
        .def(
            "sample_gradients",
            [](Flow& f, const InputArray& zs, const InputArray& gradX, const InputArray& gradLogQ,
               const py::object& context) {
                Eigen::MatrixXd z = batchFromNumpy(zs, f.getDimension(), "z");
                Eigen::MatrixXd gx = batchFromNumpy(gradX, f.getDimension(), "grad_x");
                auto ctx = contextFromPython(context, f.getContextDimension());
                if (gradLogQ.ndim() != 1 || gradLogQ.shape(0) != z.cols() || gx.cols() != z.cols())
                    throw Error("grad_x (n, dimension) and grad_log_q (n,) must match z's n samples");
                Eigen::VectorXd gl = Eigen::Map<const Eigen::VectorXd>(gradLogQ.data(), z.cols());
                Eigen::MatrixXd x, gradContext, gradZ;
                Eigen::VectorXd logQ;
                std::vector<double> params(f.getNumParameters(), 0.0);
                if (ctx)
                    gradContext = Eigen::MatrixXd::Zero(ctx->rows(), ctx->cols());
                {
                    py::gil_scoped_release release;
                    f.transformFromBase(z, pointer(ctx), x, logQ, true);
                    f.backwardSample(gx, gl, params.data(), ctx ? &gradContext : nullptr, &gradZ);
                }
                py::dict d;
                d["x"] = batchToNumpy(x);
                d["log_q"] = vectorToNumpy(logQ.data(), logQ.size());
                d["parameters"] = vectorToNumpy(params.data(), params.size());
                d["z"] = batchToNumpy(gradZ);
                if (ctx)
                    d["context"] = batchToNumpy(gradContext);
                return d;
            },
            py::arg("z"), py::arg("grad_x"), py::arg("grad_log_q"), py::arg("context") = py::none(),
            "Pathwise gradients of sum(grad_x * x) + sum(grad_log_q * log q) for x = f(z), w.r.t. parameters, z "
            "and context (a dict that also holds x and log_q).");

    py::class_<ModelTrainer> trainer(m, "ModelTrainer", R"doc(
Trains a Flow by reverse KL (energies and forces from the caller) or forward KL (samples), with
Adam/AdamW, warm-up/cosine schedules, gradient clipping and the papers' skip/clip guard.
Options dict: optimizer ("adam"|"adamw"), learning_rate, beta1, beta2, epsilon, weight_decay,
warmup_steps, cosine_steps, final_learning_rate, max_gradient_norm, guard (True or a dict),
drop_largest_losses (reverse KL: leave the k largest per-sample losses out of each step).
Any trainable model: a Flow, a SlowFastModel or an EncoderDecoderModel.)doc");
    trainer.def(py::init([](Flow& flow, const py::object& options) {
                 return std::make_unique<ModelTrainer>(
                     flow, train::ModelTrainerOptions::fromJson(options.is_none() ? nlohmann::json::object()
                                                                                  : pyToJson(options, "options")));
             }),
             py::arg("flow"), py::arg("options") = py::none(), py::keep_alive<1, 2>())
        .def(
            "sample",
            [](ModelTrainer& t, int n, uint64_t seed, const py::object& context) {
                auto ctx = context.is_none() ? std::nullopt
                                             : contextFromPython(context, t.getFlow().getContextDimension());
                Eigen::MatrixXd x;
                Eigen::VectorXd logQ;
                {
                    py::gil_scoped_release release;
                    t.sample(n, seed, pointer(ctx), x, logQ);
                }
                return py::make_tuple(batchToNumpy(x), vectorToNumpy(logQ.data(), logQ.size()));
            },
            py::arg("n"), py::arg("seed"), py::arg("context") = py::none(),
            "(x, log_q) for a reverse-KL step; compute energies and forces at x, then call reverse_kl_step.")
        .def(
            "reverse_kl_step",
            [](ModelTrainer& t, const InputArray& energies, const InputArray& forces, double beta) {
                const int dim = t.getModel().getDimension();
                if (energies.ndim() != 1)
                    throw Error("energies must be a 1-D array with one energy per sample");
                Eigen::VectorXd u = Eigen::Map<const Eigen::VectorXd>(energies.data(), energies.shape(0));
                Eigen::MatrixXd f = batchFromNumpy(forces, dim, "forces");
                train::TrainStepReport report;
                {
                    py::gil_scoped_release release;
                    report = t.reverseKLStep(u, f, beta);
                }
                return reportToDict(report);
            },
            py::arg("energies"), py::arg("forces"), py::arg("beta") = 1.0,
            "One update of mean(beta U + log q) from the last sample(): forces = -dU/dx, shape (n, dimension).")
        .def(
            "forward_kl_step",
            [](ModelTrainer& t, const InputArray& xs, const py::object& context, const py::object& weights) {
                Eigen::MatrixXd x = batchFromNumpy(xs, t.getModel().getDimension(), "x");
                std::optional<Eigen::VectorXd> w;
                if (!weights.is_none()) {
                    const std::vector<double> values = vectorFromNumpy(weights.cast<DoubleArray>(), "weights");
                    w = Eigen::Map<const Eigen::VectorXd>(values.data(), static_cast<Eigen::Index>(values.size()));
                }
                // Only a Flow is conditional; other models take no context (and refuse one).
                auto* flow = dynamic_cast<flows::Flow*>(&t.getModel());
                auto ctx = contextFromPython(context, flow != nullptr ? flow->getContextDimension() : 0);
                train::TrainStepReport report;
                {
                    py::gil_scoped_release release;
                    report = t.forwardKLStep(x, pointer(ctx), w ? &*w : nullptr);
                }
                return reportToDict(report);
            },
            py::arg("x"), py::arg("context") = py::none(), py::arg("weights") = py::none(),
            "One maximum-likelihood (forward-KL) update on the rows of x, optionally weighted (weights (n,), "
            "finite, >= 0): a Flow or a SlowFastModel (exact log q through the map's inverse); the "
            "encoder-decoder model has no exact density and raises.")
        .def(
            "flow_matching_step",
            [](ModelTrainer& t, const InputArray& xs, uint64_t seed, bool optimalTransport) {
                Eigen::MatrixXd x = batchFromNumpy(xs, t.getModel().getDimension(), "x1");
                train::TrainStepReport report;
                {
                    py::gil_scoped_release release;
                    report = t.flowMatchingStep(x, seed, optimalTransport);
                }
                return reportToDict(report);
            },
            py::arg("x1"), py::arg("seed"), py::arg("optimal_transport") = false,
            "One conditional flow-matching update of a continuous flow on the data rows x1: base points and "
            "times t ~ U(0, 1) drawn from seed, optionally paired by minibatch optimal transport; loss = mean over "
            "samples and dimensions of |v(x_t, t) - (x1 - x0)|^2 (shortest arcs on circular dimensions).")
        .def_property_readonly("step_count", [](ModelTrainer& t) { return t.getOptimizer().getStepCount(); })
        .def_property_readonly("learning_rate", [](ModelTrainer& t) { return t.getOptimizer().getLearningRate(); })
        .def_property_readonly("options", [](ModelTrainer& t) { return jsonToPy(t.getOptions().toJson()); })
        .def(
            "save",
            [](ModelTrainer& t, const std::string& path, const py::object& info) {
                io::writeFileAtomic(path, io::encodeFlow(t.getFlow(), &t,
                                                         info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
            },
            py::arg("path"), py::arg("info") = py::none(),
            "Write the flow with the optimizer state (a resumable checkpoint), atomically.");

    // The other trainable models (core/models).
    trainer.def(py::init([](models::SlowFastModel& model, const py::object& options) {
                    return std::make_unique<train::ModelTrainer>(
                        static_cast<train::TrainableModel&>(model),
                        train::ModelTrainerOptions::fromJson(options.is_none() ? nlohmann::json::object() : pyToJson(options, "options")));
                }),
                py::arg("model"), py::arg("options") = py::none(), py::keep_alive<1, 2>());
    trainer.def(py::init([](models::EncoderDecoderModel& model, const py::object& options) {
                    return std::make_unique<train::ModelTrainer>(
                        static_cast<train::TrainableModel&>(model),
                        train::ModelTrainerOptions::fromJson(options.is_none() ? nlohmann::json::object() : pyToJson(options, "options")));
                }),
                py::arg("model"), py::arg("options") = py::none(), py::keep_alive<1, 2>());
    // The optimizer and guard state as numpy arrays, so that any trainer (not only a flow's, whose
    // model files carry it) can be checkpointed and resumed bit for bit.
    trainer.def("get_state", [](train::ModelTrainer& t) {
        const optim::AdamState adam = t.getOptimizer().getState();
        py::dict d;
        d["step_count"] = adam.stepCount;
        d["first_moment"] = eigenVectorToNumpy(Eigen::Map<const Eigen::VectorXd>(adam.firstMoment.data(), adam.firstMoment.size()));
        d["second_moment"] = eigenVectorToNumpy(Eigen::Map<const Eigen::VectorXd>(adam.secondMoment.data(), adam.secondMoment.size()));
        if (t.getGuard() != nullptr) {
            const optim::GradientGuard::State g = t.getGuard()->getState();
            d["guard_history"] = eigenVectorToNumpy(Eigen::Map<const Eigen::VectorXd>(g.history.data(), g.history.size()));
            d["guard_counters"] = std::vector<int64_t>{g.numAccepted, g.numClipped, g.numSkipped, g.consecutiveSkips};
        }
        return d;
    }, "The optimizer's moments and step count and the guard's history: what set_state needs to resume.");
    trainer.def("set_state", [](train::ModelTrainer& t, const py::dict& d) {
        optim::AdamState adam;
        adam.stepCount = d["step_count"].cast<int64_t>();
        adam.firstMoment = vectorFromNumpy(d["first_moment"].cast<DoubleArray>(), "first_moment");
        adam.secondMoment = vectorFromNumpy(d["second_moment"].cast<DoubleArray>(), "second_moment");
        t.getOptimizer().setState(adam);
        if (t.getGuard() != nullptr) {
            if (!d.contains("guard_history") || !d.contains("guard_counters"))
                throw Error("state: this trainer has a guard, so guard_history and guard_counters are required");
            optim::GradientGuard::State g;
            g.history = vectorFromNumpy(d["guard_history"].cast<DoubleArray>(), "guard_history");
            std::vector<int64_t> c = d["guard_counters"].cast<std::vector<int64_t>>();
            if (c.size() != 4)
                throw Error("state: guard_counters must have 4 values");
            g.numAccepted = c[0];
            g.numClipped = c[1];
            g.numSkipped = c[2];
            g.consecutiveSkips = static_cast<int>(c[3]);
            t.getGuard()->setState(g);
        }
    }, py::arg("state"));
    // A driver that changes the rate between phases (train_data_free's final phase) sets it per step,
    // so the rate is a function of the run position and a resumed run sets the same values.
    trainer.def("set_learning_rate", [](train::ModelTrainer& t, double learningRate) {
        if (!(learningRate >= 0) || !std::isfinite(learningRate))
            throw Error("learning_rate must be finite and >= 0, got " + std::to_string(learningRate));
        t.getOptimizer().setLearningRate(learningRate);
    }, py::arg("learning_rate"), "A constant learning rate from the next step on (replaces any schedule).");

    py::class_<optim::CosineDecaySchedule>(m, "CosineDecaySchedule", R"doc(
Half a cosine from initial_learning_rate at step 0 down to final_learning_rate at step decay_steps,
constant afterwards: lr(t) = final + (initial - final) (1 + cos(pi min(t, T) / T)) / 2. The schedule
ModelTrainer's "cosine_steps" option uses; drivers that restart a decay per phase call it directly.)doc")
        .def(py::init<double, int64_t, double>(), py::arg("initial_learning_rate"), py::arg("decay_steps"),
             py::arg("final_learning_rate") = 0.0)
        .def("__call__", [](const optim::CosineDecaySchedule& s, int64_t step) { return s.getLearningRate(step); },
             py::arg("step"), "The learning rate of update `step` (>= 0).");

    m.def(
        "load_flow_trainer",
        [](const std::string& path) {
            io::DecodedFlow decoded = io::decodeFlow(io::readFileBytes(path), path);
            std::unique_ptr<ModelTrainer> trainer = io::restoreTrainer(decoded);
            py::object flow = py::cast(std::move(decoded.flow));
            py::object t = py::cast(std::move(trainer));
            // The trainer refers to the flow: keep the flow alive as long as the trainer.
            py::detail::keep_alive_impl(t, flow);
            return py::make_tuple(flow, t);
        },
        py::arg("path"), "(flow, trainer) from a checkpoint written by ModelTrainer.save, ready to resume.");
    m.def(
        "minimum_cost_assignment",
        [](const InputArray& cost) {
            if (cost.ndim() != 2)
                throw Error("cost must be a square 2-D array");
            Eigen::MatrixXd c(cost.shape(0), cost.shape(1));
            for (py::ssize_t i = 0; i < cost.shape(0); i++)
                for (py::ssize_t j = 0; j < cost.shape(1); j++)
                    c(i, j) = cost.at(i, j);
            return train::minimumCostAssignment(c);
        },
        py::arg("cost"),
        "The minimum-cost perfect matching of a square cost matrix (Kuhn-Munkres): result[i] is the column of row "
        "i. The exact OT plan between two equal-sized samples, as flow matching's minibatch OT coupling uses it.");
}
