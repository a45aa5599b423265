#include "cgflow/io/JsonFields.h"

#include "cgflow/Error.h"

#include <cmath>
#include <limits>

namespace cgflow::io {

namespace {

bool fitsInt(const nlohmann::json& v) {
    if (v.is_number_unsigned())
        return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int>::max());
    const int64_t value = v.get<int64_t>();
    return value >= std::numeric_limits<int>::min() && value <= std::numeric_limits<int>::max();
}

std::string integerRequirement(int minimum) {
    return minimum == INT_MIN ? "an integer" : "an integer >= " + std::to_string(minimum);
}

} // namespace

bool isInt(const nlohmann::json& v) {
    return v.is_number_integer() && fitsInt(v);
}

void checkObject(const nlohmann::json& object, const std::string& where) {
    if (!object.is_object())
        throw Error(where + ": must be a JSON object");
}

void checkKeys(const nlohmann::json& object, const std::set<std::string>& allowed, const std::string& where) {
    for (auto it = object.begin(); it != object.end(); ++it)
        if (!allowed.count(it.key())) {
            std::string list;
            for (const std::string& key : allowed)
                list += (list.empty() ? "\"" : ", \"") + key + "\"";
            throw Error(where + ": unknown key \"" + it.key() + "\" (expected " + list + ")");
        }
}

int readInt(const nlohmann::json& object, const char* key, int fallback, const std::string& where, int minimum) {
    if (!object.contains(key))
        return fallback;
    const nlohmann::json& v = object[key];
    if (!v.is_number_integer() || !fitsInt(v) || v.get<int64_t>() < minimum)
        throw Error(where + ": \"" + key + "\" must be " + integerRequirement(minimum) + ", got " + v.dump());
    return v.get<int>();
}

int requireInt(const nlohmann::json& object, const char* key, const std::string& where, int minimum) {
    if (!object.contains(key))
        throw Error(where + ": the integer field \"" + key + "\" is required");
    return readInt(object, key, 0, where, minimum);
}

double readNumber(const nlohmann::json& object, const char* key, double fallback, const std::string& where) {
    if (!object.contains(key))
        return fallback;
    const nlohmann::json& v = object[key];
    if (!v.is_number() || !std::isfinite(v.get<double>()))
        throw Error(where + ": \"" + key + "\" must be a finite number, got " + v.dump());
    return v.get<double>();
}

bool readBool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
    if (!object.contains(key))
        return fallback;
    const nlohmann::json& v = object[key];
    if (!v.is_boolean())
        throw Error(where + ": \"" + key + "\" must be true or false, got " + v.dump());
    return v.get<bool>();
}

std::vector<int> readIntArray(const nlohmann::json& object, const char* key, const std::string& where) {
    if (!object.contains(key) || !object[key].is_array())
        throw Error(where + ": \"" + key + "\" must be an array of integers");
    std::vector<int> values;
    for (const auto& v : object[key]) {
        if (!v.is_number_integer() || !fitsInt(v))
            throw Error(where + ": \"" + key + "\" entries must be integers, got " + v.dump());
        values.push_back(v.get<int>());
    }
    return values;
}

uint64_t readUnsigned(const nlohmann::json& object, const char* key, uint64_t fallback, const std::string& where) {
    if (!object.contains(key))
        return fallback;
    const nlohmann::json& v = object[key];
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
        throw Error(where + ": \"" + key + "\" must be a non-negative integer, got " + v.dump());
    return v.get<uint64_t>();
}

} // namespace cgflow::io
