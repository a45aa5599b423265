#ifndef CGFLOW_PYTHON_BINDINGS_H_
#define CGFLOW_PYTHON_BINDINGS_H_

#include <nlohmann/json.hpp>
#include <pybind11/pybind11.h>

#include <string>

// One binding function per area of the _core module; CoreModule.cpp assembles them.
void bindModels(pybind11::module_& m);
void bindEnergyTarget(pybind11::module_& m);
void bindCoordinates(pybind11::module_& m);
void bindFlows(pybind11::module_& m);
void bindBoltzmannGenerator(pybind11::module_& m);
void bindStats(pybind11::module_& m);
void bindDataFree(pybind11::module_& m);

// Shared conversions. JSON crosses through Python's json module so that any dict of plain
// values (including numpy scalars converted by the caller) maps onto nlohmann::json exactly.
inline pybind11::bytes toBytes(const std::string& s) {
    return pybind11::bytes(s.data(), s.size());
}

inline nlohmann::json pyToJson(const pybind11::handle& obj) {
    pybind11::module_ json = pybind11::module_::import("json");
    return nlohmann::json::parse(pybind11::str(json.attr("dumps")(obj)).cast<std::string>());
}

inline pybind11::object jsonToPy(const nlohmann::json& j) {
    pybind11::module_ json = pybind11::module_::import("json");
    return json.attr("loads")(j.dump());
}

#endif
