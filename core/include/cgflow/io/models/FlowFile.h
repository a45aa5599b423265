#ifndef CGFLOW_IO_FLOWFILE_H_
#define CGFLOW_IO_FLOWFILE_H_

#include "cgflow/train/ModelTrainer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

namespace cgflow::io {

/** The ModelFile kind of a normalizing flow. */
inline constexpr const char* FlowKind = "flow";

/** A trainer's resumable state: its options, the Adam moments and step count, the guard's history. */
struct FlowTrainingState {
    train::ModelTrainerOptions options;
    optim::AdamState optimizer;
    std::optional<optim::GradientGuard::State> guard;
};

/**
 * A model file of kind "flow": architecture {"flow": Flow::getConfig(), "training": trainer options
 * (only with a trainer)} and tensors "parameters" (F64, [numParameters]) plus, with a trainer,
 * "optimizer.first_moment", "optimizer.second_moment" (F64), "optimizer.step_count" (I64 scalar) and
 * with a guard "guard.history" (F64) and "guard.counters" (I64 [numAccepted, numClipped, numSkipped,
 * consecutiveSkips]). Deterministic bytes, so decode -> encode of a file written here is bit-identical.
 */
std::string encodeFlow(const flows::Flow& flow, train::ModelTrainer* trainer = nullptr,
                       const nlohmann::json& info = nlohmann::json::object());

struct DecodedFlow {
    std::unique_ptr<flows::Flow> flow;
    std::optional<FlowTrainingState> training;
    nlohmann::json info = nlohmann::json::object();
};

/**
 * Inverse of encodeFlow. Errors start with sourceName: anything ModelFile::parse rejects (including a
 * newer format_version), another kind, a bad flow config, missing/mis-shaped tensors, unexpected
 * tensors, non-finite parameters.
 */
DecodedFlow decodeFlow(const std::string& bytes, const std::string& sourceName);

struct ModelFile;

/**
 * The flow stored in a parsed model file: built from architecture "flow" with the parameters of the
 * F64 tensor "parameters" (every value finite). Shared by every model kind that holds a flow; errors
 * name the field or tensor, without the source name.
 */
std::unique_ptr<flows::Flow> readFlow(const ModelFile& model);

/** A trainer for decoded.flow with the saved options and optimizer/guard state (Error without training state). */
std::unique_ptr<train::ModelTrainer> restoreTrainer(DecodedFlow& decoded);

} // namespace cgflow::io

#endif
