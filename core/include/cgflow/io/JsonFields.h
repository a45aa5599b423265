#ifndef CGFLOW_IO_JSONFIELDS_H_
#define CGFLOW_IO_JSONFIELDS_H_

#include <nlohmann/json.hpp>

#include <climits>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace cgflow::io {

/**
 * Readers of the fields of JSON configs (flow layers, model architectures, position maps). Every
 * config in the project is read through these, so every malformed file gets the same kind of
 * message: it starts with `where` (e.g. "flow config", "spline_coupling config") and names the
 * field and the value found. Nothing is clamped or coerced: a float where an integer belongs is
 * an Error, not a truncation.
 */

/** Error "<where>: must be a JSON object" unless object is one. */
void checkObject(const nlohmann::json& object, const std::string& where);

/** Error '<where>: unknown key "k" (expected "a", "b", ...)' for the first key not in allowed. */
void checkKeys(const nlohmann::json& object, const std::set<std::string>& allowed, const std::string& where);

/** True if v is a JSON integer that fits in an int (readers must not let 4294967296 wrap to 0). */
bool isInt(const nlohmann::json& v);

/**
 * The integer field `key`, or `fallback` when absent. Errors: not an integer, outside the range of
 * int, or below `minimum`.
 */
int readInt(const nlohmann::json& object, const char* key, int fallback, const std::string& where,
            int minimum = INT_MIN);

/** The integer field `key`, which must be present (Error '<where>: the integer field "key" is required'). */
int requireInt(const nlohmann::json& object, const char* key, const std::string& where, int minimum = INT_MIN);

/** The finite number field `key`, or `fallback` when absent. */
double readNumber(const nlohmann::json& object, const char* key, double fallback, const std::string& where);

/** The boolean field `key` (true or false, nothing else), or `fallback` when absent. */
bool readBool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where);

/** The array of ints `key`, which must be present. */
std::vector<int> readIntArray(const nlohmann::json& object, const char* key, const std::string& where);

/** The non-negative integer field `key` (a seed, a step count), or `fallback` when absent. */
uint64_t readUnsigned(const nlohmann::json& object, const char* key, uint64_t fallback, const std::string& where);

} // namespace cgflow::io

#endif
