// _core bindings for PMFTrainer: fitting the MLPEnsemble a PMFForce evaluates to forces (force
// matching) or to free-energy labels. Samples cross as numpy arrays with one sample per leading
// index, (n, N, 3) positions and forces or (n, d) inputs, whose C-order memory is exactly the
// core's column-per-sample layout (3N x n, d x n), so nothing is copied on the way in.
#include "Bindings.h"

#include "cgflow/Error.h"
#include "cgflow/coords/Features.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "cgflow/train/PMFTrainer.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <optional>

namespace py = pybind11;
using namespace cgflow;
using coords::Feature;
using coords::FeatureType;
using train::PMFTrainer;

namespace {

using InputArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using ColumnMap = Eigen::Map<const Eigen::MatrixXd>;

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string reprOf(const py::handle& object) {
    return py::repr(object).cast<std::string>();
}

// ("distance", i, j), ("angle", i, j, k), ("dihedral", i, j, k, l), ("coordinate", i, axis[, period]).
Feature featureFromTuple(const py::handle& item, const std::string& where) {
    if (!py::isinstance<py::sequence>(item) || py::isinstance<py::str>(item) || py::len(item) < 1)
        throw Error(where + ": expected a tuple such as (\"distance\", i, j), got " + reprOf(item));
    py::sequence entries = py::reinterpret_borrow<py::sequence>(item);
    const size_t length = py::len(entries);
    try {
        const std::string name = lowercase(entries[0].cast<std::string>());
        Feature feature;
        if (name == "distance")
            feature.type = FeatureType::Distance;
        else if (name == "angle")
            feature.type = FeatureType::Angle;
        else if (name == "dihedral")
            feature.type = FeatureType::Dihedral;
        else if (name == "coordinate")
            feature.type = FeatureType::Coordinate;
        else
            throw Error(where + ": unknown feature kind '" + name + "'; expected distance, angle, dihedral or coordinate");
        if (feature.type == FeatureType::Coordinate) {
            if (length != 3 && length != 4)
                throw Error(where + ": a coordinate is (\"coordinate\", particle, axis) or (\"coordinate\", particle, "
                            "axis, period), got " + reprOf(item));
            feature.particles = {entries[1].cast<int>()};
            feature.axis = entries[2].cast<int>();
            feature.period = length == 4 ? entries[3].cast<double>() : 0.0;
            return feature;
        }
        const size_t expected = 1 + static_cast<size_t>(coords::numParticlesOf(feature.type));
        if (length != expected)
            throw Error(where + ": a " + name + " takes " + std::to_string(expected - 1) + " particles, got " + reprOf(item));
        for (size_t k = 1; k < length; k++)
            feature.particles.push_back(entries[k].cast<int>());
        return feature;
    } catch (const py::cast_error&) {
        throw Error(where + ": expected a kind name and integer particle indices (a float period for a "
                    "coordinate), got " + reprOf(item));
    }
}

// The features of a PMFForce (read through its getters: the two modules share no C++ objects), or
// a list of tuples; None is no features (labels only).
std::vector<Feature> featuresFromPython(const py::object& features) {
    std::vector<Feature> out;
    if (features.is_none())
        return out;
    if (py::hasattr(features, "getNumFeatures") && py::hasattr(features, "getFeatureType")) {
        const int count = features.attr("getNumFeatures")().cast<int>();
        for (int i = 0; i < count; i++) {
            Feature feature;
            const int type = features.attr("getFeatureType")(i).cast<int>();
            if (type < 0 || type > 3)
                throw Error("features: the PMFForce's feature " + std::to_string(i) + " has an unknown type " +
                            std::to_string(type));
            feature.type = static_cast<FeatureType>(type); // PMFForce::FeatureType has the core's order
            feature.particles = features.attr("getFeatureParticles")(i).cast<std::vector<int>>();
            feature.axis = features.attr("getFeatureAxis")(i).cast<int>();
            feature.period = features.attr("getFeaturePeriod")(i).cast<double>();
            out.push_back(std::move(feature));
        }
        return out;
    }
    if (!py::isinstance<py::sequence>(features) || py::isinstance<py::str>(features))
        throw Error("features: expected a PMFForce or a list of tuples such as (\"distance\", 0, 1), got " + reprOf(features));
    size_t index = 0;
    for (const py::handle& item : features)
        out.push_back(featureFromTuple(item, "features[" + std::to_string(index++) + "]"));
    return out;
}

py::list featuresToPython(const std::vector<Feature>& features) {
    py::list out;
    for (const Feature& f : features) {
        py::list entry;
        entry.append(coords::featureTypeName(f.type));
        for (int p : f.particles)
            entry.append(p);
        if (f.type == FeatureType::Coordinate) {
            entry.append(f.axis);
            if (f.period > 0)
                entry.append(f.period);
        }
        out.append(py::tuple(entry));
    }
    return out;
}

/** (n, N, 3) -> a (3N x n) view of the same memory. */
ColumnMap particleBatch(const InputArray& a, const char* name) {
    if (a.ndim() != 3 || a.shape(2) != 3)
        throw Error(std::string(name) + ": expected shape (n, N, 3), n samples of N particles (nm), got " +
                    std::to_string(a.ndim()) + " dimensions");
    return ColumnMap(a.data(), 3 * a.shape(1), a.shape(0));
}

coords::PeriodicBox boxFromPython(const py::object& box) {
    coords::PeriodicBox out;
    if (box.is_none())
        return out;
    InputArray vectors = box.cast<InputArray>();
    if (vectors.ndim() != 2 || vectors.shape(0) != 3 || vectors.shape(1) != 3)
        throw Error("box: expected None or the three box vectors a, b, c as the rows of a (3, 3) array (nm)");
    out.periodic = true;
    out.a = Eigen::Vector3d(vectors.at(0, 0), vectors.at(0, 1), vectors.at(0, 2));
    out.b = Eigen::Vector3d(vectors.at(1, 0), vectors.at(1, 1), vectors.at(1, 2));
    out.c = Eigen::Vector3d(vectors.at(2, 0), vectors.at(2, 1), vectors.at(2, 2));
    return out;
}

py::array_t<double> tableToNumpy(const std::vector<std::vector<double>>& rows, size_t columns) {
    py::array_t<double> out({static_cast<py::ssize_t>(rows.size()), static_cast<py::ssize_t>(columns)});
    auto view = out.mutable_unchecked<2>();
    for (size_t r = 0; r < rows.size(); r++)
        for (size_t c = 0; c < columns; c++)
            view(r, c) = rows[r][c];
    return out;
}

py::dict historyToDict(const train::PMFTrainingHistory& h) {
    const size_t members = h.bestEpoch.size();
    py::dict d;
    d["train_loss"] = tableToNumpy(h.trainLoss, members);
    d["validation_loss"] = tableToNumpy(h.validationLoss, members);
    d["learning_rate"] = py::array_t<double>(static_cast<py::ssize_t>(h.learningRate.size()), h.learningRate.data());
    d["best_epoch"] = h.bestEpoch;
    d["best_validation_loss"] =
        py::array_t<double>(static_cast<py::ssize_t>(h.bestValidationLoss.size()), h.bestValidationLoss.data());
    py::list train, validation;
    for (size_t m = 0; m < members; m++) {
        train.append(py::array_t<int>(static_cast<py::ssize_t>(h.trainIndices[m].size()), h.trainIndices[m].data()));
        validation.append(
            py::array_t<int>(static_cast<py::ssize_t>(h.validationIndices[m].size()), h.validationIndices[m].data()));
    }
    d["train_indices"] = train;
    d["validation_indices"] = validation;
    d["num_samples"] = h.numSamples;
    d["num_skipped"] = h.numSkipped;
    d["steps"] = h.stepsPerMember;
    return d;
}

py::array_t<double> doublesToNumpy(const std::vector<double>& v) {
    return py::array_t<double>(static_cast<py::ssize_t>(v.size()), v.data());
}

std::vector<int> intsFromPython(const py::handle& values) {
    return py::cast<std::vector<int>>(values);
}

std::vector<std::vector<double>> tableFromNumpy(const py::handle& table, const char* name) {
    const InputArray a = py::reinterpret_borrow<py::object>(table).cast<InputArray>();
    if (a.ndim() != 2)
        throw Error(std::string("resume state: ") + name + " must be a 2-D array (epochs, members)");
    std::vector<std::vector<double>> rows(a.shape(0), std::vector<double>(a.shape(1)));
    for (py::ssize_t r = 0; r < a.shape(0); r++)
        for (py::ssize_t c = 0; c < a.shape(1); c++)
            rows[r][c] = a.at(r, c);
    return rows;
}

// The state of a fit after an epoch, as plain Python values and arrays (what a checkpoint stores).
py::dict stateToDict(const train::PMFTrainingState& state) {
    py::dict d;
    d["epochs_done"] = state.epochsDone;
    d["num_epochs"] = state.numEpochs;
    py::list members;
    for (const train::PMFMemberState& member : state.members) {
        py::dict m;
        m["parameters"] = doublesToNumpy(member.parameters);
        m["best_parameters"] = doublesToNumpy(member.bestParameters);
        m["best_validation_loss"] = member.bestValidationLoss;
        m["best_epoch"] = member.bestEpoch;
        m["step_count"] = member.optimizer.stepCount;
        m["first_moment"] = doublesToNumpy(member.optimizer.firstMoment);
        m["second_moment"] = doublesToNumpy(member.optimizer.secondMoment);
        members.append(m);
    }
    d["members"] = members;
    d["history"] = historyToDict(state.history);
    return d;
}

train::PMFTrainingState stateFromDict(const py::dict& d) {
    for (const char* key : {"epochs_done", "num_epochs", "members", "history"})
        if (!d.contains(key))
            throw Error(std::string("resume state: the key '") + key + "' is missing");
    train::PMFTrainingState state;
    state.epochsDone = d["epochs_done"].cast<int>();
    state.numEpochs = d["num_epochs"].cast<int>();
    for (const py::handle& item : d["members"].cast<py::list>()) {
        const py::dict m = py::reinterpret_borrow<py::dict>(item);
        train::PMFMemberState member;
        member.parameters = vectorFromNumpy(m["parameters"].cast<DoubleArray>(), "parameters");
        member.bestParameters = vectorFromNumpy(m["best_parameters"].cast<DoubleArray>(), "best_parameters");
        member.bestValidationLoss = m["best_validation_loss"].cast<double>();
        member.bestEpoch = m["best_epoch"].cast<int>();
        member.optimizer.stepCount = m["step_count"].cast<int64_t>();
        member.optimizer.firstMoment = vectorFromNumpy(m["first_moment"].cast<DoubleArray>(), "first_moment");
        member.optimizer.secondMoment = vectorFromNumpy(m["second_moment"].cast<DoubleArray>(), "second_moment");
        state.members.push_back(std::move(member));
    }
    const py::dict h = d["history"].cast<py::dict>();
    state.history.trainLoss = tableFromNumpy(h["train_loss"], "train_loss");
    state.history.validationLoss = tableFromNumpy(h["validation_loss"], "validation_loss");
    for (const py::handle& indices : h["train_indices"].cast<py::list>())
        state.history.trainIndices.push_back(intsFromPython(indices));
    for (const py::handle& indices : h["validation_indices"].cast<py::list>())
        state.history.validationIndices.push_back(intsFromPython(indices));
    state.history.numSamples = h["num_samples"].cast<int>();
    state.history.numSkipped = h["num_skipped"].cast<int>();
    return state;
}

// on_epoch (a Python callable or None) as the trainer's callback: called with the GIL held and the
// state as a dict; an exception it raises ends the fit and reaches the caller.
train::PMFEpochCallback epochCallback(const py::object& onEpoch) {
    if (onEpoch.is_none())
        return {};
    return [onEpoch](const train::PMFTrainingState& state) {
        py::gil_scoped_acquire acquire;
        onEpoch(stateToDict(state));
    };
}

std::optional<train::PMFTrainingState> resumeState(const py::object& resume) {
    if (resume.is_none())
        return std::nullopt;
    return stateFromDict(resume.cast<py::dict>());
}

} // namespace

void bindPMF(py::module_& m) {
    py::class_<PMFTrainer>(m, "PMFTrainer", R"doc(
Fits the MLPEnsemble a PMFForce evaluates, in place, to forces (force matching) or to free-energy
labels; the ensemble's to_bytes() then loads straight into PMFForce.setModelBytes().

features: a PMFForce (its features are read) or a list of tuples ("distance", i, j),
("angle", i, j, k), ("dihedral", i, j, k, l), ("coordinate", i, axis[, period]), giving together
the ensemble's input size; None for labels only.
Options dict: batch_size (64), epochs (100) or steps, learning_rate (1e-3), beta1, beta2, epsilon,
weight_decay (Adam), learning_rate_decay (factor per epoch, 1), max_gradient_norm (none),
validation_fraction (0.1; each member its own random split, the best-validation parameters are
kept), bootstrap (False: ensembles only, each member on a bootstrap sample of its training set),
seed (0), threads (1; members in parallel, same results for any count).
fit_forces / fit_labels return the history: train_loss and validation_loss (epochs, members),
learning_rate (epochs,), best_epoch, best_validation_loss, train_indices, validation_indices,
num_samples, num_skipped (samples with non-finite data, left out), steps.)doc")
        .def(py::init([](nn::MLPEnsemble& ensemble, const py::object& features, const py::object& options) {
                 return std::make_unique<PMFTrainer>(
                     ensemble, featuresFromPython(features),
                     train::PMFTrainerOptions::fromJson(options.is_none() ? nlohmann::json::object() : pyToJson(options, "options")));
             }),
             py::arg("ensemble"), py::arg("features") = py::none(), py::arg("options") = py::none(),
             py::keep_alive<1, 2>())
        .def(
            "fit_forces",
            [](PMFTrainer& t, const InputArray& positions, const InputArray& forces, const py::object& box,
               const py::object& onEpoch, const py::object& resume) {
                const ColumnMap r = particleBatch(positions, "positions");
                const ColumnMap f = particleBatch(forces, "forces");
                const coords::PeriodicBox periodicBox = boxFromPython(box);
                const train::PMFEpochCallback callback = epochCallback(onEpoch);
                const std::optional<train::PMFTrainingState> state = resumeState(resume);
                train::PMFTrainingHistory history;
                {
                    py::gil_scoped_release release;
                    history = t.fitForces(r, f, periodicBox, callback, state ? &*state : nullptr);
                }
                return historyToDict(history);
            },
            py::arg("positions"), py::arg("forces"), py::arg("box") = py::none(), py::arg("on_epoch") = py::none(),
            py::arg("resume") = py::none(),
            "Force matching: positions and target forces (n, N, 3), nm and kJ/mol/nm; box: None or the "
            "box vectors as rows of a (3, 3) array (OpenMM's reduced form). on_epoch: called after every "
            "epoch with the state of the fit (a dict); resume: such a state, to continue the fit from it "
            "(bit-identical to an uninterrupted fit). Returns the history.")
        .def(
            "fit_labels",
            [](PMFTrainer& t, const InputArray& inputs, const InputArray& energies, const py::object& onEpoch,
               const py::object& resume) {
                if (inputs.ndim() != 2)
                    throw Error("inputs: expected shape (n, " + std::to_string(t.getEnsemble().getInputSize()) +
                                "), one sample of feature values per row");
                const ColumnMap x(inputs.data(), inputs.shape(1), inputs.shape(0));
                const std::vector<double> e = vectorFromNumpy(energies, "energies");
                const Eigen::Map<const Eigen::VectorXd> labels(e.data(), static_cast<Eigen::Index>(e.size()));
                const train::PMFEpochCallback callback = epochCallback(onEpoch);
                const std::optional<train::PMFTrainingState> state = resumeState(resume);
                train::PMFTrainingHistory history;
                {
                    py::gil_scoped_release release;
                    history = t.fitLabels(x, labels, callback, state ? &*state : nullptr);
                }
                return historyToDict(history);
            },
            py::arg("inputs"), py::arg("energies"), py::arg("on_epoch") = py::none(), py::arg("resume") = py::none(),
            "Labels: feature values (n, input_size) and target energies (n,), kJ/mol; on_epoch and resume as "
            "for fit_forces. Returns the history.")
        .def(
            "predict",
            [](PMFTrainer& t, const InputArray& positions, const py::object& box) {
                const ColumnMap r = particleBatch(positions, "positions");
                Eigen::VectorXd energies;
                Eigen::MatrixXd forces;
                t.predict(r, boxFromPython(box), energies, forces);
                py::array_t<double> outForces({positions.shape(0), positions.shape(1), static_cast<py::ssize_t>(3)});
                if (forces.size() > 0)  // no frames: forces.data() is null
                    std::memcpy(outForces.mutable_data(), forces.data(), sizeof(double) * forces.size());
                return py::make_tuple(py::array_t<double>(energies.size(), energies.data()), outForces);
            },
            py::arg("positions"), py::arg("box") = py::none(),
            "(energies (n,), forces (n, N, 3)): what PMFForce gives, the ensemble mean and minus its gradient.")
        .def(
            "force_matching_loss",
            [](PMFTrainer& t, int member, const InputArray& positions, const InputArray& forces, const py::object& box) {
                return t.forceMatchingLoss(member, particleBatch(positions, "positions"), particleBatch(forces, "forces"),
                                           boxFromPython(box));
            },
            py::arg("member"), py::arg("positions"), py::arg("forces"), py::arg("box") = py::none(),
            "One member's force-matching loss on all the samples given: mean of (F_pred - F)^2.")
        .def(
            "label_loss",
            [](PMFTrainer& t, int member, const InputArray& inputs, const InputArray& energies) {
                if (inputs.ndim() != 2)
                    throw Error("inputs: expected shape (n, input_size)");
                const std::vector<double> e = vectorFromNumpy(energies, "energies");
                return t.labelLoss(member, ColumnMap(inputs.data(), inputs.shape(1), inputs.shape(0)),
                                   Eigen::Map<const Eigen::VectorXd>(e.data(), static_cast<Eigen::Index>(e.size())));
            },
            py::arg("member"), py::arg("inputs"), py::arg("energies"),
            "One member's label loss on all the samples given: mean of (U - E)^2.")
        .def_property_readonly("options", [](const PMFTrainer& t) { return jsonToPy(t.getOptions().toJson()); })
        .def_property_readonly("features", [](const PMFTrainer& t) { return featuresToPython(t.getFeatures()); },
                               "The features as tuples.");
}
