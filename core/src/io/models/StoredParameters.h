#ifndef CGFLOW_IO_MODELS_STOREDPARAMETERS_H_
#define CGFLOW_IO_MODELS_STOREDPARAMETERS_H_

// Internal to the model-file decoders that hold flows (flow, slow/fast model).

#include "cgflow/Error.h"
#include "cgflow/io/ModelFile.h"

#include <algorithm>
#include <cstdint>

namespace cgflow::io {

/**
 * The element count of the file's flat "parameters" tensor (Error if it is missing): what a
 * flows::ParameterBudget is sized by, so that the architecture cannot build a model larger than the
 * parameters the file holds.
 */
inline uint64_t storedParameterCount(const ModelFile& file) {
    auto stored = file.tensors.find("parameters");
    if (stored == file.tensors.end())
        throw Error("missing tensor 'parameters'");
    return static_cast<uint64_t>(std::max<int64_t>(stored->second.numel(), 0));
}

} // namespace cgflow::io

#endif
