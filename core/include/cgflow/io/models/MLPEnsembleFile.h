#ifndef CGFLOW_IO_MLPENSEMBLEFILE_H_
#define CGFLOW_IO_MLPENSEMBLEFILE_H_

#include "cgflow/nn/MLPEnsemble.h"

#include <nlohmann/json.hpp>

#include <string>

namespace cgflow::io {

/** The ModelFile kind of an MLP ensemble. */
inline constexpr const char* MLPEnsembleKind = "mlp_ensemble";

/**
 * A model file of kind "mlp_ensemble" with architecture {"ensemble_size": M, "widths": [...],
 * "activation": "sigmoid", "output_activation": "identity"} and F64 tensors
 * "members.{k}.layers.{l}.weight" (shape [out, in]) and "members.{k}.layers.{l}.bias" (shape [out]).
 * info must be a JSON object (free text for humans).
 */
std::string encodeMLPEnsemble(const nn::MLPEnsemble& ensemble, const nlohmann::json& info = nlohmann::json::object());

/**
 * Inverse of encodeMLPEnsemble; F32 tensors are accepted and upcast. Errors (message starting
 * with sourceName): anything ModelFile::parse rejects, a kind other than "mlp_ensemble", missing
 * or ill-typed architecture fields (widths with < 2 entries or non-positive, output width != 1,
 * unknown activation), missing tensors, shape mismatch, a dtype other than F64/F32, unexpected
 * extra tensors. If info is non-null it receives the file's info object, so that
 * encodeMLPEnsemble(decodeMLPEnsemble(bytes, name, &info), info) == bytes for files written by
 * encodeMLPEnsemble.
 */
nn::MLPEnsemble decodeMLPEnsemble(const std::string& bytes, const std::string& sourceName,
                                  nlohmann::json* info = nullptr);

} // namespace cgflow::io

#endif
