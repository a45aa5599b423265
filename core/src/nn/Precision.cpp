#include "cgflow/nn/Precision.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cctype>

namespace cgflow::nn {

std::string precisionName(Precision precision) {
    switch (precision) {
    case Precision::Float64:
        return "float64";
    case Precision::Mixed:
        return "mixed";
    }
    throw Error("precisionName: invalid Precision value " + std::to_string(static_cast<int>(precision)));
}

Precision parsePrecision(const std::string& name) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower == "float64" || lower == "double")
        return Precision::Float64;
    if (lower == "mixed")
        return Precision::Mixed;
    throw Error("unknown precision '" + name + "'; expected \"float64\" (or \"double\") or \"mixed\"");
}

} // namespace cgflow::nn
