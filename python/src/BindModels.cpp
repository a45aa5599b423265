// _core bindings for models and files: MLP ensembles, model files, safetensors.
#include "cgflow/Error.h"
#include "cgflow/io/FileUtils.h"
#include "cgflow/io/models/MLPEnsembleFile.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/io/SafeTensors.h"
#include "cgflow/nn/MLPEnsemble.h"
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include "Bindings.h"

namespace py = pybind11;
using namespace cgflow;

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/** nn::parseActivation, with an error that names the argument ("activation" or "output_activation"). */
nn::Activation parseActivationArgument(const std::string& value, const char* argument) {
    try {
        return nn::parseActivation(value);
    } catch (const Error& error) {
        throw Error(std::string(argument) + ": " + error.what());
    }
}

/** weights[m][l] has shape (out, in); biases[m][l] shape (out,). */
nn::MLPEnsemble ensembleFromArrays(const std::vector<std::vector<RowMatrix>>& weights,
                                   const std::vector<std::vector<Eigen::VectorXd>>& biases,
                                   const std::string& activation, const std::string& outputActivation) {
    if (weights.empty())
        throw Error("weights: need at least one ensemble member (a list of per-member lists of (out, in) arrays)");
    if (biases.size() != weights.size())
        throw Error("biases: has " + std::to_string(biases.size()) + " members but weights has " + std::to_string(weights.size()));
    nn::Activation hidden = parseActivationArgument(activation, "activation");
    nn::Activation output = parseActivationArgument(outputActivation, "output_activation");
    std::vector<nn::MLP> members;
    for (size_t m = 0; m < weights.size(); m++) {
        const std::vector<RowMatrix>& w = weights[m];
        if (w.empty())
            throw Error("weights[" + std::to_string(m) + "]: needs at least one layer");
        if (biases[m].size() != w.size())
            throw Error("biases[" + std::to_string(m) + "]: has " + std::to_string(biases[m].size()) + " layers, weights has " + std::to_string(w.size()));
        std::vector<int> widths{(int) w[0].cols()};
        for (size_t l = 0; l < w.size(); l++) {
            std::string where = "[" + std::to_string(m) + "][" + std::to_string(l) + "]";
            if (l > 0 && w[l].cols() != w[l - 1].rows())
                throw Error("weights" + where + ": has " + std::to_string(w[l].cols()) + " inputs but the previous layer has " +
                            std::to_string(w[l - 1].rows()) + " outputs");
            if (biases[m][l].size() != w[l].rows())
                throw Error("biases" + where + ": length " + std::to_string(biases[m][l].size()) + ", expected " + std::to_string(w[l].rows()));
            // Refused here, not only when the model's bytes are read back (from_bytes, PMFForce).
            if (!w[l].allFinite())
                throw Error("weights" + where + ": has a non-finite value (NaN or infinity)");
            if (!biases[m][l].allFinite())
                throw Error("biases" + where + ": has a non-finite value (NaN or infinity)");
            widths.push_back((int) w[l].rows());
        }
        nn::MLP mlp(widths, hidden, output);
        for (size_t l = 0; l < w.size(); l++) {
            mlp.weight((int) l) = w[l];
            mlp.bias((int) l) = biases[m][l];
        }
        members.push_back(std::move(mlp));
    }
    return nn::MLPEnsemble(std::move(members));
}

py::dict ensembleToDict(const nn::MLPEnsemble& e) {
    py::dict d;
    const nn::MLP& first = e.getMember(0);
    d["widths"] = first.getWidths();
    d["activation"] = nn::activationName(first.getHiddenActivation());
    d["output_activation"] = nn::activationName(first.getOutputActivation());
    py::list weights, biases;
    for (int m = 0; m < e.getNumMembers(); m++) {
        py::list w, b;
        for (int l = 0; l < e.getMember(m).getNumLayers(); l++) {
            w.append(RowMatrix(e.getMember(m).weight(l)));
            b.append(Eigen::VectorXd(e.getMember(m).bias(l)));
        }
        weights.append(w);
        biases.append(b);
    }
    d["weights"] = weights;
    d["biases"] = biases;
    return d;
}

io::Tensor tensorFromArray(const std::string& name, const py::array& array) {
    io::Tensor t;
    py::dtype dt = array.dtype();
    if (dt.is(py::dtype::of<double>()))
        t.dtype = io::DType::F64;
    else if (dt.is(py::dtype::of<float>()))
        t.dtype = io::DType::F32;
    else if (dt.is(py::dtype::of<int64_t>()))
        t.dtype = io::DType::I64;
    else if (dt.is(py::dtype::of<int32_t>()))
        t.dtype = io::DType::I32;
    else if (dt.is(py::dtype::of<uint8_t>()))
        t.dtype = io::DType::U8;
    else
        throw Error("tensors['" + name + "']: unsupported dtype " + py::str(dt).cast<std::string>() +
                    " (float64, float32, int64, int32, uint8)");
    py::array c = py::array::ensure(array, py::array::c_style);
    for (py::ssize_t i = 0; i < c.ndim(); i++)
        t.shape.push_back(c.shape(i));
    t.bytes.assign(static_cast<const char*>(c.data()), c.nbytes());
    return t;
}

py::array arrayFromTensor(const io::Tensor& t) {
    std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
    py::dtype dt;
    switch (t.dtype) {
    case io::DType::F64: dt = py::dtype::of<double>(); break;
    case io::DType::F32: dt = py::dtype::of<float>(); break;
    case io::DType::I64: dt = py::dtype::of<int64_t>(); break;
    case io::DType::I32: dt = py::dtype::of<int32_t>(); break;
    default: dt = py::dtype::of<uint8_t>(); break;
    }
    py::array a(dt, shape);
    if (!t.bytes.empty())  // an empty tensor's bytes.data() may be null
        std::memcpy(a.mutable_data(), t.bytes.data(), t.bytes.size());
    return a;
}

} // namespace

void bindModels(py::module_& m) {
    m.attr("MODEL_FORMAT_VERSION") = io::ModelFormatVersion;

    py::class_<nn::MLPEnsemble>(m, "MLPEnsemble",
        "An ensemble of MLPs with a scalar output: prediction = mean, spread = population std.")
        .def(py::init([](std::vector<int> widths, int numMembers, const std::string& activation,
                         const std::string& outputActivation, uint64_t seed) {
                 if (numMembers < 1)
                     throw Error("num_members: must be >= 1, got " + std::to_string(numMembers));
                 if (widths.size() >= 2 && widths.back() != 1)
                     throw Error("widths: the last width is the output and must be 1 (an ensemble predicts a "
                                 "scalar), got " + std::to_string(widths.back()));
                 const nn::Activation hidden = parseActivationArgument(activation, "activation");
                 const nn::Activation output = parseActivationArgument(outputActivation, "output_activation");
                 std::vector<nn::MLP> members;
                 for (int i = 0; i < numMembers; i++) {
                     nn::MLP mlp(widths, hidden, output);
                     mlp.initializeParameters(seed + (uint64_t) i);
                     members.push_back(std::move(mlp));
                 }
                 return nn::MLPEnsemble(std::move(members));
             }),
             py::arg("widths"), py::arg("num_members") = 1, py::arg("activation") = "sigmoid",
             py::arg("output_activation") = "identity", py::arg("seed") = 0,
             "Randomly initialized (Glorot) ensemble; member i uses seed + i.")
        .def_static("from_arrays", &ensembleFromArrays, py::arg("weights"), py::arg("biases"),
                    py::arg("activation") = "sigmoid", py::arg("output_activation") = "identity",
                    "weights[m][l]: (out, in) array, biases[m][l]: (out,) array.")
        .def_static("from_bytes", [](const py::bytes& b) { return io::decodeMLPEnsemble(std::string(b), "model bytes"); })
        .def_static("load", [](const std::string& path) { return io::decodeMLPEnsemble(io::readFileBytes(path), path); })
        .def("to_bytes", [](const nn::MLPEnsemble& e, py::object info) {
                 return toBytes(io::encodeMLPEnsemble(e, info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
             }, py::arg("info") = py::none())
        .def("save", [](const nn::MLPEnsemble& e, const std::string& path, py::object info) {
                 io::writeFileAtomic(path, io::encodeMLPEnsemble(e, info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
             }, py::arg("path"), py::arg("info") = py::none(), "Write the model file atomically (temp file + rename).")
        .def_property_readonly("num_members", &nn::MLPEnsemble::getNumMembers)
        .def_property_readonly("input_size", &nn::MLPEnsemble::getInputSize)
        .def_property_readonly("widths", [](const nn::MLPEnsemble& e) { return e.getMember(0).getWidths(); })
        .def("to_dict", &ensembleToDict, "Architecture and per-member weights/biases as numpy arrays.")
        .def("evaluate", [](const nn::MLPEnsemble& e, const Eigen::MatrixXd& X) {
                 if (X.cols() != e.getInputSize())
                     throw Error("X: expected shape (batch, " + std::to_string(e.getInputSize()) + "), got (" +
                                 std::to_string(X.rows()) + ", " + std::to_string(X.cols()) + ")");
                 Eigen::VectorXd means, stds;
                 e.evaluateBatch(X.transpose(), means, stds);
                 return py::make_tuple(means, stds);
             }, py::arg("X"), "Ensemble mean and std for a batch X of shape (batch, inputs).")
        .def("evaluate_one", [](nn::MLPEnsemble& e, const Eigen::VectorXd& x) {
                 if (x.size() != e.getInputSize())
                     throw Error("x: expected " + std::to_string(e.getInputSize()) + " inputs, got " + std::to_string(x.size()));
                 nn::MLPEnsemble::Result r;
                 e.evaluate(x, true, r);
                 return py::make_tuple(r.mean, r.std, r.memberValues, r.gradMean);
             }, py::arg("x"), "(mean, std, member values, d mean / d x) for one input vector.");

    m.def("save_safetensors", [](const std::string& path, const py::dict& tensors, const py::dict& metadata) {
              io::SafeTensors st;
              for (auto item : tensors)
                  st.tensors[py::str(item.first)] = tensorFromArray(py::str(item.first), py::array::ensure(item.second));
              for (auto item : metadata)
                  st.metadata[py::str(item.first)] = py::str(item.second);
              io::writeFileAtomic(path, st.serialize());
          }, py::arg("path"), py::arg("tensors"), py::arg("metadata") = py::dict(),
          "Write numpy arrays as a safetensors file, atomically.");
    m.def("load_safetensors", [](const std::string& path) {
              io::SafeTensors st = io::SafeTensors::parse(io::readFileBytes(path), path);
              py::dict tensors, metadata;
              for (const auto& item : st.tensors)
                  tensors[py::str(item.first)] = arrayFromTensor(item.second);
              for (const auto& item : st.metadata)
                  metadata[py::str(item.first)] = item.second;
              return py::make_tuple(tensors, metadata);
          }, py::arg("path"), "Read a safetensors file (strictly validated): (tensors, metadata).");
    m.def("read_model_info", [](const py::bytes& b) {
              io::ModelFile f = io::ModelFile::parse(std::string(b), "model bytes");
              py::dict d;
              d["kind"] = f.kind;
              d["architecture"] = jsonToPy(f.architecture);
              d["info"] = jsonToPy(f.info);
              d["tensors"] = [&]() { py::list l; for (const auto& t : f.tensors) l.append(t.first); return l; }();
              return d;
          }, py::arg("data"), "Kind, architecture, info and tensor names of model-file bytes.");
    m.def("write_file_atomic", [](const std::string& path, const py::bytes& b) { io::writeFileAtomic(path, std::string(b)); },
          py::arg("path"), py::arg("data"));
}
