#include "cgflow/flows/RightStochasticLinear.h"

#include "cgflow/Error.h"
#include "cgflow/flows/FlowConfig.h"
#include "cgflow/io/JsonFields.h"
#include "AtomLayout.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>

namespace cgflow::flows {

namespace {

std::string numberString(double value) {
    std::ostringstream s;
    s.precision(17);
    s << value;
    return s.str();
}


// data (k M x n, atom-major per column) <-> atoms (M x k n): atoms(j, k s + c) = data(k j + c, s), so one
// matrix product with A (M x M) maps every component of every sample at once.
void gatherAtoms(const Eigen::Ref<Eigen::MatrixXd>& data, int k, int M, Eigen::MatrixXd& atoms) {
    const Eigen::Index n = data.cols();
    atoms.resize(M, k * n);
    for (Eigen::Index s = 0; s < n; s++)
        atoms.middleCols(k * s, k) = Eigen::Map<const Eigen::MatrixXd>(data.col(s).data(), k, M).transpose();
}

void scatterAtoms(const Eigen::MatrixXd& atoms, int k, int M, Eigen::Ref<Eigen::MatrixXd> data) {
    for (Eigen::Index s = 0; s < data.cols(); s++)
        Eigen::Map<Eigen::MatrixXd>(data.col(s).data(), k, M) = atoms.middleCols(k * s, k).transpose();
}

// ---- Workspaces ----

struct RightStochasticWorkspace : BijectionWorkspace {
    Eigen::MatrixXd atoms;     // the batch in the atoms layout (M x k n)
    Eigen::MatrixXd result;    // the map applied to it
    Eigen::MatrixXd saved;     // Forward: its input; Inverse: its output (what dL/dA needs)
    Eigen::MatrixXd gradAtoms; // dL/d(output) in the atoms layout
    Eigen::MatrixXd gradIn;    // dL/d(input) in the atoms layout
    Eigen::MatrixXd gradMatrix;
    Direction direction = Direction::Forward;
    Eigen::Index savedBatch = -1;
    const RightStochasticLinear* owner = nullptr;
};

} // namespace

// ============================== RightStochasticLinear ==============================

RightStochasticLinear::RightStochasticLinear(std::vector<bool> inputCircularIn, const RightStochasticOptions& optionsIn)
    : Bijection(std::move(inputCircularIn)), componentsPerAtom(optionsIn.componentsPerAtom), numAtoms(0),
      options(optionsIn) {
    numAtoms = atomCount("RightStochasticLinear", getInputCircular().size(), componentsPerAtom);
    std::string circularDims;
    for (size_t d = 0; d < getInputCircular().size(); d++)
        if (getInputCircular()[d])
            circularDims += (circularDims.empty() ? "" : ", ") + std::to_string(d);
    if (!circularDims.empty())
        throw Error("RightStochasticLinear: dimension(s) " + circularDims +
                    " are circular, but this linear map of atom positions needs real (Cartesian) dimensions only");
    const int M = numAtoms;
    if (options.initialLogits.size() > 0) {
        if (options.initialLogits.rows() != M || options.initialLogits.cols() != M)
            throw Error("RightStochasticLinear: initialLogits is " +
                        shapeString(options.initialLogits.rows(), options.initialLogits.cols()) + ", expected " +
                        shapeString(M, M) + " (numAtoms x numAtoms)");
        if (!options.initialLogits.allFinite())
            throw Error("RightStochasticLinear: initialLogits must all be finite");
    } else if (M > 1) {
        const double w = options.initialDiagonalWeight;
        if (!(w > 1.0 / M && w < 1.0))
            throw Error("RightStochasticLinear: initialDiagonalWeight must lie in (1/numAtoms, 1) = (" +
                        numberString(1.0 / M) + ", 1) so that det A > 0, got " + numberString(w));
    }
    if (!(options.initialLogitNoise >= 0.0) || !std::isfinite(options.initialLogitNoise))
        throw Error("RightStochasticLinear: initialLogitNoise must be finite and >= 0, got " +
                    numberString(options.initialLogitNoise));
    // numAtoms x numAtoms logits, counted before they are allocated (ParameterBudget).
    ParameterBudget::charge(static_cast<double>(M) * M, "RightStochasticLinear (" + std::to_string(M) + " atoms)");
    setLogits(startLogits()); // the noise of initializeParameters() is left out here
}

std::unique_ptr<RightStochasticLinear> RightStochasticLinear::create(int numAtoms,
                                                                    const RightStochasticOptions& options) {
    if (numAtoms < 1)
        throw Error("RightStochasticLinear: numAtoms must be >= 1, got " + std::to_string(numAtoms));
    if (options.componentsPerAtom < 1)
        throw Error("RightStochasticLinear: componentsPerAtom must be >= 1, got " +
                    std::to_string(options.componentsPerAtom));
    return std::make_unique<RightStochasticLinear>(
        std::vector<bool>(static_cast<size_t>(numAtoms) * options.componentsPerAtom, false), options);
}

const Eigen::MatrixXd& RightStochasticLinear::getInverseMatrix() const {
    checkInvertible("getInverseMatrix");
    return inverse;
}

void RightStochasticLinear::checkInvertible(const char* what) const {
    if (detSign == 0 || !std::isfinite(logAbsDet))
        throw Error(std::string("RightStochasticLinear::") + what +
                    ": the matrix A = softmax(logits) is numerically singular (log|det A| = " + numberString(logAbsDet) +
                    "); the map is not invertible at these parameters");
}

void RightStochasticLinear::setLogits(const Eigen::MatrixXd& newLogits) {
    if (newLogits.rows() != numAtoms || newLogits.cols() != numAtoms)
        throw Error("RightStochasticLinear::setLogits: got " + shapeString(newLogits.rows(), newLogits.cols()) +
                    ", expected " + shapeString(numAtoms, numAtoms));
    for (Eigen::Index i = 0; i < numAtoms; i++)
        for (Eigen::Index j = 0; j < numAtoms; j++)
            if (!std::isfinite(newLogits(i, j)))
                throw Error("RightStochasticLinear: logit (" + std::to_string(i) + ", " + std::to_string(j) +
                            ") is not finite: " + numberString(newLogits(i, j)));
    logits = newLogits;
    refresh();
}

void RightStochasticLinear::refresh() {
    const int M = numAtoms;
    matrix.resize(M, M);
    for (int i = 0; i < M; i++) {
        const double top = logits.row(i).maxCoeff();
        matrix.row(i) = (logits.row(i).array() - top).exp().matrix();
        matrix.row(i) /= matrix.row(i).sum();
    }
    lu.compute(matrix);
    const Eigen::MatrixXd& packed = lu.matrixLU();
    logAbsDet = 0.0;
    detSign = static_cast<int>(std::lround(lu.permutationP().determinant()));
    for (int i = 0; i < M; i++) {
        const double pivot = packed(i, i);
        if (pivot == 0.0 || !std::isfinite(pivot)) {
            detSign = 0;
            logAbsDet = -std::numeric_limits<double>::infinity();
            break;
        }
        logAbsDet += std::log(std::abs(pivot));
        if (pivot < 0)
            detSign = -detSign;
    }
    if (detSign != 0 && std::isfinite(logAbsDet))
        inverse = lu.inverse();
    else
        inverse.resize(0, 0);
}

nlohmann::json RightStochasticLinear::getConfig() const {
    nlohmann::json config = {{"type", getTypeName()},
                             {"num_atoms", numAtoms},
                             {"components_per_atom", componentsPerAtom},
                             {"initial_diagonal_weight", options.initialDiagonalWeight},
                             {"initial_logit_noise", options.initialLogitNoise}};
    if (options.initialLogits.size() > 0) {
        std::vector<double> flat;
        for (Eigen::Index i = 0; i < numAtoms; i++)
            for (Eigen::Index j = 0; j < numAtoms; j++)
                flat.push_back(options.initialLogits(i, j));
        config["initial_logits"] = flat;
    }
    return config;
}

std::unique_ptr<RightStochasticLinear> RightStochasticLinear::fromConfig(const nlohmann::json& config,
                                                                        std::vector<bool> inputCircular) {
    const char* type = "right_stochastic_linear";
    const std::string where = std::string(type) + " config";
    checkLayerConfig(config, type,
                     {"num_atoms", "components_per_atom", "initial_diagonal_weight", "initial_logit_noise", "initial_logits"});
    RightStochasticOptions options;
    const int M = io::requireInt(config, "num_atoms", where, 1);
    options.componentsPerAtom = io::readInt(config, "components_per_atom", options.componentsPerAtom, where, 1);
    if (static_cast<size_t>(M) * options.componentsPerAtom != inputCircular.size())
        throw Error(std::string(type) + " config: num_atoms * components_per_atom = " + std::to_string(M) + " * " +
                    std::to_string(options.componentsPerAtom) + " does not match the layer's input dimension " +
                    std::to_string(inputCircular.size()));
    options.initialDiagonalWeight = io::readNumber(config, "initial_diagonal_weight", options.initialDiagonalWeight, where);
    options.initialLogitNoise = io::readNumber(config, "initial_logit_noise", options.initialLogitNoise, where);
    if (options.initialLogitNoise < 0)
        throw Error(std::string(type) + " config: \"initial_logit_noise\" must be >= 0, got " +
                    numberString(options.initialLogitNoise));
    if (config.contains("initial_logits")) {
        const nlohmann::json& v = config["initial_logits"];
        if (!v.is_array() || v.size() != static_cast<size_t>(M) * M)
            throw Error(std::string(type) + " config: \"initial_logits\" must be an array of num_atoms^2 = " +
                        std::to_string(static_cast<size_t>(M) * M) + " numbers (row-major)");
        options.initialLogits.resize(M, M);
        for (size_t e = 0; e < v.size(); e++) {
            if (!v[e].is_number() || !std::isfinite(v[e].get<double>()))
                throw Error(std::string(type) + " config: \"initial_logits\" entry " + std::to_string(e) +
                            " must be a finite number, got " + v[e].dump());
            options.initialLogits(static_cast<Eigen::Index>(e) / M, static_cast<Eigen::Index>(e) % M) =
                v[e].get<double>();
        }
    }
    return std::make_unique<RightStochasticLinear>(std::move(inputCircular), options);
}

void RightStochasticLinear::getParameters(double* out) const {
    for (Eigen::Index i = 0; i < numAtoms; i++)
        for (Eigen::Index j = 0; j < numAtoms; j++)
            out[i * numAtoms + j] = logits(i, j);
}

void RightStochasticLinear::setParameters(const double* in) {
    Eigen::MatrixXd next(numAtoms, numAtoms);
    for (Eigen::Index i = 0; i < numAtoms; i++)
        for (Eigen::Index j = 0; j < numAtoms; j++)
            next(i, j) = in[i * numAtoms + j];
    setLogits(next);
}

Eigen::MatrixXd RightStochasticLinear::startLogits() const {
    const int M = numAtoms;
    if (options.initialLogits.size() > 0)
        return options.initialLogits;
    Eigen::MatrixXd start = Eigen::MatrixXd::Zero(M, M);
    if (M > 1) // A_ii = w, A_ij = (1 - w) / (M - 1): see RightStochasticOptions::initialDiagonalWeight
        start.diagonal().setConstant(
            std::log(options.initialDiagonalWeight * (M - 1) / (1.0 - options.initialDiagonalWeight)));
    return start;
}

void RightStochasticLinear::initializeParameters(uint64_t seed) {
    const int M = numAtoms;
    Eigen::MatrixXd start = startLogits();
    if (options.initialLogitNoise > 0) {
        std::mt19937_64 engine(seed);
        for (Eigen::Index i = 0; i < M; i++)
            for (Eigen::Index j = 0; j < M; j++) {
                const double u = static_cast<double>(engine() >> 11) * 0x1.0p-53; // U[0, 1)
                start(i, j) += options.initialLogitNoise * (2.0 * u - 1.0);
            }
    }
    setLogits(start);
}

std::unique_ptr<BijectionWorkspace> RightStochasticLinear::createWorkspace() const {
    return std::make_unique<RightStochasticWorkspace>();
}

void RightStochasticLinear::apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                                  double* logDet, BijectionWorkspace& wsBase, bool save) const {
    RightStochasticWorkspace& ws = workspaceAs<RightStochasticWorkspace>(wsBase, "RightStochasticLinear");
    checkApplyArguments(data, context, logDet);
    checkInvertible("apply");
    ws.savedBatch = -1;
    const int k = componentsPerAtom, M = numAtoms;
    const Eigen::Index n = data.cols();
    gatherAtoms(data, k, M, ws.atoms);
    if (direction == Direction::Forward)
        ws.result.noalias() = matrix * ws.atoms;
    else if (ws.atoms.cols() == 0)
        ws.result.resize(ws.atoms.rows(), 0); // Eigen's triangular solve reads coefficient (0, 0) even of an empty right-hand side
    else
        ws.result = lu.solve(ws.atoms);
    scatterAtoms(ws.result, k, M, data);
    const double contribution = (direction == Direction::Forward ? k : -k) * logAbsDet;
    for (Eigen::Index s = 0; s < n; s++)
        logDet[s] += contribution;
    if (save) {
        std::swap(ws.saved, direction == Direction::Forward ? ws.atoms : ws.result);
        ws.direction = direction;
        ws.savedBatch = n;
        ws.owner = this;
    }
}

void RightStochasticLinear::backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd*,
                                     double* paramGrad, BijectionWorkspace& wsBase) const {
    RightStochasticWorkspace& ws = workspaceAs<RightStochasticWorkspace>(wsBase, "RightStochasticLinear");
    if (ws.savedBatch < 0 || ws.owner != this)
        throw Error("RightStochasticLinear: backward() needs a preceding apply(..., save = true) of this layer "
                    "with this workspace");
    if (grad.rows() != getDimension() || grad.cols() != ws.savedBatch)
        throw Error("RightStochasticLinear: grad is " + shapeString(grad.rows(), grad.cols()) + ", expected " +
                    shapeString(getDimension(), ws.savedBatch) + " (dimension x batch of the saved apply)");
    checkInvertible("backward");
    const int k = componentsPerAtom, M = numAtoms;
    const Eigen::Index n = ws.savedBatch;
    const bool forward = ws.direction == Direction::Forward;
    gatherAtoms(grad, k, M, ws.gradAtoms);
    // Forward, out = A in: dL/din = A^T g.  Inverse, out = A^{-1} in: dL/din = A^{-T} g.
    if (forward)
        ws.gradIn.noalias() = matrix.transpose() * ws.gradAtoms;
    else if (ws.gradAtoms.cols() == 0)
        ws.gradIn.resize(ws.gradAtoms.rows(), 0); // as in apply(): no solve of an empty right-hand side
    else
        ws.gradIn = lu.transpose().solve(ws.gradAtoms);
    if (paramGrad != nullptr) {
        // dL/dA: Forward, sum over components and samples of g in^T; Inverse (d A^{-1} = -A^{-1} dA A^{-1}),
        // -(A^{-T} g) out^T. The log-det term +-k log|det A| adds +-k (sum of gradLogDet) A^{-T}.
        if (forward)
            ws.gradMatrix.noalias() = ws.gradAtoms * ws.saved.transpose();
        else
            ws.gradMatrix.noalias() = -ws.gradIn * ws.saved.transpose();
        double gradLogDetSum = 0.0;
        if (gradLogDet != nullptr)
            for (Eigen::Index s = 0; s < n; s++)
                gradLogDetSum += gradLogDet[s];
        if (gradLogDetSum != 0.0)
            ws.gradMatrix += ((forward ? k : -k) * gradLogDetSum) * inverse.transpose();
        // Row softmax: dL/dphi_ij = A_ij (G_ij - sum_l A_il G_il).
        for (Eigen::Index i = 0; i < M; i++) {
            const double dot = matrix.row(i).dot(ws.gradMatrix.row(i));
            for (Eigen::Index j = 0; j < M; j++)
                paramGrad[i * M + j] += matrix(i, j) * (ws.gradMatrix(i, j) - dot);
        }
    }
    scatterAtoms(ws.gradIn, k, M, grad);
}

} // namespace cgflow::flows
