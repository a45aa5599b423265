#include "cgflow/io/models/BoltzmannGeneratorFile.h"

#include "cgflow/Error.h"
#include "cgflow/io/models/FlowFile.h"
#include "cgflow/io/ModelFile.h"

namespace cgflow::io {

using nlohmann::json;

namespace {

void checkCompatible(const flows::Flow& flow, const coords::PositionMap& positions) {
    if (flow.getDimension() != positions.getDimension())
        throw Error("the flow has dimension " + std::to_string(flow.getDimension()) + " but the position map needs " +
                    std::to_string(positions.getDimension()));
    const std::vector<bool> flowCircular = flow.getCircular(), mapCircular = positions.getCircular();
    for (int d = 0; d < flow.getDimension(); d++)
        if (mapCircular[d] && !flowCircular[d])
            throw Error("dimension " + std::to_string(d) + " (" +
                        positions.getInternalCoordinates().getZMatrix().describeColumn(positions.getColumnOfDimension(d)) +
                        ") is a free torsion but the flow treats it as a real number; mark it circular in the flow config");
    // The condition vector is the flow's context; the map reads its condition columns from it too.
    if (positions.getNumConditionValues() > flow.getContextDimension())
        throw Error("the position map reads condition value " + std::to_string(positions.getNumConditionValues() - 1) +
                    " but the flow is conditioned on " + std::to_string(flow.getContextDimension()) + " values");
}

} // namespace

std::string encodeBoltzmannGenerator(const flows::Flow& flow, const coords::PositionMap& positions, const json& info) {
    try {
        checkCompatible(flow, positions);
    } catch (const Error& e) {
        throw Error(std::string("encodeBoltzmannGenerator: ") + e.what());
    }
    ModelFile model;
    model.kind = BoltzmannGeneratorKind;
    model.architecture = {{"flow", flow.getConfig()}, {"positions", positions.toJson()}};
    model.info = info;
    std::vector<double> params = flow.getParameters();
    model.tensors["parameters"] = Tensor::fromDoubles({static_cast<int64_t>(params.size())}, params.data());
    return model.serialize();
}

DecodedBoltzmannGenerator decodeBoltzmannGenerator(const std::string& bytes, const std::string& sourceName) {
    try {
        const ModelFile model = ModelFile::parse(bytes, sourceName);
        if (model.kind != BoltzmannGeneratorKind)
            throw Error("model kind is '" + model.kind + "', expected '" + BoltzmannGeneratorKind +
                        "' (a flow together with its position map; build one with encode_boltzmann_generator)");
        for (const auto& item : model.architecture.items())
            if (item.key() != "flow" && item.key() != "positions")
                throw Error("unexpected architecture field '" + item.key() + "' (expected flow, positions)");
        if (!model.architecture.contains("positions"))
            throw Error("architecture field 'positions' (the map from the flow's output to particle positions) is missing");
        DecodedBoltzmannGenerator decoded;
        decoded.flow = readFlow(model);
        decoded.positions = coords::PositionMap::fromJson(model.architecture["positions"]);
        checkCompatible(*decoded.flow, *decoded.positions);
        for (const auto& item : model.tensors)
            if (item.first != "parameters")
                throw Error("unexpected tensor '" + item.first + "'");
        decoded.info = model.info;
        return decoded;
    } catch (const Error& e) {
        throw withSourceName(e, sourceName);
    }
}

} // namespace cgflow::io
