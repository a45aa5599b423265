#ifndef CGFLOW_FLOWS_ATOMLAYOUT_H_
#define CGFLOW_FLOWS_ATOMLAYOUT_H_

// Shared by the per-atom maps (RightStochasticLinear, AtomPermutation): the atom-major layout of
// their data and the checks of their configs. Private to core/src/flows.

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"

#include <Eigen/Core>
#include <set>
#include <string>

namespace cgflow::flows {

inline std::string shapeString(Eigen::Index rows, Eigen::Index cols) {
    return std::to_string(rows) + "x" + std::to_string(cols);
}

/** The number of atoms of a layout of k components per atom, or Error. */
inline int atomCount(const char* name, size_t dimension, int componentsPerAtom) {
    if (componentsPerAtom < 1)
        throw Error(std::string(name) + ": componentsPerAtom must be >= 1, got " + std::to_string(componentsPerAtom));
    if (dimension == 0 || dimension % static_cast<size_t>(componentsPerAtom) != 0)
        throw Error(std::string(name) + ": the dimension " + std::to_string(dimension) +
                    " is not a positive multiple of componentsPerAtom = " + std::to_string(componentsPerAtom) +
                    " (atoms stored atom-major: x0, y0, z0, x1, ...)");
    return static_cast<int>(dimension / static_cast<size_t>(componentsPerAtom));
}

/** A layer config: a JSON object whose optional "type" is `type` and whose keys are in `allowed` (or "type"). */
inline void checkLayerConfig(const nlohmann::json& config, const char* type, std::set<std::string> allowed) {
    const std::string where = std::string(type) + " config";
    io::checkObject(config, where);
    if (config.contains("type") && (!config["type"].is_string() || config["type"].get<std::string>() != type))
        throw Error(where + ": \"type\" must be \"" + type + "\", got " + config["type"].dump());
    allowed.insert("type");
    io::checkKeys(config, allowed, where);
}

} // namespace cgflow::flows

#endif
