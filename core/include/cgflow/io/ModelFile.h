#ifndef CGFLOW_IO_MODELFILE_H_
#define CGFLOW_IO_MODELFILE_H_

#include "cgflow/Error.h"
#include "cgflow/io/SafeTensors.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cgflow::io {

/** The newest model-file format this build reads, and the one it writes. */
constexpr int ModelFormatVersion = 1;

/**
 * A versioned OpenMM-CGFlow model: a safetensors file whose "cgflow" metadata entry holds the
 * JSON string {"format":"openmm-cgflow-model","format_version":1,"kind":...,"architecture":{...}}
 * plus an optional "info" object for free text. Other metadata entries are ignored on read.
 */
struct ModelFile {
    std::string kind;
    nlohmann::json architecture;
    nlohmann::json info = nlohmann::json::object();
    std::map<std::string, Tensor> tensors;

    /** Deterministic: the JSON is dumped compactly with sorted keys; "info" is omitted when empty. */
    std::string serialize() const;

    /**
     * Errors (message starting with sourceName): not safetensors; missing "cgflow" metadata
     * ("not an OpenMM-CGFlow model file"); wrong "format"; format_version newer than
     * ModelFormatVersion ("was written by a newer version (format_version N); this build reads
     * up to 1; upgrade openmm-cgflow") or < 1; missing kind or architecture; unexpected fields.
     */
    static ModelFile parse(const std::string& bytes, const std::string& sourceName);

    /** Error "missing tensor 'x'" or "tensor 'x' has shape [a,b], expected [c,d]". */
    const Tensor& getTensor(const std::string& name, const std::vector<int64_t>& expectedShape) const;
};

/** e with its message prefixed by "sourceName: ", unless it already starts with sourceName. */
inline Error withSourceName(const Error& e, const std::string& sourceName) {
    const std::string message = e.what();
    return message.rfind(sourceName, 0) == 0 ? e : Error(sourceName + ": " + message);
}

} // namespace cgflow::io

#endif
