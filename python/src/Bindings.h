#ifndef CGFLOW_PYTHON_BINDINGS_H_
#define CGFLOW_PYTHON_BINDINGS_H_

#include "cgflow/Error.h"

#include <nlohmann/json.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
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

/** The Python error's message (without its type), for an error that names the argument. */
inline std::string pyJsonErrorMessage(const pybind11::error_already_set& error) {
    try {
        return pybind11::str(error.value()).cast<std::string>();
    } catch (...) {
        return error.what();
    }
}

/**
 * Where in obj json.dumps fails: the path of the first dict value or list entry that cannot be
 * written ("['bound']", "['slow']['hidden']", "[2]"; empty for obj itself), and why.
 */
inline std::string locatePyJsonProblem(const pybind11::handle& obj, const pybind11::object& dumps, std::string& why) {
    namespace py = pybind11;
    auto fails = [&](const py::handle& value) {
        try {
            dumps(value, py::arg("allow_nan") = false);
            return false;
        } catch (py::error_already_set& error) {
            why = pyJsonErrorMessage(error);
            return true;
        }
    };
    if (py::isinstance<py::dict>(obj)) {
        for (auto item : py::reinterpret_borrow<py::dict>(obj))
            if (fails(item.second))
                return "[" + py::repr(item.first).cast<std::string>() + "]" + locatePyJsonProblem(item.second, dumps, why);
    }
    else if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
        size_t index = 0;
        for (auto value : obj) {
            if (fails(value))
                return "[" + std::to_string(index) + "]" + locatePyJsonProblem(value, dumps, why);
            index++;
        }
    }
    else if (py::isinstance<py::float_>(obj)) {
        // allow_nan=False says only "Out of range float values are not JSON compliant".
        why = py::repr(obj).cast<std::string>() + " is not a finite number (JSON has no NaN or infinity)";
    }
    else
        fails(obj);
    return "";
}

/**
 * A dict (or any JSON-like value) as JSON, through Python's json module. What JSON cannot hold (NaN,
 * infinity, an object json cannot write) is a cgflow::Error naming the argument and the key:
 * "config['bound']: nan is not a finite number (JSON has no NaN or infinity)".
 */
inline nlohmann::json pyToJson(const pybind11::handle& obj, const char* name) {
    namespace py = pybind11;
    py::object dumps = py::module_::import("json").attr("dumps");
    std::string text;
    try {
        text = py::str(dumps(obj, py::arg("allow_nan") = false)).cast<std::string>();
    } catch (py::error_already_set& error) {
        std::string why = pyJsonErrorMessage(error);
        const std::string path = locatePyJsonProblem(obj, dumps, why);
        throw cgflow::Error(std::string(name) + path + ": " + why);
    }
    return nlohmann::json::parse(text);
}

inline pybind11::object jsonToPy(const nlohmann::json& j) {
    pybind11::module_ json = pybind11::module_::import("json");
    return json.attr("loads")(j.dump());
}

/** Error "parameters[i] is not finite: nan" for the first non-finite entry of a parameter vector. */
inline void checkFiniteParameters(const double* values, size_t count, const char* name = "parameters") {
    for (size_t i = 0; i < count; i++)
        if (!std::isfinite(values[i]))
            throw cgflow::Error(std::string(name) + "[" + std::to_string(i) + "] is not finite: " +
                                std::to_string(values[i]));
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
