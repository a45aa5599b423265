// libFuzzer target: model-file metadata ("cgflow" safetensors metadata) and every model kind's
// decoder on the same bytes: mlp_ensemble (what PMFForce::setModelBytes uses), flow,
// boltzmann_generator (BoltzmannGeneratorIntegrator::setModelBytes) and slow_fast_model.
// Documented refusals are cgflow::Error. Whatever decodes must encode again and decode to the
// same bytes (the encoders are deterministic).
#include "FuzzCommon.h"
#include "cgflow/Error.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"
#include "cgflow/io/models/FlowFile.h"
#include "cgflow/io/models/MLPEnsembleFile.h"
#include "cgflow/io/models/SlowFastModelFile.h"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace cgflow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    try {
        const io::ModelFile model = io::ModelFile::parse(bytes, "fuzz input");
        // A parsed file re-serializes and parses back to the same metadata.
        std::string again;
        try {
            again = model.serialize();
        } catch (const Error&) {
            again.clear(); // non-UTF-8 strings in the architecture or info: refused by serialize()
        }
        if (!again.empty()) {
            const io::ModelFile back = io::ModelFile::parse(again, "re-serialized");
            FUZZ_CHECK(back.kind == model.kind && back.architecture == model.architecture && back.info == model.info,
                       "ModelFile parse/serialize round trip changed the metadata");
        }
    } catch (const Error&) {
    }
    try {
        nlohmann::json info;
        const nn::MLPEnsemble ensemble = io::decodeMLPEnsemble(bytes, "fuzz input", &info);
        const std::string encoded = io::encodeMLPEnsemble(ensemble, info);
        const nn::MLPEnsemble back = io::decodeMLPEnsemble(encoded, "re-encoded");
        FUZZ_CHECK(io::encodeMLPEnsemble(back, info) == encoded, "MLP ensemble encode/decode is not stable");
    } catch (const Error&) {
    }
    try {
        io::DecodedFlow decoded = io::decodeFlow(bytes, "fuzz input");
        if (decoded.training)
            io::restoreTrainer(decoded);
        const std::string encoded = io::encodeFlow(*decoded.flow, nullptr, decoded.info);
        io::DecodedFlow back = io::decodeFlow(encoded, "re-encoded");
        FUZZ_CHECK(io::encodeFlow(*back.flow, nullptr, back.info) == encoded, "flow encode/decode is not stable");
    } catch (const Error&) {
    }
    try {
        io::DecodedBoltzmannGenerator decoded = io::decodeBoltzmannGenerator(bytes, "fuzz input");
        const std::string encoded = io::encodeBoltzmannGenerator(*decoded.flow, *decoded.positions, decoded.info);
        io::decodeBoltzmannGenerator(encoded, "re-encoded");
    } catch (const Error&) {
    }
    try {
        auto model = io::decodeSlowFastModel(bytes, "fuzz input");
        const std::string encoded = io::encodeSlowFastModel(*model);
        io::decodeSlowFastModel(encoded, "re-encoded");
    } catch (const Error&) {
    }
    return 0;
}
