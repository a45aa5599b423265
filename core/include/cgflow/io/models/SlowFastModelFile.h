#ifndef CGFLOW_IO_MODELS_SLOWFASTMODELFILE_H_
#define CGFLOW_IO_MODELS_SLOWFASTMODELFILE_H_

#include "cgflow/models/SlowFastModel.h"

#include <nlohmann/json.hpp>
#include <memory>
#include <string>

namespace cgflow::io {

/** The ModelFile kind of the data-free slow/fast model. */
inline constexpr const char* SlowFastModelKind = "slow_fast_model";

/**
 * A model file of kind "slow_fast_model": architecture {"model": SlowFastModel::getConfig()} and the
 * tensor "parameters" (F64, [numParameters]); `info` is free text. Deterministic bytes.
 */
std::string encodeSlowFastModel(const models::SlowFastModel& model, const nlohmann::json& info = nlohmann::json::object());

/**
 * Inverse of encodeSlowFastModel. Errors start with sourceName: another kind ("kind is 'x', expected
 * 'slow_fast_model'"), a missing architecture field, a parameter tensor of the wrong shape or with
 * non-finite values.
 */
std::unique_ptr<models::SlowFastModel> decodeSlowFastModel(const std::string& bytes, const std::string& sourceName);

} // namespace cgflow::io

#endif
