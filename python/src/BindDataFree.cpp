// _core bindings for the models of data-free coarse-graining (core/models): SlowFastModel and
// EncoderDecoderModel. They are trained by ModelTrainer (BindFlows.cpp); the adaptive-tempering
// rules are in the stats submodule (BindStats.cpp). Batches cross as (n, dimension) numpy arrays.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/models/EncoderDecoderModel.h"
#include "cgflow/flows/RightStochasticLinear.h"
#include "cgflow/models/SlowFastModel.h"
#include "cgflow/io/models/SlowFastModelFile.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>

namespace py = pybind11;
using namespace cgflow;
using models::SlowFastModel;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

py::array_t<double> rows(const Eigen::MatrixXd& m) {
    py::array_t<double> out({static_cast<py::ssize_t>(m.cols()), static_cast<py::ssize_t>(m.rows())});
    if (m.size() > 0)  // an empty matrix's data() is null: memcpy from it is UB even for 0 bytes
        std::memcpy(out.mutable_data(), m.data(), sizeof(double) * m.size());
    return out;
}

py::array_t<double> vector(const Eigen::VectorXd& v) {
    py::array_t<double> out(static_cast<py::ssize_t>(v.size()));
    if (v.size() > 0)
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
Train it with ModelTrainer(model, options).)doc")
        .def(py::init([](const py::object& config) { return std::make_unique<SlowFastModel>(pyToJson(config, "config")); }),
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
            checkFiniteParameters(p.data(), s.getNumParameters());
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
            return toBytes(io::encodeSlowFastModel(s, info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
        }, py::arg("info") = py::none(), "A model file of kind \"slow_fast_model\" (config + parameters).")
        .def_static("from_bytes", [](const py::bytes& data) {
            return io::decodeSlowFastModel(std::string(data), "model bytes");
        }, py::arg("data"));

    py::class_<models::EncoderDecoderModel>(m, "EncoderDecoderModel", R"doc(
The embedded-physics CG model: z ~ N(0, I), Gaussian decoder q(x | z), Gaussian encoder r(z | x).
Its per-sample "log q" is the bound's surrogate log q(z) + log q(x|z) - log r(z|x), so ModelTrainer's
reverse-KL step minimizes beta <U> + <surrogate> (Eq. 42). Config: {"latent_dimension", "data_dimension",
"decoder": {...}, "encoder": {...}, "prior" (optional: a flow config, q(z) learned instead of N(0, I);
"dimension" filled in), "seed"}.)doc")
        .def(py::init([](const py::object& config) {
                 return std::make_unique<models::EncoderDecoderModel>(pyToJson(config, "config"));
             }),
             py::arg("config"))
        .def_property_readonly("config", [](const models::EncoderDecoderModel& e) { return jsonToPy(e.getConfig()); })
        .def_property_readonly("dimension", &models::EncoderDecoderModel::getDimension)
        .def_property_readonly("latent_dimension", &models::EncoderDecoderModel::getLatentDimension)
        .def_property_readonly("has_prior_flow", &models::EncoderDecoderModel::hasPriorFlow)
        .def_property_readonly("num_parameters", &models::EncoderDecoderModel::getNumParameters)
        .def("get_parameters", [](const models::EncoderDecoderModel& e) {
            Eigen::VectorXd p(e.getNumParameters());
            e.getParameters(p.data());
            return vector(p);
        })
        .def("set_parameters", [](models::EncoderDecoderModel& e, const Array& p) {
            if (p.ndim() != 1 || static_cast<size_t>(p.shape(0)) != e.getNumParameters())
                throw Error("parameters: expected " + std::to_string(e.getNumParameters()) + " values");
            checkFiniteParameters(p.data(), e.getNumParameters());
            e.setParameters(p.data());
        }, py::arg("parameters"))
        .def("sample", [](models::EncoderDecoderModel& e, int n, uint64_t seed) {
            Eigen::MatrixXd x, z;
            Eigen::VectorXd s;
            {
                py::gil_scoped_release release;
                e.sample(n, seed, x, s, &z);
            }
            return py::make_tuple(rows(x), vector(s), rows(z));
        }, py::arg("n"), py::arg("seed"), "(x (n, D), surrogate log q (n,), z (n, d))")
        .def("encode", [](const models::EncoderDecoderModel& e, const Array& x) {
            if (x.ndim() != 2 || x.shape(1) != e.getDimension())
                throw Error("x: expected shape (n, " + std::to_string(e.getDimension()) + ")");
            return rows(e.encode(Eigen::Map<const Eigen::MatrixXd>(x.data(), e.getDimension(), x.shape(0))));
        }, py::arg("x"), "The encoder's mean of z: the learned collective variables, (n, d).");
}
