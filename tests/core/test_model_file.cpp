#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/io/models/MLPEnsembleFile.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/io/SafeTensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <functional>
#include <string>
#include <vector>

using cgflow::Error;
using cgflow::io::DType;
using cgflow::io::ModelFile;
using cgflow::io::SafeTensors;
using cgflow::io::Tensor;
using cgflow::nn::Activation;
using cgflow::nn::MLP;
using cgflow::nn::MLPEnsemble;
using nlohmann::json;

namespace {

using cgflowtest::errorMessage;

void expectModelError(const std::string& bytes, const std::string& expected) {
    std::string message = errorMessage([&] { ModelFile::parse(bytes, "model.safetensors"); });
    EXPECT_EQ(message.rfind("model.safetensors", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << "expected '" << expected << "' in: " << message;
}

void expectEnsembleError(const std::string& bytes, const std::string& expected) {
    std::string message = errorMessage([&] { cgflow::io::decodeMLPEnsemble(bytes, "pmf.safetensors"); });
    EXPECT_EQ(message.rfind("pmf.safetensors", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << "expected '" << expected << "' in: " << message;
}

std::string withCgflowMetadata(const json& header) {
    SafeTensors file;
    file.metadata["cgflow"] = header.dump();
    std::vector<double> v = {1.0};
    file.tensors["t"] = Tensor::fromDoubles({1}, v.data());
    return file.serialize();
}

json validHeader() {
    return {{"format", "openmm-cgflow-model"},
            {"format_version", 1},
            {"kind", "test"},
            {"architecture", {{"size", 3}}}};
}

MLPEnsemble sampleEnsemble() {
    std::vector<MLP> members;
    for (int k = 0; k < 3; k++) {
        MLP mlp({4, 6, 5, 1}, Activation::Sigmoid);
        mlp.initializeParameters(10 + k);
        for (int l = 0; l < mlp.getNumLayers(); l++)
            mlp.bias(l).setLinSpaced(-0.3 * (k + 1), 0.7 / (k + 1));
        members.push_back(mlp);
    }
    return MLPEnsemble(members);
}

// Re-serializes an encoded ensemble after letting `edit` change its safetensors content.
std::string editEnsembleFile(const std::function<void(SafeTensors&)>& edit) {
    SafeTensors file = SafeTensors::parse(cgflow::io::encodeMLPEnsemble(sampleEnsemble()), "encoded");
    edit(file);
    return file.serialize();
}

// Same, editing the JSON architecture.
std::string editArchitecture(const std::function<void(json&)>& edit) {
    return editEnsembleFile([&](SafeTensors& file) {
        json header = json::parse(file.metadata.at("cgflow"));
        edit(header["architecture"]);
        file.metadata["cgflow"] = header.dump();
    });
}

} // namespace

TEST(ModelFile, RoundTripAndExactMetadata) {
    ModelFile model;
    model.kind = "test_kind";
    model.architecture = {{"widths", {4, 3, 1}}, {"activation", "tanh"}, {"scale", 0.1}};
    model.info = {{"description", "a test"}, {"z", 1}};
    std::vector<double> v = {1, 2, 3};
    model.tensors["x"] = Tensor::fromDoubles({3}, v.data());
    std::string bytes = model.serialize();
    SafeTensors raw = SafeTensors::parse(bytes, "raw");
    ASSERT_EQ(raw.metadata.size(), 1u);
    EXPECT_EQ(raw.metadata.at("cgflow"),
              R"({"architecture":{"activation":"tanh","scale":0.1,"widths":[4,3,1]},"format":"openmm-cgflow-model",)"
              R"("format_version":1,"info":{"description":"a test","z":1},"kind":"test_kind"})");
    ModelFile back = ModelFile::parse(bytes, "memory");
    EXPECT_EQ(back.kind, model.kind);
    EXPECT_EQ(back.architecture, model.architecture);
    EXPECT_EQ(back.info, model.info);
    ASSERT_EQ(back.tensors.size(), 1u);
    EXPECT_EQ(back.tensors.at("x").toDoubles("x"), v);
    EXPECT_EQ(back.serialize(), bytes);

    // Empty info is omitted and reads back as an empty object.
    model.info = json::object();
    ModelFile noInfo = ModelFile::parse(model.serialize(), "memory");
    EXPECT_TRUE(noInfo.info.is_object());
    EXPECT_TRUE(noInfo.info.empty());
    EXPECT_EQ(SafeTensors::parse(model.serialize(), "raw").metadata.at("cgflow").find("info"), std::string::npos);
}

TEST(ModelFile, VersionTooNew) {
    json header = validHeader();
    header["format_version"] = 2;
    expectModelError(withCgflowMetadata(header),
                     "was written by a newer version (format_version 2); this build reads up to 1; upgrade "
                     "openmm-cgflow");
    header["format_version"] = 12345678901234ULL;
    expectModelError(withCgflowMetadata(header), "format_version 12345678901234");
}

TEST(ModelFile, VersionInvalid) {
    json header = validHeader();
    header["format_version"] = 0;
    expectModelError(withCgflowMetadata(header), "format_version");
    header["format_version"] = -1;
    expectModelError(withCgflowMetadata(header), "format_version");
    header["format_version"] = "1";
    expectModelError(withCgflowMetadata(header), "format_version");
    header.erase("format_version");
    expectModelError(withCgflowMetadata(header), "format_version");
}

TEST(ModelFile, WrongFormatOrMissingMetadata) {
    json header = validHeader();
    header["format"] = "something-else";
    expectModelError(withCgflowMetadata(header), "not an OpenMM-CGFlow model file");
    header.erase("format");
    expectModelError(withCgflowMetadata(header), "not an OpenMM-CGFlow model file");

    SafeTensors plain;
    plain.metadata["format"] = "pt";
    expectModelError(plain.serialize(), "not an OpenMM-CGFlow model file");
    expectModelError(SafeTensors().serialize(), "not an OpenMM-CGFlow model file");

    SafeTensors notJson;
    notJson.metadata["cgflow"] = "{oops";
    expectModelError(notJson.serialize(), "not an OpenMM-CGFlow model file");
    notJson.metadata["cgflow"] = "[1]";
    expectModelError(notJson.serialize(), "not an OpenMM-CGFlow model file");

    expectModelError("garbage", "truncated");
}

TEST(ModelFile, MissingKindOrArchitecture) {
    json header = validHeader();
    header.erase("kind");
    expectModelError(withCgflowMetadata(header), "kind");
    header = validHeader();
    header["kind"] = 3;
    expectModelError(withCgflowMetadata(header), "kind");
    header = validHeader();
    header.erase("architecture");
    expectModelError(withCgflowMetadata(header), "architecture");
    header = validHeader();
    header["architecture"] = "mlp";
    expectModelError(withCgflowMetadata(header), "architecture");
    header = validHeader();
    header["info"] = "text";
    expectModelError(withCgflowMetadata(header), "info");
    header = validHeader();
    header["surprise"] = true;
    expectModelError(withCgflowMetadata(header), "unexpected field 'surprise'");
}

TEST(ModelFile, GetTensor) {
    ModelFile model = ModelFile::parse(withCgflowMetadata(validHeader()), "m");
    EXPECT_EQ(model.getTensor("t", {1}).numel(), 1);
    std::string message = errorMessage([&] { model.getTensor("x", {1}); });
    EXPECT_NE(message.find("missing tensor 'x'"), std::string::npos) << message;
    message = errorMessage([&] { model.getTensor("t", {2, 3}); });
    EXPECT_NE(message.find("tensor 't' has shape [1], expected [2,3]"), std::string::npos) << message;
}

TEST(MLPEnsembleFile, RoundTripIsExact) {
    MLPEnsemble ensemble = sampleEnsemble();
    json info = {{"trained_on", "alanine dipeptide"}, {"epochs", 100}};
    std::string bytes = cgflow::io::encodeMLPEnsemble(ensemble, info);
    json infoBack;
    MLPEnsemble back = cgflow::io::decodeMLPEnsemble(bytes, "pmf.safetensors", &infoBack);
    EXPECT_EQ(infoBack, info);
    ASSERT_EQ(back.getNumMembers(), 3);
    for (int k = 0; k < 3; k++) {
        const MLP& a = ensemble.getMember(k);
        const MLP& b = back.getMember(k);
        EXPECT_EQ(b.getWidths(), a.getWidths());
        EXPECT_EQ(b.getHiddenActivation(), Activation::Sigmoid);
        EXPECT_EQ(b.getOutputActivation(), Activation::Identity);
        for (int l = 0; l < a.getNumLayers(); l++) {
            EXPECT_TRUE(a.weight(l) == b.weight(l));
            EXPECT_TRUE(a.bias(l) == b.bias(l));
        }
    }
    // Load -> save is bit-identical, with and without info.
    EXPECT_EQ(cgflow::io::encodeMLPEnsemble(back, infoBack), bytes);
    std::string plain = cgflow::io::encodeMLPEnsemble(ensemble);
    EXPECT_EQ(cgflow::io::encodeMLPEnsemble(cgflow::io::decodeMLPEnsemble(plain, "p")), plain);

    Eigen::VectorXd x(4);
    x << 0.1, -0.4, 0.8, 0.3;
    MLPEnsemble::Result r1, r2;
    ensemble.evaluate(x, true, r1);
    back.evaluate(x, true, r2);
    EXPECT_EQ(r1.mean, r2.mean);
    EXPECT_EQ(r1.std, r2.std);
    EXPECT_EQ(r1.gradMean, r2.gradMean);
}

TEST(MLPEnsembleFile, LayoutMatchesSpecification) {
    std::string bytes = cgflow::io::encodeMLPEnsemble(sampleEnsemble());
    ModelFile model = ModelFile::parse(bytes, "m");
    EXPECT_EQ(model.kind, "mlp_ensemble");
    EXPECT_EQ(model.architecture,
              json({{"ensemble_size", 3}, {"widths", {4, 6, 5, 1}}, {"activation", "sigmoid"},
                    {"output_activation", "identity"}}));
    EXPECT_EQ(model.tensors.size(), 3u * 3u * 2u);
    const Tensor& w = model.getTensor("members.2.layers.0.weight", {6, 4});
    EXPECT_EQ(w.dtype, DType::F64);
    // Row-major [out, in]: element (r, c) sits at r*in + c.
    std::vector<double> values = w.toDoubles("w");
    MLPEnsemble reference = sampleEnsemble();
    EXPECT_EQ(values[1 * 4 + 3], reference.getMember(2).weight(0)(1, 3));
    EXPECT_EQ(model.getTensor("members.1.layers.2.bias", {1}).toDoubles("b")[0], reference.getMember(1).bias(2)(0));
}

TEST(MLPEnsembleFile, AcceptsF32) {
    MLPEnsemble ensemble = sampleEnsemble();
    std::string bytes = editEnsembleFile([](SafeTensors& file) {
        for (auto& entry : file.tensors) {
            std::vector<double> values = entry.second.toDoubles(entry.first);
            std::string f32(values.size() * 4, '\0');
            for (size_t i = 0; i < values.size(); i++) {
                float f = static_cast<float>(values[i]);
                std::memcpy(&f32[4 * i], &f, 4);
            }
            entry.second.dtype = DType::F32;
            entry.second.bytes = f32;
        }
    });
    MLPEnsemble back = cgflow::io::decodeMLPEnsemble(bytes, "f32");
    EXPECT_EQ(back.getMember(1).weight(1)(2, 3), static_cast<double>(static_cast<float>(
                                                     ensemble.getMember(1).weight(1)(2, 3))));
}

TEST(MLPEnsembleFile, TensorErrors) {
    expectEnsembleError(editEnsembleFile([](SafeTensors& f) { f.tensors.erase("members.1.layers.0.bias"); }),
                        "missing tensor 'members.1.layers.0.bias'");
    expectEnsembleError(editEnsembleFile([](SafeTensors& f) {
                            std::vector<double> v(24, 0.0);
                            f.tensors["members.0.layers.0.weight"] = Tensor::fromDoubles({4, 6}, v.data());
                        }),
                        "tensor 'members.0.layers.0.weight' has shape [4,6], expected [6,4]");
    expectEnsembleError(editEnsembleFile([](SafeTensors& f) {
                            Tensor& t = f.tensors.at("members.2.layers.1.bias");
                            t.dtype = DType::I32;
                            t.bytes.resize(t.bytes.size() / 2);
                        }),
                        "tensor 'members.2.layers.1.bias' has dtype I32");
    expectEnsembleError(editEnsembleFile([](SafeTensors& f) {
                            std::vector<double> v = {1.0};
                            f.tensors["members.3.layers.0.bias"] = Tensor::fromDoubles({1}, v.data());
                        }),
                        "unexpected tensor 'members.3.layers.0.bias'");
    // Non-finite parameters are refused at load time, naming the tensor, not left to give NaN energies.
    for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()})
        expectEnsembleError(editEnsembleFile([bad](SafeTensors& f) {
                                Tensor& t = f.tensors.at("members.1.layers.1.weight");
                                std::vector<double> v = t.toDoubles("w");
                                v[2] = bad;
                                t = Tensor::fromDoubles(t.shape, v.data());
                            }),
                            "tensor 'members.1.layers.1.weight' has a non-finite value at entry 2");
}

TEST(MLPEnsembleFile, ArchitectureErrors) {
    expectEnsembleError(editArchitecture([](json& a) { a["widths"] = {4}; }), "widths");
    expectEnsembleError(editArchitecture([](json& a) { a["widths"] = {4, 0, 1}; }), "widths");
    expectEnsembleError(editArchitecture([](json& a) { a["widths"] = {4, -6, 1}; }), "widths");
    expectEnsembleError(editArchitecture([](json& a) { a["widths"] = {4, 6.0, 1}; }), "widths");
    expectEnsembleError(editArchitecture([](json& a) { a["widths"] = "4,6,5,1"; }), "widths");
    expectEnsembleError(editArchitecture([](json& a) { a["widths"] = {4, 6, 5, 2}; }), "output width of 1");
    expectEnsembleError(editArchitecture([](json& a) { a.erase("widths"); }), "widths");
    expectEnsembleError(editArchitecture([](json& a) { a["activation"] = "gelu"; }), "unknown activation 'gelu'");
    expectEnsembleError(editArchitecture([](json& a) { a["output_activation"] = 1; }), "output_activation");
    expectEnsembleError(editArchitecture([](json& a) { a.erase("activation"); }), "activation");
    expectEnsembleError(editArchitecture([](json& a) { a["ensemble_size"] = 0; }), "ensemble_size");
    expectEnsembleError(editArchitecture([](json& a) { a["ensemble_size"] = "3"; }), "ensemble_size");
    expectEnsembleError(editArchitecture([](json& a) { a.erase("ensemble_size"); }), "ensemble_size");
    expectEnsembleError(editArchitecture([](json& a) { a["dropout"] = 0.1; }), "unexpected architecture field");
    // A smaller ensemble_size than stored leaves extra tensors behind.
    expectEnsembleError(editArchitecture([](json& a) { a["ensemble_size"] = 2; }), "unexpected tensor");
    // Activation names are parsed leniently, like everywhere else.
    EXPECT_NO_THROW(cgflow::io::decodeMLPEnsemble(editArchitecture([](json& a) { a["activation"] = "Sigmoid"; }),
                                                  "ok"));
}

TEST(MLPEnsembleFile, WrongKind) {
    std::string bytes = editEnsembleFile([](SafeTensors& f) {
        json header = json::parse(f.metadata.at("cgflow"));
        header["kind"] = "flow_model";
        f.metadata["cgflow"] = header.dump();
    });
    expectEnsembleError(bytes, "model kind is 'flow_model', expected 'mlp_ensemble'");
    expectEnsembleError(withCgflowMetadata(validHeader()), "expected 'mlp_ensemble'");
}

TEST(MLPEnsembleFile, EncodeRejectsBadInput) {
    EXPECT_THROW(cgflow::io::encodeMLPEnsemble(MLPEnsemble()), Error);
    EXPECT_THROW(cgflow::io::encodeMLPEnsemble(sampleEnsemble(), json::array()), Error);
}

// Found writing tests/fuzz (reproduced with fuzz_model_file on a crafted seed): the architecture alone made the
// decoder allocate the network, so a 2 KB file claiming widths [100000, 100000, 1] asked for 80 GB
// (std::bad_alloc, not an Error). The tensors are now checked before anything is allocated.
TEST(MLPEnsembleFile, HugeArchitectureWithoutTensorsIsAnErrorNotAnAllocation) {
    const std::string bytes = editArchitecture([](json& a) { a["widths"] = {100000, 100000, 1}; });
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeMLPEnsemble(bytes, "pmf.safetensors"); })
                  .find("tensor 'members.0.layers.0.weight' has shape [6,4], expected [100000,100000]"),
              std::string::npos);
    const std::string many = editArchitecture([](json& a) { a["ensemble_size"] = 2147483647; });
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeMLPEnsemble(many, "pmf.safetensors"); }).find("missing tensor"),
              std::string::npos);
}
