#ifndef CGFLOW_IO_BOLTZMANNGENERATORFILE_H_
#define CGFLOW_IO_BOLTZMANNGENERATORFILE_H_

#include "cgflow/coords/PositionMap.h"
#include "cgflow/flows/Flow.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

namespace cgflow::io {

/** The ModelFile kind of a Boltzmann generator: a flow plus the map from its output to particle positions. */
inline constexpr const char* BoltzmannGeneratorKind = "boltzmann_generator";

/**
 * A model file of kind "boltzmann_generator": architecture {"flow": Flow::getConfig(), "positions":
 * PositionMap::toJson()} and the tensor "parameters" (F64, [numParameters]). This is what
 * BoltzmannGeneratorIntegrator reads. Deterministic bytes.
 * Errors: the flow's dimension differs from the map's, or a circular dimension of an internal map
 * (a free torsion) is not circular in the flow (its density would not be one on the circle).
 */
std::string encodeBoltzmannGenerator(const flows::Flow& flow, const coords::PositionMap& positions,
                                     const nlohmann::json& info = nlohmann::json::object());

struct DecodedBoltzmannGenerator {
    std::unique_ptr<flows::Flow> flow;
    std::optional<coords::PositionMap> positions;
    nlohmann::json info = nlohmann::json::object();
};

/** Inverse of encodeBoltzmannGenerator; errors start with sourceName and name the field or tensor. */
DecodedBoltzmannGenerator decodeBoltzmannGenerator(const std::string& bytes, const std::string& sourceName);

} // namespace cgflow::io

#endif
