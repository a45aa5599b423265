// _core bindings for EnergyTarget: batches of configurations in, energies and forces out.
#include "Bindings.h"
#include "cgflow/Error.h"
#include "cgflow/energy/EnergyTarget.h"
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

namespace py = pybind11;
using cgflow::Error;
using cgflow::energy::EnergyTarget;

namespace {

py::tuple evaluate(EnergyTarget& target, py::array_t<double, py::array::c_style | py::array::forcecast> positions,
                   bool computeForces, const std::string& phase) {
    const int n = target.getNumParticles();
    if (positions.ndim() == 2 && positions.shape(0) == n && positions.shape(1) == 3)
        positions = positions.reshape({1, n, 3});  // a single configuration
    if (positions.ndim() != 3 || positions.shape(1) != n || positions.shape(2) != 3)
        throw Error("positions: expected shape (batch, " + std::to_string(n) + ", 3) in nm");
    const int batch = (int) positions.shape(0);
    py::array_t<double> energies(batch), raw(batch);
    py::array_t<bool> finite(batch);
    py::array_t<double> forces;
    if (computeForces)
        forces = py::array_t<double>({batch, n, 3});
    std::vector<uint8_t> flags(batch);
    {
        py::gil_scoped_release release;  // the Contexts run in C++ threads
        target.evaluate(positions.data(), batch, energies.mutable_data(), computeForces ? forces.mutable_data() : nullptr,
                        flags.data(), phase, raw.mutable_data());
    }
    bool* f = finite.mutable_data();
    for (int i = 0; i < batch; i++)
        f[i] = flags[i] != 0;
    if (computeForces)
        return py::make_tuple(energies, forces, finite, raw);
    return py::make_tuple(energies, py::none(), finite, raw);
}

} // namespace

void bindEnergyTarget(py::module_& m) {
    py::class_<EnergyTarget>(m, "EnergyTarget",
        "Potential energies and forces of an OpenMM System for batches of configurations, from a pool of "
        "Contexts (one per thread). Use openmmcgflow.EnergyTarget, which accepts an openmm.System.")
        .def(py::init<const std::string&, const std::string&, int, const std::map<std::string, std::string>&, int>(),
             py::arg("system_xml"), py::arg("platform") = "Reference", py::arg("threads") = 1,
             py::arg("properties") = std::map<std::string, std::string>(), py::arg("force_groups") = -1)
        .def_property_readonly("num_particles", &EnergyTarget::getNumParticles)
        .def_property_readonly("num_threads", &EnergyTarget::getNumThreads)
        .def_property_readonly("platform", &EnergyTarget::getPlatformName)
        .def("evaluate", &evaluate, py::arg("positions"), py::arg("forces") = true, py::arg("phase") = "default",
             "positions (batch, N, 3) nm -> (energies kJ/mol, forces kJ/mol/nm or None, finite flags, raw energies).")
        .def("set_energy_regularization", &EnergyTarget::setEnergyRegularization, py::arg("e_high"), py::arg("e_max"))
        .def("clear_energy_regularization", &EnergyTarget::clearEnergyRegularization)
        .def("evaluation_count", &EnergyTarget::getEvaluationCount, py::arg("phase"))
        .def_property_readonly("total_evaluations", &EnergyTarget::getTotalEvaluationCount)
        .def_property_readonly("evaluation_counts", &EnergyTarget::getEvaluationCounts)
        .def("reset_evaluation_counts", &EnergyTarget::resetEvaluationCounts, py::arg("phase") = "");
}
