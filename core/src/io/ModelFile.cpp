#include "cgflow/io/ModelFile.h"

#include "cgflow/Error.h"

namespace cgflow::io {

using nlohmann::json;

namespace {

const char* const formatName = "openmm-cgflow-model";
const char* const metadataKey = "cgflow";

std::string shapeString(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++)
        s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

} // namespace

std::string ModelFile::serialize() const {
    if (kind.empty())
        throw Error("cannot serialize a model file with an empty kind");
    if (!architecture.is_object())
        throw Error("cannot serialize a model file of kind '" + kind + "': architecture must be a JSON object");
    if (!info.is_object())
        throw Error("cannot serialize a model file of kind '" + kind + "': info must be a JSON object");
    json header = {{"format", formatName},
                   {"format_version", ModelFormatVersion},
                   {"kind", kind},
                   {"architecture", architecture}};
    if (!info.empty())
        header["info"] = info;
    SafeTensors file;
    try {
        file.metadata[metadataKey] = header.dump();
    } catch (const json::exception& e) {
        throw Error("cannot serialize a model file of kind '" + kind + "' (strings must be UTF-8): " + e.what());
    }
    file.tensors = tensors;
    return file.serialize();
}

ModelFile ModelFile::parse(const std::string& bytes, const std::string& sourceName) {
    auto fail = [&](const std::string& message) { return Error(sourceName + ": " + message); };
    SafeTensors file = SafeTensors::parse(bytes, sourceName);
    auto entry = file.metadata.find(metadataKey);
    if (entry == file.metadata.end())
        throw fail("not an OpenMM-CGFlow model file (the safetensors metadata has no 'cgflow' entry)");
    json header;
    try {
        header = json::parse(entry->second);
    } catch (const json::exception& e) {
        throw fail(std::string("not an OpenMM-CGFlow model file (the 'cgflow' metadata is not valid JSON: ") +
                   e.what() + ")");
    }
    if (!header.is_object())
        throw fail("not an OpenMM-CGFlow model file (the 'cgflow' metadata is not a JSON object)");
    if (!header.contains("format") || header["format"] != formatName)
        throw fail("not an OpenMM-CGFlow model file (format is " +
                   (header.contains("format") ? header["format"].dump() : std::string("missing")) + ", expected \"" +
                   formatName + "\")");
    if (!header.contains("format_version") || !header["format_version"].is_number_integer())
        throw fail("the 'cgflow' metadata has no integer format_version");
    const json& version = header["format_version"];
    // Compare as JSON numbers first so that huge versions do not overflow an int.
    if (version.is_number_unsigned() && version.get<uint64_t>() > static_cast<uint64_t>(ModelFormatVersion))
        throw Error(sourceName + " was written by a newer version (format_version " + version.dump() +
                    "); this build reads up to " + std::to_string(ModelFormatVersion) + "; upgrade openmm-cgflow");
    if (!version.is_number_unsigned() || version.get<uint64_t>() < 1)
        throw fail("invalid format_version " + version.dump() + " (expected an integer >= 1)");
    for (const auto& item : header.items())
        if (item.key() != "format" && item.key() != "format_version" && item.key() != "kind" &&
            item.key() != "architecture" && item.key() != "info")
            throw fail("unexpected field '" + item.key() + "' in the 'cgflow' metadata of a format_version " +
                       std::to_string(ModelFormatVersion) + " file");
    if (!header.contains("kind") || !header["kind"].is_string() || header["kind"].get<std::string>().empty())
        throw fail("the 'cgflow' metadata has no 'kind' string");
    if (!header.contains("architecture") || !header["architecture"].is_object())
        throw fail("the 'cgflow' metadata has no 'architecture' object");
    ModelFile model;
    model.kind = header["kind"].get<std::string>();
    model.architecture = header["architecture"];
    if (header.contains("info")) {
        if (!header["info"].is_object())
            throw fail("the 'info' field of the 'cgflow' metadata must be a JSON object");
        model.info = header["info"];
    }
    model.tensors = std::move(file.tensors);
    return model;
}

const Tensor& ModelFile::getTensor(const std::string& name, const std::vector<int64_t>& expectedShape) const {
    auto it = tensors.find(name);
    if (it == tensors.end())
        throw Error("missing tensor '" + name + "'");
    if (it->second.shape != expectedShape)
        throw Error("tensor '" + name + "' has shape " + shapeString(it->second.shape) + ", expected " +
                    shapeString(expectedShape));
    return it->second;
}

} // namespace cgflow::io
