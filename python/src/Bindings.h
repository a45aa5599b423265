#ifndef CGFLOW_PYTHON_BINDINGS_H_
#define CGFLOW_PYTHON_BINDINGS_H_

#include "cgflow/Error.h"

#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

// One binding function per area of the _core module; CoreModule.cpp assembles them.
void bindModels(pybind11::module_& m);
void bindEnergyTarget(pybind11::module_& m);
void bindCoordinates(pybind11::module_& m);
void bindFlows(pybind11::module_& m);
void bindBoltzmannGenerator(pybind11::module_& m);
void bindStats(pybind11::module_& m);
void bindDataFree(pybind11::module_& m);
void bindPMF(pybind11::module_& m);

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

/** A C-ordered float64 view of any array-like (converted if needed). */
using DoubleArray = pybind11::array_t<double, pybind11::array::c_style | pybind11::array::forcecast>;

/** A 1-D array as a vector; Error naming the argument otherwise. */
inline std::vector<double> vectorFromNumpy(const DoubleArray& a, const char* name) {
    if (a.ndim() != 1)
        throw cgflow::Error(std::string(name) + ": expected a 1-D array, got " + std::to_string(a.ndim()) + " dimensions");
    return std::vector<double>(a.data(), a.data() + a.size());
}

/** None as an empty vector, else vectorFromNumpy. */
inline std::vector<double> optionalVectorFromNumpy(const pybind11::object& a, const char* name) {
    return a.is_none() ? std::vector<double>() : vectorFromNumpy(a.cast<DoubleArray>(), name);
}

#endif
