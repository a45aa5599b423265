#include "cgflow/coords/PositionMap.h"

#include "cgflow/Error.h"
#include "cgflow/flows/RQSpline.h"
#include "cgflow/io/JsonFields.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

namespace cgflow::coords {

using nlohmann::json;

PositionMap PositionMap::cartesian(int numParticles, std::vector<Slot> slots) {
    if (numParticles < 1)
        throw Error("PositionMap::cartesian: numParticles must be >= 1, got " + std::to_string(numParticles));
    if (slots.empty())
        throw Error("PositionMap::cartesian: slots is empty (a model must move at least one coordinate)");
    std::set<Slot> seen;
    for (size_t k = 0; k < slots.size(); k++) {
        const std::string name = "slots[" + std::to_string(k) + "]";
        if (slots[k][0] < 0 || slots[k][0] >= numParticles)
            throw Error("PositionMap::cartesian: " + name + " particle " + std::to_string(slots[k][0]) +
                        " is out of range [0, " + std::to_string(numParticles) + ")");
        if (slots[k][1] < 0 || slots[k][1] > 2)
            throw Error("PositionMap::cartesian: " + name + " axis must be 0, 1 or 2 (x, y, z), got " +
                        std::to_string(slots[k][1]));
        if (!seen.insert(slots[k]).second)
            throw Error("PositionMap::cartesian: " + name + " (particle " + std::to_string(slots[k][0]) + ", axis " +
                        std::to_string(slots[k][1]) + ") is listed twice");
    }
    PositionMap map;
    map.type = Type::Cartesian;
    map.numParticles = numParticles;
    map.slots = std::move(slots);
    return map;
}

PositionMap PositionMap::allCartesian(int numParticles) {
    if (numParticles < 1)
        throw Error("PositionMap::allCartesian: numParticles must be >= 1, got " + std::to_string(numParticles));
    std::vector<Slot> slots;
    for (int p = 0; p < numParticles; p++)
        for (int axis = 0; axis < 3; axis++)
            slots.push_back({p, axis});
    return cartesian(numParticles, std::move(slots));
}

PositionMap PositionMap::internal(InternalCoordinates coordinates, std::vector<ConditionColumn> conditionColumns) {
    if (coordinates.getNumAtoms() < 3)
        throw Error("PositionMap::internal: the Z-matrix has " + std::to_string(coordinates.getNumAtoms()) +
                    " atoms; an internal-coordinate map needs at least 3");
    const int columns = coordinates.getNumInternal();
    std::vector<int> sources(columns, 0);
    for (size_t k = 0; k < conditionColumns.size(); k++) {
        const std::string name = "conditionColumns[" + std::to_string(k) + "]";
        const int c = conditionColumns[k].column;
        if (c < 0 || c >= columns)
            throw Error("PositionMap::internal: " + name + " column " + std::to_string(c) + " is out of range [0, " +
                        std::to_string(columns) + ")");
        if (!coordinates.getZMatrix().isCircularColumn(c))
            throw Error("PositionMap::internal: " + name + " column " + std::to_string(c) + " (" +
                        coordinates.getZMatrix().describeColumn(c) +
                        ") is not a circular dihedral; only those can be set from a condition vector");
        if (sources[c] != 0)
            throw Error("PositionMap::internal: " + name + " column " + std::to_string(c) + " is listed twice");
        if (conditionColumns[k].condition < 0)
            throw Error("PositionMap::internal: " + name + " condition index must be >= 0, got " +
                        std::to_string(conditionColumns[k].condition));
        sources[c] = -1 - static_cast<int>(k);
    }
    int next = 0;
    for (int c = 0; c < columns; c++)
        if (sources[c] == 0)
            sources[c] = next++;
    PositionMap map;
    map.type = Type::Internal;
    map.numParticles = coordinates.getNumAtoms();
    map.coordinates = std::make_shared<const InternalCoordinates>(std::move(coordinates));
    map.conditionColumns = std::move(conditionColumns);
    map.columnSources = std::move(sources);
    return map;
}

int PositionMap::getDimension() const {
    return type == Type::Cartesian ? static_cast<int>(slots.size())
                                   : coordinates->getNumInternal() - static_cast<int>(conditionColumns.size());
}

int PositionMap::getNumConditionValues() const {
    int count = 0;
    for (const ConditionColumn& c : conditionColumns)
        count = std::max(count, c.condition + 1);
    return count;
}

int PositionMap::getColumnOfDimension(int d) const {
    if (type != Type::Internal)
        throw Error("PositionMap::getColumnOfDimension: this is a Cartesian map");
    if (d < 0 || d >= getDimension())
        throw Error("PositionMap::getColumnOfDimension: d must be in [0, " + std::to_string(getDimension()) +
                    "), got " + std::to_string(d));
    for (size_t c = 0; c < columnSources.size(); c++)
        if (columnSources[c] == d)
            return static_cast<int>(c);
    throw Error("PositionMap::getColumnOfDimension: internal error, no column for dimension " + std::to_string(d));
}

const std::vector<PositionMap::Slot>& PositionMap::getSlots() const {
    if (type != Type::Cartesian)
        throw Error("PositionMap::getSlots: this is an internal-coordinate map, it has no slots");
    return slots;
}

const InternalCoordinates& PositionMap::getInternalCoordinates() const {
    if (type != Type::Internal)
        throw Error("PositionMap::getInternalCoordinates: this is a Cartesian map");
    return *coordinates;
}

std::vector<bool> PositionMap::getCircular() const {
    std::vector<bool> circular(getDimension(), false);
    if (type == Type::Internal)
        for (int d = 0; d < getDimension(); d++)
            circular[d] = coordinates->getZMatrix().isCircularColumn(getColumnOfDimension(d));
    return circular;
}

void PositionMap::toPositions(int n, const double* y, const double* templatePositions, double* positions,
                              double* logDetJ, const double* condition) const {
    if (n < 0)
        throw Error("PositionMap::toPositions: n must be >= 0, got " + std::to_string(n));
    if (n > 0 && (y == nullptr || positions == nullptr || templatePositions == nullptr))
        throw Error("PositionMap::toPositions: y, templatePositions and positions must not be null");
    const int dim = getDimension(), width = 3 * numParticles;
    if (type == Type::Cartesian) {
        for (int s = 0; s < n; s++) {
            double* x = positions + static_cast<size_t>(s) * width;
            std::copy(templatePositions, templatePositions + width, x);
            for (int k = 0; k < dim; k++)
                x[3 * slots[k][0] + slots[k][1]] = y[static_cast<size_t>(s) * dim + k];
            if (logDetJ != nullptr)
                logDetJ[s] = 0;
        }
        return;
    }
    if (conditionColumns.empty()) {
        if (condition != nullptr)
            throw Error("PositionMap::toPositions: condition given, but this map has no condition columns");
        coordinates->toCartesian(n, y, positions, logDetJ);
    }
    else {
        if (n > 0 && condition == nullptr)
            throw Error("PositionMap::toPositions: this map takes " + std::to_string(conditionColumns.size()) +
                        " internal coordinates from a condition vector, and none was given");
        // The full internal-coordinate vector: flow outputs and condition values (normalized as the
        // columns are: a circular column's model value is the dihedral minus its shift, wrapped).
        const int columns = coordinates->getNumInternal(), values = getNumConditionValues();
        const bool normalized = coordinates->isNormalized();
        std::vector<double> full(static_cast<size_t>(n) * columns);
        for (int s = 0; s < n; s++)
            for (int c = 0; c < columns; c++) {
                const int source = columnSources[c];
                double& out = full[static_cast<size_t>(s) * columns + c];
                if (source >= 0)
                    out = y[static_cast<size_t>(s) * dim + source];
                else {
                    const double value = condition[static_cast<size_t>(s) * values + conditionColumns[-1 - source].condition];
                    out = flows::RQSpline::wrapAngle(value - (normalized ? coordinates->getShift()[c] : 0.0));
                }
            }
        coordinates->toCartesian(n, full.data(), positions, logDetJ);
    }
    double target[3] = {0, 0, 0};
    for (int i = 0; i < numParticles; i++)
        for (int a = 0; a < 3; a++)
            target[a] += templatePositions[3 * i + a] / numParticles;
    for (int s = 0; s < n; s++) {
        double* x = positions + static_cast<size_t>(s) * width;
        double centroid[3] = {0, 0, 0};
        for (int i = 0; i < numParticles; i++)
            for (int a = 0; a < 3; a++)
                centroid[a] += x[3 * i + a] / numParticles;
        for (int i = 0; i < numParticles; i++)
            for (int a = 0; a < 3; a++)
                x[3 * i + a] += target[a] - centroid[a];
    }
}

void PositionMap::fromPositions(int n, const double* positions, double* y, double* logDetJ,
                                double* conditionValues) const {
    if (n < 0)
        throw Error("PositionMap::fromPositions: n must be >= 0, got " + std::to_string(n));
    if (n > 0 && (y == nullptr || positions == nullptr))
        throw Error("PositionMap::fromPositions: positions and y must not be null");
    const int dim = getDimension(), width = 3 * numParticles;
    if (type == Type::Cartesian) {
        for (int s = 0; s < n; s++) {
            for (int k = 0; k < dim; k++)
                y[static_cast<size_t>(s) * dim + k] =
                    positions[static_cast<size_t>(s) * width + 3 * slots[k][0] + slots[k][1]];
            if (logDetJ != nullptr)
                logDetJ[s] = 0;
        }
        return;
    }
    if (conditionColumns.empty()) {
        coordinates->toInternal(n, positions, y, logDetJ);
        return;
    }
    const int columns = coordinates->getNumInternal(), count = static_cast<int>(conditionColumns.size());
    const bool normalized = coordinates->isNormalized();
    std::vector<double> full(static_cast<size_t>(n) * columns);
    coordinates->toInternal(n, positions, full.data(), logDetJ);
    for (int s = 0; s < n; s++)
        for (int c = 0; c < columns; c++) {
            const int source = columnSources[c];
            const double value = full[static_cast<size_t>(s) * columns + c];
            if (source >= 0)
                y[static_cast<size_t>(s) * dim + source] = value;
            else if (conditionValues != nullptr)
                conditionValues[static_cast<size_t>(s) * count + (-1 - source)] =
                    flows::RQSpline::wrapAngle(value + (normalized ? coordinates->getShift()[c] : 0.0));
        }
}

json PositionMap::toJson() const {
    if (type == Type::Cartesian) {
        json slotList = json::array();
        for (const Slot& slot : slots)
            slotList.push_back({slot[0], slot[1]});
        return {{"type", "cartesian"}, {"num_particles", numParticles}, {"slots", slotList}};
    }
    json rows = json::array();
    for (const ZMatrixRow& row : coordinates->getZMatrix().getRows())
        rows.push_back({row.atom, row.bondPartner, row.anglePartner, row.dihedralPartner, row.circular});
    json normalization = nullptr;
    if (coordinates->isNormalized())
        normalization = {{"shift", coordinates->getShift()}, {"scale", coordinates->getScale()}};
    const bool full = coordinates->getJacobianConvention() == InternalCoordinates::JacobianConvention::Full;
    json result = {{"type", "internal"}, {"z_matrix", rows}, {"jacobian", full ? "full" : "frame"},
                   {"normalization", normalization}};
    if (!conditionColumns.empty()) {
        json list = json::array();
        for (const ConditionColumn& c : conditionColumns)
            list.push_back({c.column, c.condition});
        result["condition_columns"] = list;
    }
    return result;
}

namespace {

const json& required(const json& object, const std::string& key, const std::string& where) {
    if (!object.contains(key))
        throw Error(where + ": \"" + key + "\" is required");
    return object.at(key);
}

int integerAt(const json& value, const std::string& name) {
    if (!io::isInt(value))
        throw Error(name + " must be an integer" + (value.is_number_integer() ? " that fits in 32 bits, got " + value.dump() : ""));
    return value.get<int>();
}

std::vector<double> numbers(const json& value, const std::string& name) {
    if (!value.is_array())
        throw Error(name + " must be an array of numbers");
    std::vector<double> result;
    for (const json& v : value) {
        if (!v.is_number())
            throw Error(name + " must be an array of numbers");
        result.push_back(v.get<double>());
    }
    return result;
}

} // namespace

PositionMap PositionMap::fromJson(const json& config) {
    const std::string where = "positions";
    if (!config.is_object())
        throw Error(where + ": must be an object with a \"type\"");
    const json& typeValue = required(config, "type", where);
    if (!typeValue.is_string())
        throw Error(where + ": \"type\" must be \"cartesian\" or \"internal\"");
    const std::string typeName = typeValue.get<std::string>();
    if (typeName == "cartesian") {
        io::checkKeys(config, {"type", "num_particles", "slots"}, where);
        const int count = integerAt(required(config, "num_particles", where), where + ".num_particles");
        const json& slotList = required(config, "slots", where);
        if (!slotList.is_array())
            throw Error(where + ".slots must be an array of [particle, axis] pairs");
        std::vector<Slot> parsed;
        for (size_t k = 0; k < slotList.size(); k++) {
            const std::string name = where + ".slots[" + std::to_string(k) + "]";
            if (!slotList[k].is_array() || slotList[k].size() != 2)
                throw Error(name + " must be a [particle, axis] pair");
            parsed.push_back({integerAt(slotList[k][0], name + "[0]"), integerAt(slotList[k][1], name + "[1]")});
        }
        return cartesian(count, std::move(parsed));
    }
    if (typeName != "internal")
        throw Error(where + ": \"type\" must be \"cartesian\" or \"internal\", got \"" + typeName + "\"");
    io::checkKeys(config, {"type", "z_matrix", "jacobian", "normalization", "condition_columns"}, where);
    const json& rowList = required(config, "z_matrix", where);
    if (!rowList.is_array())
        throw Error(where + ".z_matrix must be an array of [atom, bond, angle, dihedral, circular] rows");
    std::vector<ZMatrixRow> rows;
    for (size_t r = 0; r < rowList.size(); r++) {
        const std::string name = where + ".z_matrix[" + std::to_string(r) + "]";
        const json& row = rowList[r];
        if (!row.is_array() || row.size() != 5 || !row[4].is_boolean())
            throw Error(name + " must be [atom, bond, angle, dihedral, circular] (-1 for no partner, circular a boolean)");
        ZMatrixRow parsed;
        parsed.atom = integerAt(row[0], name + "[0]");
        parsed.bondPartner = integerAt(row[1], name + "[1]");
        parsed.anglePartner = integerAt(row[2], name + "[2]");
        parsed.dihedralPartner = integerAt(row[3], name + "[3]");
        parsed.circular = row[4].get<bool>();
        rows.push_back(parsed);
    }
    InternalCoordinates ic{ZMatrix(std::move(rows))};
    if (config.contains("jacobian")) {
        const json& convention = config.at("jacobian");
        if (convention == "full")
            ic.setJacobianConvention(InternalCoordinates::JacobianConvention::Full);
        else if (convention == "frame")
            ic.setJacobianConvention(InternalCoordinates::JacobianConvention::Frame);
        else
            throw Error(where + ".jacobian must be \"full\" or \"frame\"");
    }
    if (config.contains("normalization") && !config.at("normalization").is_null()) {
        const json& normalization = config.at("normalization");
        if (!normalization.is_object())
            throw Error(where + ".normalization must be null or {\"shift\": [...], \"scale\": [...]}");
        io::checkKeys(normalization, {"shift", "scale"}, where + ".normalization");
        std::vector<double> shift = numbers(required(normalization, "shift", where + ".normalization"),
                                            where + ".normalization.shift");
        std::vector<double> scale = numbers(required(normalization, "scale", where + ".normalization"),
                                            where + ".normalization.scale");
        ic.setNormalization(std::move(shift), std::move(scale));
    }
    std::vector<ConditionColumn> conditionColumns;
    if (config.contains("condition_columns")) {
        const json& list = config.at("condition_columns");
        if (!list.is_array())
            throw Error(where + ".condition_columns must be an array of [column, condition] pairs");
        for (size_t k = 0; k < list.size(); k++) {
            const std::string name = where + ".condition_columns[" + std::to_string(k) + "]";
            if (!list[k].is_array() || list[k].size() != 2)
                throw Error(name + " must be a [column, condition] pair");
            conditionColumns.push_back({integerAt(list[k][0], name + "[0]"), integerAt(list[k][1], name + "[1]")});
        }
    }
    return internal(std::move(ic), std::move(conditionColumns));
}

} // namespace cgflow::coords
