// libFuzzer target: the safetensors container (header length, JSON header, tensor table).
// Documented: SafeTensors::parse throws cgflow::Error for anything malformed, and for any file it
// accepts, serialize(parse(serialize(x))) is byte-identical to serialize(x).
#include "FuzzCommon.h"
#include "cgflow/Error.h"
#include "cgflow/io/SafeTensors.h"

#include <cstddef>
#include <cstdint>
#include <string>

using cgflow::io::SafeTensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    SafeTensors file;
    try {
        file = SafeTensors::parse(bytes, "fuzz input");
    } catch (const cgflow::Error&) {
        return 0; // refused
    }
    for (const auto& [name, tensor] : file.tensors) {
        try {
            const auto values = tensor.toDoubles(name);
            FUZZ_CHECK(static_cast<int64_t>(values.size()) == tensor.numel(), "toDoubles size != numel");
        } catch (const cgflow::Error&) {
            // integer dtypes are refused by toDoubles
        }
    }
    std::string once;
    try {
        once = file.serialize();
    } catch (const cgflow::Error&) {
        // e.g. names or metadata that are not valid UTF-8: documented refusal of serialize()
        return 0;
    }
    const SafeTensors again = SafeTensors::parse(once, "re-serialized");
    FUZZ_CHECK(again.serialize() == once, "serialize(parse(serialize(x))) is not byte-identical");
    return 0;
}
