#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/io/SafeTensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::io::DType;
using cgflow::io::SafeTensors;
using cgflow::io::Tensor;

namespace {

using cgflowtest::errorMessage;

// Parsing must fail with a message that starts with the source name and mentions `expected`.
void expectParseError(const std::string& bytes, const std::string& expected) {
    std::string message = errorMessage([&] { SafeTensors::parse(bytes, "bad.safetensors"); });
    EXPECT_EQ(message.rfind("bad.safetensors: ", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << "expected '" << expected << "' in: " << message;
}

std::string lengthPrefix(uint64_t n) {
    std::string out;
    for (int i = 0; i < 8; i++)
        out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    return out;
}

std::string makeFile(const std::string& header, const std::string& data) {
    return lengthPrefix(header.size()) + header + data;
}

std::string fromHex(const std::string& hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

template <class T>
Tensor makeTensor(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return t;
}

SafeTensors sampleFile() {
    SafeTensors file;
    file.metadata["format"] = "pt";
    file.metadata["note"] = "héllo \"quoted\"\n";
    std::vector<double> w = {1.0, -2.5, 3.25, 1e-300, -0.0, 6.02214076e23};
    file.tensors["w"] = Tensor::fromDoubles({2, 3}, w.data());
    file.tensors["a.f32"] = makeTensor<float>(DType::F32, {3}, {0.5f, -1.5f, 3.0e38f});
    file.tensors["i64"] = makeTensor<int64_t>(DType::I64, {2}, {-5, 1LL << 40});
    file.tensors["i32"] = makeTensor<int32_t>(DType::I32, {1, 2}, {7, -9});
    file.tensors["bytes"] = makeTensor<uint8_t>(DType::U8, {5}, {0, 1, 2, 254, 255});
    file.tensors["empty"] = makeTensor<double>(DType::F64, {0, 4}, {});
    file.tensors["scalar"] = makeTensor<double>(DType::F64, {}, {42.0});
    return file;
}

} // namespace

TEST(SafeTensors, TensorHelpers) {
    std::vector<double> values = {1, 2, 3, 4, 5, 6};
    Tensor t = Tensor::fromDoubles({2, 3}, values.data());
    EXPECT_EQ(t.dtype, DType::F64);
    EXPECT_EQ(t.numel(), 6);
    EXPECT_EQ(t.bytes.size(), 48u);
    EXPECT_EQ(t.toDoubles("t"), values);
    EXPECT_EQ(Tensor::fromDoubles({}, values.data()).numel(), 1);
    Tensor f = makeTensor<float>(DType::F32, {2}, {0.1f, -2.0f});
    std::vector<double> up = f.toDoubles("f");
    EXPECT_EQ(up[0], static_cast<double>(0.1f));
    EXPECT_EQ(up[1], -2.0);
    Tensor i = makeTensor<int32_t>(DType::I32, {2}, {1, 2});
    std::string message = errorMessage([&] { i.toDoubles("layers.0.weight"); });
    EXPECT_NE(message.find("layers.0.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("I32"), std::string::npos) << message;
    EXPECT_EQ(cgflow::io::dtypeName(DType::U8), "U8");
    EXPECT_EQ(cgflow::io::dtypeSize(DType::I64), 8);
}

TEST(SafeTensors, RoundTripAndDeterministicBytes) {
    SafeTensors file = sampleFile();
    std::string bytes = file.serialize();
    SafeTensors parsed = SafeTensors::parse(bytes, "memory");
    EXPECT_EQ(parsed.metadata, file.metadata);
    ASSERT_EQ(parsed.tensors.size(), file.tensors.size());
    for (const auto& [name, tensor] : file.tensors) {
        ASSERT_EQ(parsed.tensors.count(name), 1u) << name;
        const Tensor& back = parsed.tensors.at(name);
        EXPECT_EQ(back.dtype, tensor.dtype) << name;
        EXPECT_EQ(back.shape, tensor.shape) << name;
        EXPECT_EQ(back.bytes, tensor.bytes) << name;
    }
    EXPECT_EQ(parsed.serialize(), bytes);
    EXPECT_EQ(SafeTensors::parse(parsed.serialize(), "again").serialize(), bytes);
    // Same content inserted in another order gives the same bytes.
    SafeTensors reordered;
    for (auto it = file.tensors.rbegin(); it != file.tensors.rend(); ++it)
        reordered.tensors.insert(*it);
    reordered.metadata = file.metadata;
    EXPECT_EQ(reordered.serialize(), bytes);
}

TEST(SafeTensors, ExactLayout) {
    SafeTensors file;
    std::vector<double> b = {0.5, -1.0};
    std::vector<double> a = {2.0};
    file.tensors["b"] = Tensor::fromDoubles({2}, b.data());
    file.tensors["a"] = Tensor::fromDoubles({1}, a.data());
    std::string bytes = file.serialize();
    std::string header = R"({"a":{"data_offsets":[0,8],"dtype":"F64","shape":[1]},)"
                         R"("b":{"data_offsets":[8,24],"dtype":"F64","shape":[2]}})";
    // Padded with spaces so the data starts 8-byte aligned.
    while (header.size() % 8 != 0)
        header += ' ';
    std::string data(reinterpret_cast<const char*>(a.data()), 8);
    data.append(reinterpret_cast<const char*>(b.data()), 16);
    EXPECT_EQ(bytes, makeFile(header, data));

    SafeTensors withMetadata;
    withMetadata.metadata["k"] = "v";
    std::string empty = withMetadata.serialize();
    EXPECT_EQ(empty, makeFile(R"({"__metadata__":{"k":"v"}}      )", ""));
    EXPECT_EQ(SafeTensors().serialize(), makeFile("{}      ", ""));
}

TEST(SafeTensors, ParsesHuggingFaceOutput) {
    // Written by the Python `safetensors` package 0.8.0:
    //   safetensors.numpy.save({"weight": float32 [[1.5,-2],[0.25,3]], "bias": float64 [0.5,-1],
    //                           "steps": int32 [7,-3]}, metadata={"format": "np"})
    // Note its key order differs from ours and its data is ordered by dtype alignment.
    const std::string bytes = fromHex(
        "d8000000000000007b225f5f6d657461646174615f5f223a7b22666f726d6174223a226e70227d2c2262696173223a7b2264"
        "74797065223a22463634222c227368617065223a5b325d2c22646174615f6f666673657473223a5b302c31365d7d2c227765"
        "69676874223a7b226474797065223a22463332222c227368617065223a5b322c325d2c22646174615f6f666673657473223a"
        "5b31362c33325d7d2c227374657073223a7b226474797065223a22493332222c227368617065223a5b325d2c22646174615f"
        "6f666673657473223a5b33322c34305d7d7d202020202020000000000000e03f000000000000f0bf0000c03f000000c00000"
        "803e0000404007000000fdffffff");
    ASSERT_EQ(bytes.size(), 264u);
    SafeTensors file = SafeTensors::parse(bytes, "hf.safetensors");
    EXPECT_EQ(file.metadata.at("format"), "np");
    ASSERT_EQ(file.tensors.size(), 3u);
    EXPECT_EQ(file.tensors.at("weight").dtype, DType::F32);
    EXPECT_EQ(file.tensors.at("weight").shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(file.tensors.at("weight").toDoubles("weight"), (std::vector<double>{1.5, -2.0, 0.25, 3.0}));
    EXPECT_EQ(file.tensors.at("bias").toDoubles("bias"), (std::vector<double>{0.5, -1.0}));
    const Tensor& steps = file.tensors.at("steps");
    EXPECT_EQ(steps.dtype, DType::I32);
    int32_t values[2];
    std::memcpy(values, steps.bytes.data(), 8);
    EXPECT_EQ(values[0], 7);
    EXPECT_EQ(values[1], -3);
}

TEST(SafeTensors, TooShortOrTruncated) {
    for (size_t n : {0, 1, 7})
        expectParseError(std::string(n, '\0'), "truncated");
    const std::string bytes = sampleFile().serialize();
    uint64_t headerLength = 0;
    std::memcpy(&headerLength, bytes.data(), 8);
    const size_t headerEnd = 8 + headerLength;
    ASSERT_GT(bytes.size(), headerEnd + 16);
    for (size_t cut : {size_t(8), size_t(9), headerEnd / 2, headerEnd - 1, headerEnd, headerEnd + 1,
                       bytes.size() - 8, bytes.size() - 1})
        expectParseError(bytes.substr(0, cut), "truncated");
    // A header length far beyond the data.
    expectParseError(lengthPrefix(1ULL << 62) + "{}", "truncated");
    // Data offsets past the end of the buffer.
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", std::string(8, 'a')),
                     "truncated");
}

TEST(SafeTensors, BadJsonOrNotAnObject) {
    expectParseError(makeFile("{not json}", ""), "invalid JSON");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]})", std::string(8, 'a')),
                     "invalid JSON");
    expectParseError(makeFile(R"({"a":1} {"b":2})", ""), "invalid JSON");
    expectParseError(makeFile("[1,2,3]", ""), "not a JSON object");
    expectParseError(makeFile(R"({"x":[1,2]})", ""), "tensor 'x'");
}

TEST(SafeTensors, UnknownDType) {
    expectParseError(makeFile(R"({"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "ab"), "dtype 'F16'");
    expectParseError(makeFile(R"({"x":{"dtype":"Q99","shape":[1],"data_offsets":[0,8]}})", std::string(8, 'a')),
                     "dtype 'Q99'");
    expectParseError(makeFile(R"({"x":{"dtype":8,"shape":[1],"data_offsets":[0,8]}})", std::string(8, 'a')),
                     "dtype");
}

TEST(SafeTensors, MalformedEntries) {
    const std::string data(8, 'a');
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[-1],"data_offsets":[0,8]}})", data), "shape");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[1.5],"data_offsets":[0,8]}})", data), "shape");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","data_offsets":[0,8]}})", data), "shape");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[1]}})", data), "data_offsets");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[8,0]}})", data), "data_offsets");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8,9]}})", data), "data_offsets");
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8],"extra":1}})", data),
                     "unexpected field 'extra'");
}

TEST(SafeTensors, ShapeOffsetMismatch) {
    expectParseError(makeFile(R"({"x":{"dtype":"F64","shape":[3],"data_offsets":[0,16]}})", std::string(16, 'a')),
                     "needs 24 bytes");
    expectParseError(makeFile(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}})", std::string(8, 'a')),
                     "needs 16 bytes");
}

TEST(SafeTensors, OverlapHoleAndTrailingBytes) {
    expectParseError(makeFile(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
                              R"("b":{"dtype":"F64","shape":[2],"data_offsets":[8,24]}})",
                              std::string(24, 'a')),
                     "overlapping");
    expectParseError(makeFile(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})",
                              std::string(8, 'a')),
                     "overlapping");
    expectParseError(makeFile(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}})",
                              std::string(24, 'a')),
                     "hole");
    expectParseError(makeFile(R"({"b":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}})", std::string(16, 'a')),
                     "hole");
    expectParseError(sampleFile().serialize() + "12345678", "trailing");
    expectParseError(makeFile("{}", "x"), "trailing");
    // Zero-sized tensors take no bytes and may sit anywhere, including at the end.
    SafeTensors ok = SafeTensors::parse(makeFile(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                                                 R"("z":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}})",
                                                 std::string(8, 'a')),
                                        "ok");
    EXPECT_EQ(ok.tensors.at("z").numel(), 0);
}

TEST(SafeTensors, Metadata) {
    expectParseError(makeFile(R"({"__metadata__":{"epochs":10}})", ""), "not a string");
    expectParseError(makeFile(R"({"__metadata__":["a"]})", ""), "__metadata__");
    SafeTensors file = SafeTensors::parse(makeFile(R"({"__metadata__":{"a":"1","b":""}})", ""), "m");
    EXPECT_EQ(file.metadata.size(), 2u);
    EXPECT_EQ(file.metadata.at("a"), "1");
    EXPECT_TRUE(file.tensors.empty());
}

TEST(SafeTensors, SerializeRejectsInconsistentTensors) {
    SafeTensors file;
    Tensor t;
    t.dtype = DType::F64;
    t.shape = {3};
    t.bytes = std::string(16, 'a');
    file.tensors["short"] = t;
    std::string message = errorMessage([&] { file.serialize(); });
    EXPECT_NE(message.find("'short'"), std::string::npos) << message;
    SafeTensors reserved;
    reserved.tensors["__metadata__"] = Tensor::fromDoubles({}, std::vector<double>{1.0}.data());
    EXPECT_THROW(reserved.serialize(), Error);
    SafeTensors badUtf8;
    badUtf8.metadata["k"] = "\xff\xfe";
    EXPECT_THROW(badUtf8.serialize(), Error);
}
