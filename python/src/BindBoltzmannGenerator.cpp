// _core bindings for Boltzmann-generator models: PositionMap (flow output <-> particle positions)
// and the "boltzmann_generator" model file that BoltzmannGeneratorIntegrator reads.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/coords/PositionMap.h"
#include "cgflow/io/models/BoltzmannGeneratorFile.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>

namespace py = pybind11;
using namespace cgflow;
using coords::PositionMap;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

/** (n, dim) rows, or one (dim,) vector as a batch of 1. */
Array outputsFrom(Array y, int dim) {
    if (y.ndim() == 1 && y.shape(0) == dim)
        y = y.reshape({1, dim});
    if (y.ndim() != 2 || y.shape(1) != dim)
        throw Error("y: expected shape (n, " + std::to_string(dim) + "), one flow output per row");
    return y;
}

Array positionsFrom(Array x, int numParticles, const char* name) {
    if (x.ndim() == 2 && x.shape(0) == numParticles && x.shape(1) == 3)
        x = x.reshape({1, numParticles, 3});
    if (x.ndim() != 3 || x.shape(1) != numParticles || x.shape(2) != 3)
        throw Error(std::string(name) + ": expected shape (n, " + std::to_string(numParticles) + ", 3) in nm");
    return x;
}

/** A condition per sample: (n, values), or one (values,) vector for every sample. */
std::vector<double> conditionRows(const py::object& condition, const PositionMap& map, int n) {
    const int values = map.getNumConditionValues();
    if (condition.is_none()) {
        if (values > 0)
            throw Error("condition: this map takes " + std::to_string(map.getConditionColumns().size()) +
                        " internal coordinates from a condition vector of " + std::to_string(values) +
                        " values; pass condition (n, " + std::to_string(values) + ") or (" + std::to_string(values) + ",)");
        return {};
    }
    if (values == 0)
        throw Error("condition: this map has no condition columns");
    Array c = py::cast<Array>(condition);
    if (c.ndim() == 1 && c.shape(0) == values) {
        std::vector<double> rows;
        for (int s = 0; s < n; s++)
            rows.insert(rows.end(), c.data(), c.data() + values);
        return rows;
    }
    if (c.ndim() != 2 || c.shape(0) != n || c.shape(1) != values)
        throw Error("condition: expected shape (" + std::to_string(n) + ", " + std::to_string(values) + ") or (" +
                    std::to_string(values) + ",)");
    return std::vector<double>(c.data(), c.data() + static_cast<size_t>(n) * values);
}

} // namespace

void bindBoltzmannGenerator(py::module_& m) {
    py::class_<PositionMap>(m, "PositionMap", R"doc(
How a flow's output y becomes the positions of a System's particles (nm), and back.

``PositionMap.cartesian(num_particles, slots)``: y[k] is coordinate slots[k] = (particle, axis);
the other coordinates are kept from a template (the Context's current positions).
``PositionMap.internal(internal_coordinates, condition_columns=None)``: y is the (normalized)
internal-coordinate vector; the molecule is built in the canonical frame and centred on the template's
centroid. ``condition_columns`` [(column, condition), ...] makes a conditional map: those circular
dihedral columns are not in y but set to condition[condition] (rad), e.g. phi and psi of the CG point for
a flow q(x_FG | phi, psi); ``to_positions`` then needs ``condition``.
Either way log q(x) = log q_flow(y) - log_det_j(y).)doc")
        .def_static("cartesian", &PositionMap::cartesian, py::arg("num_particles"), py::arg("slots"))
        .def_static("all_cartesian", &PositionMap::allCartesian, py::arg("num_particles"))
        .def_static("internal", [](coords::InternalCoordinates coordinates, const py::object& conditionColumns) {
            std::vector<PositionMap::ConditionColumn> columns;
            if (!conditionColumns.is_none())
                for (const auto& pair : py::cast<std::vector<std::pair<int, int>>>(conditionColumns))
                    columns.push_back({pair.first, pair.second});
            return PositionMap::internal(std::move(coordinates), std::move(columns));
        }, py::arg("internal_coordinates"), py::arg("condition_columns") = py::none())
        .def_static("from_json", [](const py::object& config) { return PositionMap::fromJson(pyToJson(config, "config")); },
                    py::arg("config"))
        .def("to_json", [](const PositionMap& map) { return jsonToPy(map.toJson()); })
        .def_property_readonly("type", [](const PositionMap& map) {
            return map.getType() == PositionMap::Type::Cartesian ? "cartesian" : "internal";
        })
        .def_property_readonly("dimension", &PositionMap::getDimension)
        .def_property_readonly("num_particles", &PositionMap::getNumParticles)
        .def_property_readonly("circular", &PositionMap::getCircular)
        .def_property_readonly("condition_columns", [](const PositionMap& map) {
            std::vector<std::pair<int, int>> columns;
            for (const auto& c : map.getConditionColumns())
                columns.emplace_back(c.column, c.condition);
            return columns;
        }, "[(column, condition), ...] of a conditional internal map (empty otherwise)")
        .def("to_positions", [](const PositionMap& map, Array y, Array templatePositions, const py::object& condition) {
            y = outputsFrom(y, map.getDimension());
            templatePositions = positionsFrom(templatePositions, map.getNumParticles(), "template");
            if (templatePositions.shape(0) != 1)
                throw Error("template: expected one configuration of shape (" + std::to_string(map.getNumParticles()) + ", 3)");
            const int n = static_cast<int>(y.shape(0));
            py::array_t<double> positions({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(map.getNumParticles()),
                                           static_cast<py::ssize_t>(3)});
            py::array_t<double> logDetJ(n);
            const std::vector<double> rows = conditionRows(condition, map, n);
            {
                py::gil_scoped_release release;
                map.toPositions(n, y.data(), templatePositions.data(), positions.mutable_data(), logDetJ.mutable_data(),
                                rows.empty() ? nullptr : rows.data());
            }
            return py::make_tuple(positions, logDetJ);
        }, py::arg("y"), py::arg("template"), py::arg("condition") = py::none(),
             "y (n, dimension) -> (positions (n, num_particles, 3), log_det_j (n,)); a conditional map needs "
             "condition (n, values) or (values,)")
        .def("from_positions", [](const PositionMap& map, Array x, bool withCondition) {
            x = positionsFrom(x, map.getNumParticles(), "positions");
            const int n = static_cast<int>(x.shape(0));
            py::array_t<double> y({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(map.getDimension())});
            py::array_t<double> logDetJ(n);
            py::array_t<double> own({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(map.getConditionColumns().size())});
            {
                py::gil_scoped_release release;
                map.fromPositions(n, x.data(), y.mutable_data(), logDetJ.mutable_data(), own.mutable_data());
            }
            if (withCondition)
                return py::tuple(py::make_tuple(y, logDetJ, own));
            return py::tuple(py::make_tuple(y, logDetJ));
        }, py::arg("positions"), py::arg("with_condition") = false,
             "positions (n, num_particles, 3) -> (y (n, dimension), log_det_j (n,)), and with with_condition the "
             "dihedral of each condition column (n, columns), rad in [-pi, pi)");

    m.def("encode_boltzmann_generator", [](const flows::Flow& flow, const PositionMap& positions, const py::object& info) {
        return toBytes(io::encodeBoltzmannGenerator(flow, positions, info.is_none() ? nlohmann::json::object() : pyToJson(info, "info")));
    }, py::arg("flow"), py::arg("positions"), py::arg("info") = py::none(),
          "The bytes of a 'boltzmann_generator' model file (flow + position map) for BoltzmannGeneratorIntegrator.");
    m.def("decode_boltzmann_generator", [](const py::bytes& bytes) {
        io::DecodedBoltzmannGenerator decoded = io::decodeBoltzmannGenerator(std::string(bytes), "model bytes");
        return py::make_tuple(std::move(decoded.flow), *decoded.positions, jsonToPy(decoded.info));
    }, py::arg("model_bytes"), "(Flow, PositionMap, info) of a 'boltzmann_generator' model file.");
}
