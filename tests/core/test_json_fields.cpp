// The one reader of JSON config fields (cgflow/io/JsonFields.h): values, defaults, and errors that
// name where they come from, the field and the value found.
#include "CoreTestUtils.h"
#include "cgflow/io/JsonFields.h"

#include <gtest/gtest.h>

using namespace cgflow::io;
using cgflowtest::errorMessage;
using nlohmann::json;

TEST(JsonFields, ReadsValuesAndDefaults) {
    const json config = {{"n", 3}, {"x", 2.5}, {"list", {1, 2, 3}}, {"seed", 12345678901ull}};
    EXPECT_EQ(readInt(config, "n", 7, "test config"), 3);
    EXPECT_EQ(readInt(config, "missing", 7, "test config"), 7);
    EXPECT_EQ(requireInt(config, "n", "test config", 1), 3);
    EXPECT_EQ(readNumber(config, "x", 0.0, "test config"), 2.5);
    EXPECT_EQ(readNumber(config, "n", 0.0, "test config"), 3.0);
    EXPECT_EQ(readNumber(config, "missing", -1.0, "test config"), -1.0);
    EXPECT_EQ(readIntArray(config, "list", "test config"), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(readUnsigned(config, "seed", 0, "test config"), 12345678901ull);
    EXPECT_EQ(readUnsigned(config, "missing", 9, "test config"), 9u);
    EXPECT_TRUE(readBool(json{{"flag", true}}, "flag", false, "test config"));
    EXPECT_FALSE(readBool(config, "missing", false, "test config"));
    EXPECT_NO_THROW(checkKeys(config, {"n", "x", "list", "seed"}, "test config"));
    EXPECT_NO_THROW(checkObject(config, "test config"));
}

TEST(JsonFields, ErrorsNameTheConfigTheFieldAndTheValue) {
    const json config = {{"n", 2.5}, {"big", 1ll << 40}, {"low", 0}, {"neg", -1}, {"x", "text"}, {"list", {1, "a"}}};
    EXPECT_EQ(errorMessage([&] { readInt(config, "n", 0, "flow config"); }),
              "flow config: \"n\" must be an integer, got 2.5");
    EXPECT_EQ(errorMessage([&] { readInt(config, "big", 0, "flow config"); }),
              "flow config: \"big\" must be an integer, got 1099511627776");
    EXPECT_EQ(errorMessage([&] { readInt(config, "low", 0, "flow config", 1); }),
              "flow config: \"low\" must be an integer >= 1, got 0");
    EXPECT_EQ(errorMessage([&] { requireInt(config, "missing", "flow config"); }),
              "flow config: the integer field \"missing\" is required");
    EXPECT_EQ(errorMessage([&] { readNumber(config, "x", 0.0, "flow config"); }),
              "flow config: \"x\" must be a finite number, got \"text\"");
    EXPECT_EQ(errorMessage([&] { readIntArray(config, "list", "flow config"); }),
              "flow config: \"list\" entries must be integers, got \"a\"");
    EXPECT_EQ(errorMessage([&] { readIntArray(config, "x", "flow config"); }),
              "flow config: \"x\" must be an array of integers");
    EXPECT_EQ(errorMessage([&] { readUnsigned(config, "neg", 0, "trainer config"); }),
              "trainer config: \"neg\" must be a non-negative integer, got -1");
    EXPECT_EQ(errorMessage([&] { checkKeys(config, {"n", "x"}, "flow config"); }),
              "flow config: unknown key \"big\" (expected \"n\", \"x\")");
    EXPECT_EQ(errorMessage([&] { checkObject(json::array(), "flow config"); }), "flow config: must be a JSON object");
    EXPECT_EQ(errorMessage([&] { readBool(config, "low", false, "trainer config"); }),
              "trainer config: \"low\" must be true or false, got 0");
}
