// SWIG interface for the OpenMM-facing classes. Built against OpenMM's own SWIG headers so
// that PMFForce is an openmm.Force and `system.addForce(force)` works with openmm's objects.
%module(package="openmmcgflow") plugin

%import(module="openmm") "swig/OpenMMSwigHeaders.i"
%include "swig/typemaps.i"
%include <std_string.i>

%{
#include "BoltzmannGeneratorIntegrator.h"
#include "CGMonteCarloIntegrator.h"
#include "PMFForce.h"
#include "OpenMM.h"
#include "OpenMMAmoeba.h"
#include "OpenMMDrude.h"
#include "openmm/RPMDIntegrator.h"
#include "openmm/RPMDMonteCarloBarostat.h"
#include <vector>
#include <string>
#include <typeinfo>
#if defined(__GNUG__)
#include <cxxabi.h>
#include <cstdlib>
#endif

// The class of a polymorphic object, readable ("OpenMM::HarmonicBondForce"), for the errors of cast().
static std::string cgflowClassName(const std::type_info& type) {
    std::string name = type.name();
#if defined(__GNUG__)
    int status = 0;
    char* readable = abi::__cxa_demangle(name.c_str(), NULL, NULL, &status);
    if (status == 0 && readable != NULL)
        name = readable;
    std::free(readable);
#endif
    return name;
}
%}

// C++ exceptions become openmm.OpenMMException, as for OpenMM's own classes.
%exception {
    try {
        $action
    } catch (std::exception& e) {
        PyObject* module = PyImport_ImportModule("openmm");
        PyObject* type = module ? PyObject_GetAttrString(module, "OpenMMException") : NULL;
        PyErr_Clear();
        PyErr_SetString(type ? type : PyExc_Exception, e.what());
        Py_XDECREF(type);
        Py_XDECREF(module);
        SWIG_fail;
    }
}

// Model files are binary: bytes in, bytes out.
%typemap(in) const std::string& modelBytes (std::string temp) {
    char* data = NULL;
    Py_ssize_t length = 0;
    if (!PyBytes_Check($input) || PyBytes_AsStringAndSize($input, &data, &length) != 0)
        SWIG_exception_fail(SWIG_TypeError, "modelBytes must be bytes (the contents of a model file)");
    temp.assign(data, length);
    $1 = &temp;
}
%typemap(freearg) const std::string& modelBytes ""
%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const std::string& modelBytes {
    $1 = PyBytes_Check($input) ? 1 : 0;
}
%typemap(out) const std::string& getModelBytes {
    $result = PyBytes_FromStringAndSize($1->data(), $1->size());
}

%typemap(out) std::vector<int> {
    $result = PyTuple_New($1.size());
    for (size_t i = 0; i < $1.size(); i++)
        PyTuple_SET_ITEM($result, i, PyLong_FromLong($1[i]));
}
%typemap(out) std::vector<double> {
    $result = PyList_New($1.size());
    for (size_t i = 0; i < $1.size(); i++)
        PyList_SET_ITEM($result, i, PyFloat_FromDouble($1[i]));
}
%typemap(out) const std::vector<double>& {
    $result = PyList_New($1->size());
    for (size_t i = 0; i < $1->size(); i++)
        PyList_SET_ITEM($result, i, PyFloat_FromDouble((*$1)[i]));
}
%typemap(in) const std::vector<double>& values (std::vector<double> temp) {
    PyObject* seq = PySequence_Fast($input, "values must be a sequence of numbers");
    if (seq == NULL)
        SWIG_fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        double value = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (value == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            SWIG_exception_fail(SWIG_TypeError, "values must be a sequence of numbers");
        }
        temp.push_back(value);
    }
    Py_DECREF(seq);
    $1 = &temp;
}
%typemap(typecheck, precedence=SWIG_TYPECHECK_POINTER) const std::vector<double>& values {
    $1 = PySequence_Check($input) ? 1 : 0;
}

%typemap(in) const std::vector<int>& particles (std::vector<int> temp) {
    PyObject* seq = PySequence_Fast($input, "particles must be a sequence of particle indices");
    if (seq == NULL)
        SWIG_fail;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        long value = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (value == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            SWIG_exception_fail(SWIG_TypeError, "particles must be a sequence of integers");
        }
        temp.push_back((int) value);
    }
    Py_DECREF(seq);
    $1 = &temp;
}

// The Python types that the typemaps above produce, for the ":type" and ":rtype" lines of the
// docstrings that -doxygen writes (SWIG would otherwise name the C++ types).
%typemap(doctype) const std::string& modelBytes "bytes"
%typemap(doctype) const std::string& getModelBytes "bytes"
%typemap(doctype) std::vector<int> "tuple of int"
%typemap(doctype) std::vector<double>, const std::vector<double>& "list of float"
%typemap(doctype) const std::vector<double>& values "sequence of float"
%typemap(doctype) const std::vector<int>& particles "sequence of int"

// The classes are wrapped from their public headers, so that their Doxygen comments are the one
// copy of the documentation: SWIG's -doxygen option (python/CMakeLists.txt) turns them into the
// Python docstrings that help() shows. What is not part of the Python API is ignored here: methods
// that expose core (cgflow::) types or exist for the kernels and the serialization proxies.
// Protected and private members are never wrapped.
%ignore CGFlowPlugin::PMFForce::validate;
%ignore CGFlowPlugin::PMFForce::getEnsemble;
%ignore CGFlowPlugin::PMFForce::FeatureInfo;
%ignore CGFlowPlugin::PMFForce::getFeatures;
%ignore CGFlowPlugin::BoltzmannGeneratorIntegrator::getModel;

// cast() hands back a second, non-owning Python object for the same C++ object. The view keeps its
// argument alive: that may be the owner (what XmlSerializer.deserialize returned), and
// `x = PMFForce.cast(x)` would otherwise delete the C++ object under the view (use after free, found
// by scripts/sanitize.sh --python).
%pythonappend CGFlowPlugin::PMFForce::cast %{
    val._cgflow_cast_of = force
%}
%pythonappend CGFlowPlugin::BoltzmannGeneratorIntegrator::cast %{
    val._cgflow_cast_of = integrator
%}
%pythonappend CGFlowPlugin::CGMonteCarloIntegrator::cast %{
    val._cgflow_cast_of = integrator
%}

%extend CGFlowPlugin::PMFForce {
    /**
     * Get a Force as a PMFForce, for example one returned by System.getForce(), which SWIG hands
     * back as the base class openmm.Force.
     *
     * @param force  a Force that is a PMFForce (any other Force throws an OpenMMException)
     * @return the same force as a PMFForce
     */
    static CGFlowPlugin::PMFForce& cast(OpenMM::Force& force) {
        CGFlowPlugin::PMFForce* result = dynamic_cast<CGFlowPlugin::PMFForce*>(&force);
        if (result == NULL)
            throw OpenMM::OpenMMException("force: " + cgflowClassName(typeid(force)) + " is not a PMFForce");
        return *result;
    }
    /**
     * Get whether a Force is a PMFForce.
     *
     * @param force  the Force to test
     * @return true if force is a PMFForce (cast() will succeed)
     */
    static bool isinstance(OpenMM::Force& force) {
        return dynamic_cast<CGFlowPlugin::PMFForce*>(&force) != NULL;
    }
}

%extend CGFlowPlugin::BoltzmannGeneratorIntegrator {
    /**
     * Get an Integrator as a BoltzmannGeneratorIntegrator, for example one returned by
     * Context.getIntegrator() or CompoundIntegrator.getIntegrator(), which SWIG hands back as the
     * base class openmm.Integrator.
     *
     * @param integrator  an Integrator that is a BoltzmannGeneratorIntegrator (any other Integrator
     *                    throws an OpenMMException)
     * @return the same integrator as a BoltzmannGeneratorIntegrator
     */
    static CGFlowPlugin::BoltzmannGeneratorIntegrator& cast(OpenMM::Integrator& integrator) {
        CGFlowPlugin::BoltzmannGeneratorIntegrator* result =
            dynamic_cast<CGFlowPlugin::BoltzmannGeneratorIntegrator*>(&integrator);
        if (result == NULL)
            throw OpenMM::OpenMMException("integrator: " + cgflowClassName(typeid(integrator)) +
                                          " is not a BoltzmannGeneratorIntegrator");
        return *result;
    }
    /**
     * Get whether an Integrator is a BoltzmannGeneratorIntegrator.
     *
     * @param integrator  the Integrator to test
     * @return true if integrator is a BoltzmannGeneratorIntegrator (cast() will succeed)
     */
    static bool isinstance(OpenMM::Integrator& integrator) {
        return dynamic_cast<CGFlowPlugin::BoltzmannGeneratorIntegrator*>(&integrator) != NULL;
    }
}

%extend CGFlowPlugin::CGMonteCarloIntegrator {
    /**
     * Get an Integrator as a CGMonteCarloIntegrator, for example one returned by
     * Context.getIntegrator() or CompoundIntegrator.getIntegrator(), which SWIG hands back as the
     * base class openmm.Integrator.
     *
     * @param integrator  an Integrator that is a CGMonteCarloIntegrator (any other Integrator
     *                    throws an OpenMMException)
     * @return the same integrator as a CGMonteCarloIntegrator
     */
    static CGFlowPlugin::CGMonteCarloIntegrator& cast(OpenMM::Integrator& integrator) {
        CGFlowPlugin::CGMonteCarloIntegrator* result =
            dynamic_cast<CGFlowPlugin::CGMonteCarloIntegrator*>(&integrator);
        if (result == NULL)
            throw OpenMM::OpenMMException("integrator: " + cgflowClassName(typeid(integrator)) +
                                          " is not a CGMonteCarloIntegrator");
        return *result;
    }
    /**
     * Get whether an Integrator is a CGMonteCarloIntegrator.
     *
     * @param integrator  the Integrator to test
     * @return true if integrator is a CGMonteCarloIntegrator (cast() will succeed)
     */
    static bool isinstance(OpenMM::Integrator& integrator) {
        return dynamic_cast<CGFlowPlugin::CGMonteCarloIntegrator*>(&integrator) != NULL;
    }
}

%include "PMFForce.h"
%include "BoltzmannGeneratorIntegrator.h"
%include "CGMonteCarloIntegrator.h"
