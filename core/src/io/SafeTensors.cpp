#include "cgflow/io/SafeTensors.h"

#include "cgflow/Error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

// Tensor bytes are little-endian on disk and copied with memcpy.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "OpenMM-CGFlow's safetensors I/O assumes a little-endian host"
#endif

namespace cgflow::io {

using nlohmann::json;

namespace {

bool parseDType(const std::string& name, DType& dtype) {
    for (DType d : {DType::F64, DType::F32, DType::I64, DType::I32, DType::U8})
        if (dtypeName(d) == name) {
            dtype = d;
            return true;
        }
    return false;
}

std::string shapeString(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++)
        s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

// Element count, or -1 on overflow or a negative extent.
int64_t checkedNumel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t extent : shape) {
        if (extent < 0)
            return -1;
        if (extent != 0 && n > std::numeric_limits<int64_t>::max() / extent)
            return -1;
        n *= extent;
    }
    return n;
}

int64_t checkedByteSize(const std::vector<int64_t>& shape, DType dtype) {
    int64_t n = checkedNumel(shape);
    int64_t itemSize = dtypeSize(dtype);
    if (n < 0 || n > std::numeric_limits<int64_t>::max() / itemSize)
        return -1;
    return n * itemSize;
}

// Reads a non-negative JSON integer that fits in int64, or returns false.
bool readIndex(const json& value, int64_t& out) {
    if (!value.is_number_unsigned())
        return false;
    uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return false;
    out = static_cast<int64_t>(v);
    return true;
}

struct Span {
    int64_t begin, end;
    std::string name;
};

} // namespace

std::string dtypeName(DType dtype) {
    switch (dtype) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    }
    throw Error("dtypeName: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

int64_t dtypeSize(DType dtype) {
    switch (dtype) {
    case DType::F64: return 8;
    case DType::F32: return 4;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
    }
    throw Error("dtypeSize: invalid DType value " + std::to_string(static_cast<int>(dtype)));
}

int64_t Tensor::numel() const {
    int64_t n = 1;
    for (int64_t extent : shape)
        n *= extent;
    return n;
}

Tensor Tensor::fromDoubles(std::vector<int64_t> shape, const double* values) {
    int64_t n = checkedNumel(shape);
    if (n < 0)
        throw Error("Tensor::fromDoubles: invalid shape " + shapeString(shape));
    Tensor t;
    t.dtype = DType::F64;
    t.shape = std::move(shape);
    t.bytes.resize(static_cast<size_t>(n) * sizeof(double));
    if (n > 0)
        std::memcpy(&t.bytes[0], values, t.bytes.size());
    return t;
}

std::vector<double> Tensor::toDoubles(const std::string& nameForErrors) const {
    if (dtype != DType::F64 && dtype != DType::F32)
        throw Error("tensor '" + nameForErrors + "' has dtype " + dtypeName(dtype) + ", expected F64 or F32");
    int64_t expected = checkedByteSize(shape, dtype);
    if (expected < 0 || static_cast<int64_t>(bytes.size()) != expected)
        throw Error("tensor '" + nameForErrors + "' holds " + std::to_string(bytes.size()) + " bytes, but shape " +
                    shapeString(shape) + " with dtype " + dtypeName(dtype) + " needs " + std::to_string(expected));
    std::vector<double> values(static_cast<size_t>(numel()));
    if (dtype == DType::F64) {
        if (!values.empty())
            std::memcpy(values.data(), bytes.data(), bytes.size());
    } else {
        for (size_t i = 0; i < values.size(); i++) {
            float f;
            std::memcpy(&f, bytes.data() + 4 * i, 4);
            values[i] = f;
        }
    }
    return values;
}

SafeTensors SafeTensors::parse(const std::string& bytes, const std::string& sourceName) {
    auto fail = [&](const std::string& message) { return Error(sourceName + ": " + message); };
    if (bytes.size() < 8)
        throw fail("not a safetensors file: only " + std::to_string(bytes.size()) +
                   " bytes, too few for the 8-byte header length (truncated?)");
    uint64_t headerLength = 0;
    for (int i = 7; i >= 0; i--)
        headerLength = (headerLength << 8) | static_cast<unsigned char>(bytes[i]);
    const uint64_t available = bytes.size() - 8;
    if (headerLength > available)
        throw fail("truncated safetensors file: the header length is " + std::to_string(headerLength) +
                   " bytes but only " + std::to_string(available) + " bytes follow");

    json header;
    try {
        header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(headerLength));
    } catch (const json::exception& e) {
        throw fail(std::string("invalid JSON in the safetensors header: ") + e.what());
    }
    if (!header.is_object())
        throw fail("the safetensors header is not a JSON object");

    const char* const dataStart = bytes.data() + 8 + headerLength;
    const int64_t bufferSize = static_cast<int64_t>(available - headerLength);
    SafeTensors result;
    std::vector<Span> spans;
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object())
                throw fail("__metadata__ must be a JSON object mapping strings to strings");
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string())
                    throw fail("__metadata__ value for key '" + key + "' is not a string (got " +
                               std::string(value.type_name()) + ")");
                result.metadata[key] = value.get<std::string>();
            }
            continue;
        }
        const std::string what = "tensor '" + name + "'";
        if (!entry.is_object())
            throw fail(what + ": header entry must be an object with dtype, shape and data_offsets");
        for (const auto& item : entry.items())
            if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
                throw fail(what + ": unexpected field '" + item.key() +
                           "' (expected only dtype, shape and data_offsets)");
        if (!entry.contains("dtype") || !entry["dtype"].is_string())
            throw fail(what + ": missing or non-string 'dtype'");
        Tensor tensor;
        const std::string dtype = entry["dtype"].get<std::string>();
        if (!parseDType(dtype, tensor.dtype))
            throw fail(what + ": unknown or unsupported dtype '" + dtype + "' (supported: F64, F32, I64, I32, U8)");
        if (!entry.contains("shape") || !entry["shape"].is_array())
            throw fail(what + ": missing 'shape' (expected a list of non-negative integers)");
        for (const json& extent : entry["shape"]) {
            int64_t v;
            if (!readIndex(extent, v))
                throw fail(what + ": 'shape' must be a list of non-negative integers, got " + entry["shape"].dump());
            tensor.shape.push_back(v);
        }
        const json* offsets = entry.contains("data_offsets") ? &entry["data_offsets"] : nullptr;
        int64_t begin, end;
        if (offsets == nullptr || !offsets->is_array() || offsets->size() != 2 || !readIndex((*offsets)[0], begin) ||
            !readIndex((*offsets)[1], end) || end < begin)
            throw fail(what + ": 'data_offsets' must be [begin, end] with 0 <= begin <= end, got " +
                       (offsets ? offsets->dump() : std::string("nothing")));
        const int64_t needed = checkedByteSize(tensor.shape, tensor.dtype);
        if (needed < 0)
            throw fail(what + ": shape " + shapeString(tensor.shape) + " is too large");
        if (end - begin != needed)
            throw fail(what + ": shape " + shapeString(tensor.shape) + " with dtype " + dtype + " needs " +
                       std::to_string(needed) + " bytes, but data_offsets [" + std::to_string(begin) + "," +
                       std::to_string(end) + "] span " + std::to_string(end - begin));
        if (end > bufferSize)
            throw fail("truncated safetensors file: " + what + " ends at byte " + std::to_string(end) +
                       " of the data buffer, which has only " + std::to_string(bufferSize) + " bytes");
        tensor.bytes.assign(dataStart + begin, static_cast<size_t>(end - begin));
        spans.push_back({begin, end, name});
        result.tensors.emplace(name, std::move(tensor));
    }

    // The buffer must be tiled exactly: every byte belongs to exactly one tensor.
    std::sort(spans.begin(), spans.end(),
              [](const Span& x, const Span& y) { return std::tie(x.begin, x.end) < std::tie(y.begin, y.end); });
    int64_t position = 0;
    std::string previous;
    for (const Span& span : spans) {
        if (span.begin < position)
            throw fail("tensors '" + previous + "' and '" + span.name + "' have overlapping data_offsets");
        if (span.begin > position)
            throw fail("hole in the data buffer: bytes " + std::to_string(position) + " to " +
                       std::to_string(span.begin) + " belong to no tensor (before tensor '" + span.name + "')");
        position = span.end;
        previous = span.name;
    }
    if (position != bufferSize)
        throw fail(std::to_string(bufferSize - position) + " trailing bytes after the last tensor's data");
    return result;
}

std::string SafeTensors::serialize() const {
    json header = json::object();
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    int64_t offset = 0;
    for (const auto& [name, tensor] : tensors) {
        if (name == "__metadata__")
            throw Error("cannot serialize a tensor named '__metadata__': the name is reserved by safetensors");
        const int64_t size = checkedByteSize(tensor.shape, tensor.dtype);
        if (size < 0)
            throw Error("cannot serialize tensor '" + name + "': invalid shape " + shapeString(tensor.shape));
        if (static_cast<int64_t>(tensor.bytes.size()) != size)
            throw Error("cannot serialize tensor '" + name + "': it holds " + std::to_string(tensor.bytes.size()) +
                        " bytes, but shape " + shapeString(tensor.shape) + " with dtype " + dtypeName(tensor.dtype) +
                        " needs " + std::to_string(size));
        header[name] = {{"dtype", dtypeName(tensor.dtype)},
                        {"shape", tensor.shape},
                        {"data_offsets", {offset, offset + size}}};
        offset += size;
    }
    std::string headerText;
    try {
        headerText = header.dump();
    } catch (const json::exception& e) {
        throw Error(std::string("cannot serialize safetensors header (tensor names and metadata must be UTF-8): ") +
                    e.what());
    }
    // The data buffer then starts 8-byte aligned, as HuggingFace's writer does.
    headerText.append((8 - headerText.size() % 8) % 8, ' ');

    std::string out;
    out.reserve(8 + headerText.size() + static_cast<size_t>(offset));
    uint64_t length = headerText.size();
    for (int i = 0; i < 8; i++)
        out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
    out += headerText;
    for (const auto& entry : tensors)
        out += entry.second.bytes;
    return out;
}

} // namespace cgflow::io
