#include "cgflow/io/models/MLPEnsembleFile.h"

#include "cgflow/Error.h"
#include "cgflow/io/ModelFile.h"

#include <Eigen/Core>

#include <limits>
#include <cmath>
#include <set>

namespace cgflow::io {

using nlohmann::json;

namespace {

void checkFinite(const std::vector<double>& values, const std::string& tensorName) {
    for (size_t i = 0; i < values.size(); i++)
        if (!std::isfinite(values[i]))
            throw Error("tensor '" + tensorName + "' has a non-finite value at entry " + std::to_string(i) + " (" +
                        std::to_string(values[i]) + ")");
}

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::string weightName(int member, int layer) {
    return "members." + std::to_string(member) + ".layers." + std::to_string(layer) + ".weight";
}

std::string biasName(int member, int layer) {
    return "members." + std::to_string(member) + ".layers." + std::to_string(layer) + ".bias";
}

bool isPositiveInt(const json& value) {
    return value.is_number_unsigned() && value.get<uint64_t>() >= 1 &&
           value.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int>::max());
}

nn::Activation readActivation(const json& architecture, const std::string& field) {
    if (!architecture.contains(field) || !architecture[field].is_string())
        throw Error("architecture field '" + field + "' must be an activation name string");
    try {
        return nn::parseActivation(architecture[field].get<std::string>());
    } catch (const Error& e) {
        throw Error("architecture field '" + field + "': " + e.what());
    }
}

nn::MLPEnsemble decodeModel(const ModelFile& model) {
    if (model.kind != MLPEnsembleKind)
        throw Error("model kind is '" + model.kind + "', expected '" + MLPEnsembleKind + "'");
    const json& architecture = model.architecture;
    for (const auto& item : architecture.items())
        if (item.key() != "ensemble_size" && item.key() != "widths" && item.key() != "activation" &&
            item.key() != "output_activation")
            throw Error("unexpected architecture field '" + item.key() +
                        "' (expected ensemble_size, widths, activation, output_activation)");
    if (!architecture.contains("ensemble_size") || !isPositiveInt(architecture["ensemble_size"]))
        throw Error("architecture field 'ensemble_size' must be a positive integer");
    const int ensembleSize = architecture["ensemble_size"].get<int>();
    if (!architecture.contains("widths") || !architecture["widths"].is_array())
        throw Error("architecture field 'widths' must be a list of positive integers");
    std::vector<int> widths;
    for (const json& width : architecture["widths"]) {
        if (!isPositiveInt(width))
            throw Error("architecture field 'widths' must be a list of positive integers, got " +
                        architecture["widths"].dump());
        widths.push_back(width.get<int>());
    }
    if (widths.size() < 2)
        throw Error("architecture field 'widths' must have at least 2 entries (input and output), got " +
                    architecture["widths"].dump());
    if (widths.back() != 1)
        throw Error("architecture field 'widths' must end with an output width of 1, got " +
                    architecture["widths"].dump());
    nn::Activation hidden = readActivation(architecture, "activation");
    nn::Activation output = readActivation(architecture, "output_activation");

    // Every tensor must be there with its shape before any network is allocated: the architecture
    // alone could otherwise make a small file ask for gigabytes (widths [100000, 100000, 1]), which
    // would surface as std::bad_alloc rather than an Error. The tensors' bytes are in the file, so
    // after this check the allocation is bounded by the file's size.
    const int numLayers = static_cast<int>(widths.size()) - 1;
    for (int k = 0; k < ensembleSize; k++)
        for (int l = 0; l < numLayers; l++) {
            model.getTensor(weightName(k, l), {widths[l + 1], widths[l]});
            model.getTensor(biasName(k, l), {widths[l + 1]});
        }

    std::set<std::string> expected;
    std::vector<nn::MLP> members;
    for (int k = 0; k < ensembleSize; k++) {
        nn::MLP member(widths, hidden, output);
        for (int l = 0; l < member.getNumLayers(); l++) {
            const int64_t out = widths[l + 1], in = widths[l];
            const std::string wName = weightName(k, l), bName = biasName(k, l);
            std::vector<double> w = model.getTensor(wName, {out, in}).toDoubles(wName);
            std::vector<double> b = model.getTensor(bName, {out}).toDoubles(bName);
            // A NaN or infinite parameter would only show up later as NaN energies in a Context.
            checkFinite(w, wName);
            checkFinite(b, bName);
            member.weight(l) = Eigen::Map<const RowMajorMatrix>(w.data(), out, in);
            member.bias(l) = Eigen::Map<const Eigen::VectorXd>(b.data(), out);
            expected.insert(wName);
            expected.insert(bName);
        }
        members.push_back(std::move(member));
    }
    for (const auto& entry : model.tensors)
        if (expected.count(entry.first) == 0)
            throw Error("unexpected tensor '" + entry.first + "' for an ensemble of " + std::to_string(ensembleSize) +
                        " members with " + std::to_string(widths.size() - 1) + " layers");
    return nn::MLPEnsemble(std::move(members));
}

} // namespace

std::string encodeMLPEnsemble(const nn::MLPEnsemble& ensemble, const json& info) {
    if (ensemble.getNumMembers() == 0)
        throw Error("encodeMLPEnsemble: the ensemble is empty");
    const nn::MLP& first = ensemble.getMember(0);
    ModelFile model;
    model.kind = MLPEnsembleKind;
    model.architecture = {{"ensemble_size", ensemble.getNumMembers()},
                          {"widths", first.getWidths()},
                          {"activation", nn::activationName(first.getHiddenActivation())},
                          {"output_activation", nn::activationName(first.getOutputActivation())}};
    if (!info.is_object())
        throw Error("encodeMLPEnsemble: info must be a JSON object, got " + std::string(info.type_name()));
    model.info = info;
    for (int k = 0; k < ensemble.getNumMembers(); k++) {
        const nn::MLP& member = ensemble.getMember(k);
        for (int l = 0; l < member.getNumLayers(); l++) {
            const Eigen::MatrixXd& w = member.weight(l);
            // safetensors (like PyTorch) stores [out, in] row-major; Eigen's default is column-major.
            RowMajorMatrix rowMajor = w;
            model.tensors[weightName(k, l)] = Tensor::fromDoubles({w.rows(), w.cols()}, rowMajor.data());
            const Eigen::VectorXd& b = member.bias(l);
            model.tensors[biasName(k, l)] = Tensor::fromDoubles({b.size()}, b.data());
        }
    }
    return model.serialize();
}

nn::MLPEnsemble decodeMLPEnsemble(const std::string& bytes, const std::string& sourceName, json* info) {
    ModelFile model = ModelFile::parse(bytes, sourceName);
    nn::MLPEnsemble ensemble;
    try {
        ensemble = decodeModel(model);
    } catch (const Error& e) {
        throw Error(sourceName + ": " + e.what());
    }
    if (info != nullptr)
        *info = model.info;
    return ensemble;
}

} // namespace cgflow::io
