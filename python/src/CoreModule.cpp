// pybind11 module `openmmcgflow._core`: numpy in, numpy out. Models cross into the OpenMM
// half (the SWIG module) only as model-file bytes, never as shared C++ objects.
#include "Bindings.h"
#include "cgflow/Error.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "OpenMM-CGFlow numerical core: MLP ensembles, normalizing flows, model files, safetensors, energy targets (numpy in and out).";
    py::register_exception<cgflow::Error>(m, "CGFlowError", PyExc_ValueError);
    bindModels(m);
    bindEnergyTarget(m);
    bindCoordinates(m);
    bindFlows(m);
    bindBoltzmannGenerator(m);
    bindStats(m);
    bindDataFree(m);
    bindPMF(m);
}
