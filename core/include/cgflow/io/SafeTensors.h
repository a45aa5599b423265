#ifndef CGFLOW_IO_SAFETENSORS_H_
#define CGFLOW_IO_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cgflow::io {

/** The dtypes this project reads and writes; their safetensors names are "F64", "F32", "I64", "I32", "U8". */
enum class DType { F64, F32, I64, I32, U8 };

/** The safetensors name of a dtype, e.g. "F64". */
std::string dtypeName(DType dtype);
/** Bytes per element. */
int64_t dtypeSize(DType dtype);

struct Tensor {
    DType dtype = DType::F64;
    std::vector<int64_t> shape;
    std::string bytes; // raw little-endian data, size = numel * sizeof(dtype)

    /** Product of the shape; 1 for a scalar (empty shape). */
    int64_t numel() const;
    /** An F64 tensor holding numel(shape) values copied from values. */
    static Tensor fromDoubles(std::vector<int64_t> shape, const double* values);
    /** The values of an F64 or F32 (upcast) tensor; any other dtype -> Error naming the tensor and its dtype. */
    std::vector<double> toDoubles(const std::string& nameForErrors) const;
};

/**
 * The safetensors container: an 8-byte little-endian header length N, N bytes of JSON header,
 * then the data buffer. Compatible with HuggingFace's `safetensors` package.
 */
class SafeTensors {
public:
    std::map<std::string, std::string> metadata; // "__metadata__"
    std::map<std::string, Tensor> tensors;

    /**
     * Strict: throws Error, with a message starting with sourceName (e.g. a file path or
     * "model bytes"), for: fewer than 8 bytes; header length larger than the data ("truncated");
     * invalid JSON; a header that is not an object; an entry that is not {"dtype", "shape",
     * "data_offsets"}; an unknown dtype; a shape/offset mismatch; offsets out of range
     * ("truncated"); overlapping offsets or holes; trailing bytes after the last tensor;
     * non-string metadata values.
     */
    static SafeTensors parse(const std::string& bytes, const std::string& sourceName);

    /**
     * Deterministic: tensors laid out in sorted-name order, the header JSON with sorted keys and
     * no whitespace, padded with spaces to a multiple of 8 bytes; "__metadata__" is written only
     * when there is metadata. serialize(parse(serialize(x))) is byte-identical. A tensor whose
     * bytes do not match its shape and dtype -> Error.
     */
    std::string serialize() const;
};

} // namespace cgflow::io

#endif
