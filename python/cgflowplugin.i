// SWIG interface for the OpenMM-facing classes. Built against OpenMM's own SWIG headers so
// that PMFForce is an openmm.Force and `system.addForce(force)` works with openmm's objects.
%module(package="openmmcgflow") plugin

%import(module="openmm") "swig/OpenMMSwigHeaders.i"
%include "swig/typemaps.i"
%include <std_string.i>

%{
#include "BoltzmannGeneratorIntegrator.h"
#include "PMFForce.h"
#include "OpenMM.h"
#include "OpenMMAmoeba.h"
#include "OpenMMDrude.h"
#include "openmm/RPMDIntegrator.h"
#include "openmm/RPMDMonteCarloBarostat.h"
#include <vector>
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

namespace CGFlow {

class PMFForce : public OpenMM::Force {
public:
    enum FeatureType { Distance = 0, Angle = 1, Dihedral = 2, Coordinate = 3 };
    PMFForce();
    PMFForce(const std::string& modelFile);
    void setModelFile(const std::string& path);
    void setModelBytes(const std::string& modelBytes);
    const std::string& getModelBytes() const;
    bool hasModel() const;
    int getModelInputSize() const;
    int getEnsembleSize() const;
    int addDistance(int particle1, int particle2);
    int addAngle(int particle1, int particle2, int particle3);
    int addDihedral(int particle1, int particle2, int particle3, int particle4);
    int addCoordinate(int particle, int axis, double period = 0.0);
    int getNumFeatures() const;
    int getNumFeatureInputs() const;
    FeatureType getFeatureType(int index) const;
    std::vector<int> getFeatureParticles(int index) const;
    int getFeatureAxis(int index) const;
    double getFeaturePeriod(int index) const;
    void setFeatureParticles(int index, const std::vector<int>& particles);
    void setUsesPeriodicBoundaryConditions(bool periodic);
    bool usesPeriodicBoundaryConditions() const;
    void updateParametersInContext(OpenMM::Context& context);
    std::vector<double> getEnsembleEnergies(OpenMM::Context& context) const;
    double getEnsembleStd(OpenMM::Context& context) const;

    %extend {
        static CGFlow::PMFForce& cast(OpenMM::Force& force) {
            return dynamic_cast<CGFlow::PMFForce&>(force);
        }
        static bool isinstance(OpenMM::Force& force) {
            return dynamic_cast<CGFlow::PMFForce*>(&force) != NULL;
        }
    }
};


class BoltzmannGeneratorIntegrator : public OpenMM::Integrator {
public:
    enum Mode { Importance = 0, Metropolis = 1 };
    BoltzmannGeneratorIntegrator(double temperature, Mode mode = Metropolis);
    BoltzmannGeneratorIntegrator(const std::string& modelFile, double temperature, Mode mode = Metropolis);
    void setModelFile(const std::string& path);
    void setModelBytes(const std::string& modelBytes);
    const std::string& getModelBytes() const;
    bool hasModel() const;
    int getModelNumParticles() const;
    int getModelDimension() const;
    int getConditionDimension() const;
    double getTemperature() const;
    void setTemperature(double temperature);
    Mode getMode() const;
    void setMode(Mode mode);
    int getBlockSize() const;
    void setBlockSize(int size);
    int getRandomNumberSeed() const;
    void setRandomNumberSeed(int seed);
    std::vector<double> getConditionVector() const;
    void setConditionVector(const std::vector<double>& values);
    bool getRedrawVelocities() const;
    void setRedrawVelocities(bool redraw);
    void step(int steps);
    double getLastLogQ() const;
    double getLastEnergy() const;
    double getLastLogWeight() const;
    bool getLastAccepted() const;
    long long getNumProposals() const;
    long long getNumAccepted() const;
    double getAcceptanceRate() const;
    long long getNumNonFinite() const;
    double getEffectiveSampleSize() const;
    double getEffectiveSampleFraction() const;
    double getLogZ() const;
    double getLogZError() const;
    double getFlowSeconds() const;
    double getEnergySeconds() const;
    void resetStatistics();
    void evaluateProposals(int n);
    std::vector<double> getBatchPositions() const;
    std::vector<double> getBatchLogQ() const;
    std::vector<double> getBatchEnergies() const;
    std::vector<double> getBatchLogWeights() const;

    %extend {
        static CGFlow::BoltzmannGeneratorIntegrator& cast(OpenMM::Integrator& integrator) {
            return dynamic_cast<CGFlow::BoltzmannGeneratorIntegrator&>(integrator);
        }
        static bool isinstance(OpenMM::Integrator& integrator) {
            return dynamic_cast<CGFlow::BoltzmannGeneratorIntegrator*>(&integrator) != NULL;
        }
    }
};

}
