#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/io/Base64.h"
#include "cgflow/io/FileUtils.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include <unistd.h>

using cgflow::Error;
namespace fs = std::filesystem;

namespace {

using cgflowtest::errorMessage;

// A fresh directory per test, removed afterwards.
class FileUtilsTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::random_device device;
        dir = fs::temp_directory_path() /
              ("cgflow_file_utils_" + std::to_string(::getpid()) + "_" + std::to_string(device()));
        fs::create_directories(dir);
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    }
    std::vector<std::string> listDirectory() const {
        std::vector<std::string> names;
        for (const auto& entry : fs::directory_iterator(dir))
            names.push_back(entry.path().filename().string());
        return names;
    }
    fs::path dir;
};

std::string allByteValues() {
    std::string bytes;
    for (int i = 0; i < 256; i++)
        bytes.push_back(static_cast<char>(i));
    return bytes;
}

} // namespace

TEST_F(FileUtilsTest, WriteThenReadBinary) {
    const std::string path = (dir / "model.safetensors").string();
    const std::string content = allByteValues() + std::string(100000, '\0') + "tail";
    cgflow::io::writeFileAtomic(path, content);
    EXPECT_EQ(cgflow::io::readFileBytes(path), content);
    // Independent check of what is on disk.
    std::ifstream in(path, std::ios::binary);
    std::string direct((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(direct, content);
    EXPECT_EQ(listDirectory(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(FileUtilsTest, OverwriteLeavesNoTemporaryFiles) {
    const std::string path = (dir / "out.bin").string();
    cgflow::io::writeFileAtomic(path, std::string(5000, 'a'));
    cgflow::io::writeFileAtomic(path, "short");
    EXPECT_EQ(cgflow::io::readFileBytes(path), "short");
    cgflow::io::writeFileAtomic(path, "");
    EXPECT_EQ(cgflow::io::readFileBytes(path), "");
    EXPECT_EQ(listDirectory(), std::vector<std::string>{"out.bin"});
}

TEST_F(FileUtilsTest, RelativePathInCurrentDirectory) {
    const fs::path previous = fs::current_path();
    fs::current_path(dir);
    cgflow::io::writeFileAtomic("relative.txt", "hello");
    fs::current_path(previous);
    EXPECT_EQ(cgflow::io::readFileBytes((dir / "relative.txt").string()), "hello");
    EXPECT_EQ(listDirectory(), std::vector<std::string>{"relative.txt"});
}

TEST_F(FileUtilsTest, WriteErrorsNameThePath) {
    const std::string missingDir = (dir / "no_such_dir" / "file.bin").string();
    std::string message = errorMessage([&] { cgflow::io::writeFileAtomic(missingDir, "data"); });
    EXPECT_NE(message.find(missingDir), std::string::npos) << message;
    // Renaming a file over a directory fails after the temporary was written; it must be cleaned up.
    fs::create_directories(dir / "occupied");
    fs::create_directories(dir / "occupied" / "child");
    const std::string directoryPath = (dir / "occupied").string();
    message = errorMessage([&] { cgflow::io::writeFileAtomic(directoryPath, "data"); });
    EXPECT_NE(message.find(directoryPath), std::string::npos) << message;
    EXPECT_EQ(listDirectory(), std::vector<std::string>{"occupied"});
    EXPECT_THROW(cgflow::io::writeFileAtomic("", "data"), Error);
}

TEST_F(FileUtilsTest, ReadErrorsNameThePath) {
    const std::string missing = (dir / "missing.safetensors").string();
    std::string message = errorMessage([&] { cgflow::io::readFileBytes(missing); });
    EXPECT_NE(message.find(missing), std::string::npos) << message;
    message = errorMessage([&] { cgflow::io::readFileBytes(dir.string()); });
    EXPECT_NE(message.find(dir.string()), std::string::npos) << message;
    EXPECT_NE(message.find("directory"), std::string::npos) << message;
}

TEST(Base64, KnownVectors) {
    // RFC 4648, section 10.
    const std::pair<std::string, std::string> vectors[] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                                          {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                          {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(cgflow::io::base64Encode(plain), encoded);
        EXPECT_EQ(cgflow::io::base64Decode(encoded), plain);
    }
    EXPECT_EQ(cgflow::io::base64Encode("\xfb\xff\xbf"), "+/+/");
}

TEST(Base64, RoundTripsAllBytes) {
    std::string bytes = allByteValues();
    for (size_t length = 0; length <= bytes.size(); length += 37) {
        std::string part = bytes.substr(bytes.size() - length);
        EXPECT_EQ(cgflow::io::base64Decode(cgflow::io::base64Encode(part)), part);
    }
    EXPECT_EQ(cgflow::io::base64Decode(cgflow::io::base64Encode(bytes)), bytes);
}

TEST(Base64, DecodeRejectsInvalidInput) {
    for (const char* bad : {"Zg=", "Zm9", "Z", "Zm9v!A==", "Zm 9", "Z===", "=Zg=", "Zg==Zg==", "Zm9v\n"}) {
        std::string message = errorMessage([&] { cgflow::io::base64Decode(bad); });
        EXPECT_NE(message.find("base64"), std::string::npos) << "input '" << bad << "': " << message;
    }
}
