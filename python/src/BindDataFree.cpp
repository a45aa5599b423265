// _core bindings for data-free coarse-graining: SlowFastModel (trained by FlowTrainer) and the
// adaptive-tempering rules. Batches cross as (n, dimension) numpy arrays.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/flows/EncoderDecoderModel.h"
#include "cgflow/flows/FlowTrainer.h"
#include "cgflow/flows/RightStochasticLinear.h"
#include "cgflow/flows/SlowFastModel.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/stats/Tempering.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>

namespace py = pybind11;
using namespace cgflow;
using flows::SlowFastModel;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
constexpr const char* SlowFastKind = "slow_fast_model";

py::array_t<double> rows(const Eigen::MatrixXd& m) {
    py::array_t<double> out({static_cast<py::ssize_t>(m.cols()), static_cast<py::ssize_t>(m.rows())});
    std::memcpy(out.mutable_data(), m.data(), sizeof(double) * m.size());
    return out;
}

py::array_t<double> vector(const Eigen::VectorXd& v) {
    py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
    std::memcpy(out.mutable_data(), v.data(), sizeof(double) * v.size());
    return out;
}

py::array_t<double> matrix(const Eigen::MatrixXd& m) {
    py::array_t<double> out({static_cast<py::ssize_t>(m.rows()), static_cast<py::ssize_t>(m.cols())});
    for (Eigen::Index i = 0; i < m.rows(); i++)
        for (Eigen::Index j = 0; j < m.cols(); j++)
            out.mutable_at(i, j) = m(i, j);
    return out;
}

const flows::RightStochasticLinear& rightStochastic(const SlowFastModel& model) {
    auto* map = dynamic_cast<const flows::RightStochasticLinear*>(&model.getMap());
    if (map == nullptr)
        throw Error("the model's map is not a right_stochastic_linear layer");
    return *map;
}

} // namespace

void bindDataFree(py::module_& m) {
    py::class_<SlowFastModel>(m, "SlowFastModel", R"doc(
The data-free CG latent model: z ~ flow (slow), X | z ~ diagonal Gaussian (fast), x = A [z; X] with a
learnable right-stochastic (or permutation) map. Config: {"slow": flow config, "fast":
gaussian_conditional config, "fast_flow" (optional): flow config of a conditional flow (context z,
standard-normal base) on the Gaussian's noise, started at the identity, for a z-dependent shape of X | z,
"map": {"type": "right_stochastic_linear", "num_atoms": M, "components_per_atom": k, ...}, "seed": s}.
Train it with FlowTrainer(model, options).)doc")
        .def(py::init([](const py::object& config) { return std::make_unique<SlowFastModel>(pyToJson(config)); }),
             py::arg("config"))
        .def_property_readonly("config", [](const SlowFastModel& s) { return jsonToPy(s.getConfig()); })
        .def_property_readonly("dimension", &SlowFastModel::getDimension)
        .def_property_readonly("slow_dimension", &SlowFastModel::getSlowDimension)
        .def_property_readonly("has_fast_flow", &SlowFastModel::hasFastFlow)
        .def_property_readonly("num_parameters", &SlowFastModel::getNumParameters)
        .def("get_parameters", [](const SlowFastModel& s) {
            Eigen::VectorXd p(s.getNumParameters());
            s.getParameters(p.data());
            return vector(p);
        })
        .def("set_parameters", [](SlowFastModel& s, const Array& p) {
            if (p.ndim() != 1 || static_cast<size_t>(p.shape(0)) != s.getNumParameters())
                throw Error("parameters: expected " + std::to_string(s.getNumParameters()) + " values");
            s.setParameters(p.data());
        }, py::arg("parameters"))
        .def("initialize_parameters", &SlowFastModel::initializeParameters, py::arg("seed"))
        .def("sample", [](SlowFastModel& s, int n, uint64_t seed) {
            Eigen::MatrixXd x, latent;
            Eigen::VectorXd logQ;
            {
                py::gil_scoped_release release;
                s.sample(n, seed, x, logQ, &latent);
            }
            return py::make_tuple(rows(x), vector(logQ), rows(latent));
        }, py::arg("n"), py::arg("seed"), "(x (n, dimension), log q(x), latent [z, X] (n, dimension))")
        .def("sample_given_slow", [](SlowFastModel& s, const Array& z, uint64_t seed) {
            if (z.ndim() != 2 || z.shape(1) != s.getSlowDimension())
                throw Error("z: expected shape (n, " + std::to_string(s.getSlowDimension()) + ")");
            Eigen::MatrixXd slow = Eigen::Map<const Eigen::MatrixXd>(z.data(), s.getSlowDimension(), z.shape(0));
            Eigen::MatrixXd x;
            Eigen::VectorXd logQ, logQFast;
            {
                py::gil_scoped_release release;
                s.sampleGivenSlow(slow, seed, x, logQ, &logQFast);
            }
            return py::make_tuple(rows(x), vector(logQ), vector(logQFast));
        }, py::arg("z"), py::arg("seed"),
           "Back-mapping: (x (n, dimension), joint log q(x), log q(X | z)) with X | z drawn for the given slow z (n, slow_dimension)")
        .def("log_prob", [](SlowFastModel& s, const Array& x) {
            if (x.ndim() != 2 || x.shape(1) != s.getDimension())
                throw Error("x: expected shape (n, " + std::to_string(s.getDimension()) + ")");
            Eigen::MatrixXd data = Eigen::Map<const Eigen::MatrixXd>(x.data(), s.getDimension(), x.shape(0));
            Eigen::MatrixXd latent;
            Eigen::VectorXd logQ;
            s.logProb(data, logQ, &latent);
            return py::make_tuple(vector(logQ), rows(latent));
        }, py::arg("x"), "(exact log q(x), latent [z, X]) of given x")
        .def_property_readonly("map_matrix", [](const SlowFastModel& s) { return matrix(rightStochastic(s).getMatrix()); },
                               "A of x = A y (right-stochastic maps only)")
        .def_property_readonly("map_inverse", [](const SlowFastModel& s) {
            return matrix(rightStochastic(s).getInverseMatrix());
        }, "A^-1: y = A^-1 x, so its first rows say which coordinates the slow variables are")
        .def("to_bytes", [](const SlowFastModel& s, const py::object& info) {
            io::ModelFile file;
            file.kind = SlowFastKind;
            file.architecture = {{"model", s.getConfig()}};
            file.info = info.is_none() ? nlohmann::json::object() : pyToJson(info);
            std::vector<double> p(s.getNumParameters());
            s.getParameters(p.data());
            file.tensors["parameters"] = io::Tensor::fromDoubles({static_cast<int64_t>(p.size())}, p.data());
            return toBytes(file.serialize());
        }, py::arg("info") = py::none(), "A model file of kind \"slow_fast_model\" (config + parameters).")
        .def_static("from_bytes", [](const py::bytes& data) {
            io::ModelFile file = io::ModelFile::parse(std::string(data), "model bytes");
            if (file.kind != SlowFastKind)
                throw Error("model bytes: kind is '" + file.kind + "', expected '" + SlowFastKind + "'");
            auto model = std::make_unique<SlowFastModel>(file.architecture.at("model"));
            std::vector<double> p = file.getTensor("parameters", {static_cast<int64_t>(model->getNumParameters())})
                                        .toDoubles("parameters");
            model->setParameters(p.data());
            return model;
        }, py::arg("data"));

    py::class_<flows::EncoderDecoderModel>(m, "EncoderDecoderModel", R"doc(
The embedded-physics CG model: z ~ N(0, I), Gaussian decoder q(x | z), Gaussian encoder r(z | x).
Its per-sample "log q" is the bound's surrogate log q(z) + log q(x|z) - log r(z|x), so FlowTrainer's
reverse-KL step minimizes beta <U> + <surrogate> (Eq. 42). Config: {"latent_dimension", "data_dimension",
"decoder": {...}, "encoder": {...}, "prior" (optional: a flow config, q(z) learned instead of N(0, I);
"dimension" filled in), "seed"}.)doc")
        .def(py::init([](const py::object& config) {
                 return std::make_unique<flows::EncoderDecoderModel>(pyToJson(config));
             }),
             py::arg("config"))
        .def_property_readonly("config", [](const flows::EncoderDecoderModel& e) { return jsonToPy(e.getConfig()); })
        .def_property_readonly("dimension", &flows::EncoderDecoderModel::getDimension)
        .def_property_readonly("latent_dimension", &flows::EncoderDecoderModel::getLatentDimension)
        .def_property_readonly("has_prior_flow", &flows::EncoderDecoderModel::hasPriorFlow)
        .def_property_readonly("num_parameters", &flows::EncoderDecoderModel::getNumParameters)
        .def("get_parameters", [](const flows::EncoderDecoderModel& e) {
            Eigen::VectorXd p(e.getNumParameters());
            e.getParameters(p.data());
            return vector(p);
        })
        .def("set_parameters", [](flows::EncoderDecoderModel& e, const Array& p) {
            if (p.ndim() != 1 || static_cast<size_t>(p.shape(0)) != e.getNumParameters())
                throw Error("parameters: expected " + std::to_string(e.getNumParameters()) + " values");
            e.setParameters(p.data());
        }, py::arg("parameters"))
        .def("sample", [](flows::EncoderDecoderModel& e, int n, uint64_t seed) {
            Eigen::MatrixXd x, z;
            Eigen::VectorXd s;
            {
                py::gil_scoped_release release;
                e.sample(n, seed, x, s, &z);
            }
            return py::make_tuple(rows(x), vector(s), rows(z));
        }, py::arg("n"), py::arg("seed"), "(x (n, D), surrogate log q (n,), z (n, d))")
        .def("encode", [](const flows::EncoderDecoderModel& e, const Array& x) {
            if (x.ndim() != 2 || x.shape(1) != e.getDimension())
                throw Error("x: expected shape (n, " + std::to_string(e.getDimension()) + ")");
            return rows(e.encode(Eigen::Map<const Eigen::MatrixXd>(x.data(), e.getDimension(), x.shape(0))));
        }, py::arg("x"), "The encoder's mean of z: the learned collective variables, (n, d).");

    // A trainer for any TrainableModel: reuse the Python FlowTrainer class with these constructors.
    py::class_<flows::FlowTrainer> trainer = py::reinterpret_borrow<py::class_<flows::FlowTrainer>>(m.attr("FlowTrainer"));
    trainer.def(py::init([](SlowFastModel& model, const py::object& options) {
                    return std::make_unique<flows::FlowTrainer>(
                        static_cast<flows::TrainableModel&>(model),
                        flows::FlowTrainerOptions::fromJson(options.is_none() ? nlohmann::json::object() : pyToJson(options)));
                }),
                py::arg("model"), py::arg("options") = py::none(), py::keep_alive<1, 2>());
    trainer.def(py::init([](flows::EncoderDecoderModel& model, const py::object& options) {
                    return std::make_unique<flows::FlowTrainer>(
                        static_cast<flows::TrainableModel&>(model),
                        flows::FlowTrainerOptions::fromJson(options.is_none() ? nlohmann::json::object() : pyToJson(options)));
                }),
                py::arg("model"), py::arg("options") = py::none(), py::keep_alive<1, 2>());
    // The optimizer and guard state as numpy arrays, so that any trainer (not only a flow's, whose
    // model files carry it) can be checkpointed and resumed bit for bit.
    trainer.def("get_state", [](flows::FlowTrainer& t) {
        const optim::AdamState adam = t.getOptimizer().getState();
        py::dict d;
        d["step_count"] = adam.stepCount;
        d["first_moment"] = vector(Eigen::Map<const Eigen::VectorXd>(adam.firstMoment.data(), adam.firstMoment.size()));
        d["second_moment"] = vector(Eigen::Map<const Eigen::VectorXd>(adam.secondMoment.data(), adam.secondMoment.size()));
        if (t.getGuard() != nullptr) {
            const optim::GradientGuard::State g = t.getGuard()->getState();
            d["guard_history"] = vector(Eigen::Map<const Eigen::VectorXd>(g.history.data(), g.history.size()));
            d["guard_counters"] = std::vector<int64_t>{g.numAccepted, g.numClipped, g.numSkipped, g.consecutiveSkips};
        }
        return d;
    }, "The optimizer's moments and step count and the guard's history: what set_state needs to resume.");
    trainer.def("set_state", [](flows::FlowTrainer& t, const py::dict& d) {
        optim::AdamState adam;
        adam.stepCount = d["step_count"].cast<int64_t>();
        adam.firstMoment = vectorFromNumpy(d["first_moment"].cast<Array>(), "first_moment");
        adam.secondMoment = vectorFromNumpy(d["second_moment"].cast<Array>(), "second_moment");
        t.getOptimizer().setState(adam);
        if (t.getGuard() != nullptr) {
            if (!d.contains("guard_history") || !d.contains("guard_counters"))
                throw Error("state: this trainer has a guard, so guard_history and guard_counters are required");
            optim::GradientGuard::State g;
            g.history = vectorFromNumpy(d["guard_history"].cast<Array>(), "guard_history");
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
    trainer.def("set_learning_rate", [](flows::FlowTrainer& t, double learningRate) {
        if (!(learningRate >= 0) || !std::isfinite(learningRate))
            throw Error("learning_rate must be finite and >= 0, got " + std::to_string(learningRate));
        t.getOptimizer().setLearningRate(learningRate);
    }, py::arg("learning_rate"), "A constant learning rate from the next step on (replaces any schedule).");

    py::module_ s = m.attr("stats").cast<py::module_>();
    s.def("tempering_statistics", [](const Array& u, const Array& logQ, double beta, const py::object& objective) {
        const stats::TemperingStatistics t =
            stats::temperingStatistics(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, optionalVectorFromNumpy(objective, "objective_log_q"));
        py::dict d;
        d["kl"] = t.klEstimate;
        d["log_z"] = t.logZ;
        d["mean_energy"] = t.meanEnergy;
        d["ess_fraction"] = t.essFraction;
        d["num_finite"] = t.numFinite;
        return d;
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("objective_log_q") = py::none());
    s.def("relative_kl_increase", [](const Array& u, const Array& logQ, double beta, double d, const py::object& objective,
                                     double floor) {
        return stats::relativeKLIncrease(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, d, optionalVectorFromNumpy(objective, "objective_log_q"), floor);
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("delta_beta"), py::arg("objective_log_q") = py::none(),
       py::arg("kl_floor") = 1e-3);
    s.def("adaptive_temperature_step", [](const Array& u, const Array& logQ, double beta, double target, double cmax,
                                          double maxStep, const py::object& objective, double floor) {
        return stats::adaptiveTemperatureStep(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, target, cmax, maxStep,
                                              optionalVectorFromNumpy(objective, "objective_log_q"), floor);
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("beta_target"), py::arg("max_relative_increase"),
       py::arg("max_step"), py::arg("objective_log_q") = py::none(), py::arg("kl_floor") = 1e-3,
       "Rule (a) of the data-free CG paper (Eq. 23): the step whose relative KL increase is max_relative_increase.");
    s.def("shrinking_temperature_step", [](const Array& u, const Array& logQ, double beta, double target, double cmax,
                                           double maxStep, const py::object& objective, double floor) {
        return stats::shrinkingTemperatureStep(vectorFromNumpy(u, "energies"), vectorFromNumpy(logQ, "log_q"), beta, target, cmax, maxStep,
                                               optionalVectorFromNumpy(objective, "objective_log_q"), floor);
    }, py::arg("energies"), py::arg("log_q"), py::arg("beta"), py::arg("beta_target"), py::arg("max_relative_increase"),
       py::arg("max_step"), py::arg("objective_log_q") = py::none(), py::arg("kl_floor") = 1e-3,
       "Rule (b) of the embedded-physics paper: max_step shrunk by 0.6 until the increase is within the limit.");
}
