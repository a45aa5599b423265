#ifndef CGFLOW_PYTHON_BINDINGS_H_
#define CGFLOW_PYTHON_BINDINGS_H_

#include <pybind11/pybind11.h>

// One binding function per area of the _core module; CoreModule.cpp assembles them.
void bindModels(pybind11::module_& m);
void bindEnergyTarget(pybind11::module_& m);
void bindCoordinates(pybind11::module_& m);

#endif
