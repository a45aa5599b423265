#include "cgflow/coords/CGMap.h"
#include "BatchArguments.h"

#include "cgflow/Error.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>

namespace cgflow::coords {

using Eigen::MatrixXd;
using Eigen::VectorXd;

namespace {

// Both tolerances are absolute: coefficients of a CG map are O(1) numbers (weights summing to 1),
// and computing them in double precision leaves errors of order 1e-15, far inside these bounds,
// while a float32 round trip (~1e-7) or a typo is caught.
constexpr double rowSumTolerance = 1e-9;
constexpr double consistencyTolerance = 1e-9;

std::string formatNumber(double x) {
    std::ostringstream s;
    s.precision(17);
    s << x;
    return s.str();
}

using detail::checkBatch;

int inferBatch(size_t size, int perItem, const char* name, const char* itemName) {
    size_t stride = 3 * static_cast<size_t>(perItem);
    if (size % stride != 0)
        throw Error(std::string(name) + " must hold batch × " + std::to_string(perItem) + " " + itemName +
                    " × 3 values, a multiple of " + std::to_string(stride) + ", got " + std::to_string(size));
    return static_cast<int>(size / stride);
}

} // namespace

std::string forceMapTypeName(ForceMapType type) {
    switch (type) {
    case ForceMapType::Aggregate: return "aggregate";
    case ForceMapType::MinimumNorm: return "minimum-norm";
    case ForceMapType::Explicit: return "explicit";
    }
    throw Error("invalid ForceMapType value " + std::to_string(static_cast<int>(type)));
}

LinearMap::LinearMap(int numAtoms, const std::vector<std::vector<int>>& atoms,
                     const std::vector<std::vector<double>>& weights, const std::string& argumentName)
    : numAtoms(numAtoms), numBeads(static_cast<int>(atoms.size())) {
    if (numAtoms <= 0)
        throw Error(argumentName + ": the number of atoms must be positive, got " + std::to_string(numAtoms));
    if (numBeads == 0)
        throw Error(argumentName + ": a CG map needs at least one bead");
    if (weights.size() != atoms.size())
        throw Error(argumentName + ": " + std::to_string(atoms.size()) + " atom lists but " +
                    std::to_string(weights.size()) + " weight lists");
    beadAtoms.resize(numBeads);
    positionRows.rowStart.assign(1, 0);
    std::vector<int> seen(numAtoms, -1);
    for (int bead = 0; bead < numBeads; bead++) {
        const std::string name = argumentName + " bead " + std::to_string(bead);
        const std::vector<int>& a = atoms[bead];
        const std::vector<double>& w = weights[bead];
        if (a.empty())
            throw Error(name + ": the group of atoms is empty; every bead needs at least one atom");
        if (w.size() != a.size())
            throw Error(name + ": " + std::to_string(a.size()) + " atoms but " + std::to_string(w.size()) +
                        " weights");
        std::vector<std::pair<int, double>> entries;
        double sum = 0;
        for (size_t k = 0; k < a.size(); k++) {
            if (a[k] < 0 || a[k] >= numAtoms)
                throw Error(name + ": atom index " + std::to_string(a[k]) + " out of range [0, " +
                            std::to_string(numAtoms) + ")");
            if (seen[a[k]] == bead)
                throw Error(name + ": atom " + std::to_string(a[k]) + " is listed twice");
            seen[a[k]] = bead;
            if (!std::isfinite(w[k]))
                throw Error(name + ": the coefficient of atom " + std::to_string(a[k]) + " is not finite");
            sum += w[k];
            // A zero coefficient does not make the atom part of the bead: the force map only
            // reads atoms that move the bead.
            if (w[k] != 0)
                entries.emplace_back(a[k], w[k]);
        }
        if (std::abs(sum - 1) > rowSumTolerance)
            throw Error(name + ": coefficients must sum to 1 (so the bead follows translations of the molecule), "
                        "got " + formatNumber(sum));
        std::sort(entries.begin(), entries.end());
        for (const auto& [atom, c] : entries) {
            beadAtoms[bead].push_back(atom);
            positionRows.index.push_back(atom);
            positionRows.value.push_back(c);
        }
        positionRows.rowStart.push_back(static_cast<int>(positionRows.index.size()));
    }
    chooseForceMap();
}

LinearMap LinearMap::fromDense(const MatrixXd& coefficients) {
    if (coefficients.rows() == 0 || coefficients.cols() == 0)
        throw Error("coefficients must be a numBeads × numAtoms matrix with at least one row and column, got " +
                    std::to_string(coefficients.rows()) + " × " + std::to_string(coefficients.cols()));
    const int numAtoms = static_cast<int>(coefficients.cols());
    std::vector<std::vector<int>> atoms(coefficients.rows());
    std::vector<std::vector<double>> weights(coefficients.rows());
    for (int bead = 0; bead < coefficients.rows(); bead++)
        for (int atom = 0; atom < numAtoms; atom++) {
            double c = coefficients(bead, atom);
            if (!std::isfinite(c))
                throw Error("coefficients(" + std::to_string(bead) + ", " + std::to_string(atom) + ") is not finite");
            if (c != 0) {
                atoms[bead].push_back(atom);
                weights[bead].push_back(c);
            }
        }
    for (int bead = 0; bead < coefficients.rows(); bead++)
        if (atoms[bead].empty())
            throw Error("coefficients bead " + std::to_string(bead) +
                        ": the row is all zeros; every bead needs at least one atom and coefficients summing to 1");
    return LinearMap(numAtoms, atoms, weights, "coefficients");
}

LinearMap::LinearMap(const MatrixXd& coefficients) : LinearMap(fromDense(coefficients)) {}

LinearMap::LinearMap(const MatrixXd& coefficients, const MatrixXd& forceCoefficients)
    : LinearMap(fromDense(coefficients)) {
    setExplicitForceMap(forceCoefficients);
}

LinearMap LinearMap::centerOfMass(const std::vector<std::vector<int>>& groups, const std::vector<double>& masses) {
    const int numAtoms = static_cast<int>(masses.size());
    if (numAtoms == 0)
        throw Error("masses must hold one mass per atom, got none");
    std::vector<std::vector<double>> weights(groups.size());
    for (size_t g = 0; g < groups.size(); g++) {
        const std::string name = "groups[" + std::to_string(g) + "]";
        if (groups[g].empty())
            throw Error(name + ": the group of atoms is empty; every bead needs at least one atom");
        double total = 0;
        for (int atom : groups[g]) {
            if (atom < 0 || atom >= numAtoms)
                throw Error(name + ": atom index " + std::to_string(atom) + " out of range [0, " +
                            std::to_string(numAtoms) + ")");
            double m = masses[atom];
            if (!std::isfinite(m) || m <= 0)
                throw Error("masses[" + std::to_string(atom) + "] (in " + name +
                            ") must be finite and positive, got " + formatNumber(m));
            total += m;
        }
        for (int atom : groups[g])
            weights[g].push_back(masses[atom] / total);
    }
    return LinearMap(numAtoms, groups, weights, "groups");
}

LinearMap LinearMap::centerOfGeometry(int numAtoms, const std::vector<std::vector<int>>& groups) {
    if (numAtoms <= 0)
        throw Error("numAtoms must be positive, got " + std::to_string(numAtoms));
    return centerOfMass(groups, std::vector<double>(numAtoms, 1.0));
}

void LinearMap::chooseForceMap() {
    // For each atom, the beads that use it and with which coefficient (the columns of c).
    std::vector<std::vector<std::pair<int, double>>> atomBeads(numAtoms);
    for (int bead = 0; bead < numBeads; bead++)
        for (int k = positionRows.rowStart[bead]; k < positionRows.rowStart[bead + 1]; k++)
            atomBeads[positionRows.index[k]].emplace_back(bead, positionRows.value[k]);
    bool overlapping = false;
    for (const auto& beads : atomBeads)
        overlapping = overlapping || beads.size() > 1;

    forceRows.rowStart.assign(1, 0);
    forceRows.index.clear();
    forceRows.value.clear();
    if (!overlapping) {
        forceMapType = ForceMapType::Aggregate;
        for (int bead = 0; bead < numBeads; bead++) {
            for (int atom : beadAtoms[bead]) {
                forceRows.index.push_back(atom);
                forceRows.value.push_back(1.0);
            }
            forceRows.rowStart.push_back(static_cast<int>(forceRows.index.size()));
        }
        return;
    }

    forceMapType = ForceMapType::MinimumNorm;
    for (int bead = 0; bead < numBeads; bead++) {
        const std::vector<int>& own = beadAtoms[bead];
        // Only beads sharing an atom with this one constrain its weights: for any other bead J,
        // Σ_{j∈I} b_Ij c_Jj = 0 holds whatever b_I is.
        std::vector<int> neighbours;
        for (int atom : own)
            for (const auto& [other, c] : atomBeads[atom])
                neighbours.push_back(other);
        std::sort(neighbours.begin(), neighbours.end());
        neighbours.erase(std::unique(neighbours.begin(), neighbours.end()), neighbours.end());
        MatrixXd a = MatrixXd::Zero(neighbours.size(), own.size());
        VectorXd target = VectorXd::Zero(neighbours.size());
        for (size_t k = 0; k < own.size(); k++)
            for (const auto& [other, c] : atomBeads[own[k]]) {
                auto row = std::lower_bound(neighbours.begin(), neighbours.end(), other) - neighbours.begin();
                a(row, k) = c;
            }
        target(std::lower_bound(neighbours.begin(), neighbours.end(), bead) - neighbours.begin()) = 1;
        // The complete orthogonal decomposition gives the minimum-norm solution of an
        // underdetermined (or rank-deficient) system; the residual then tells whether one exists.
        VectorXd b = a.completeOrthogonalDecomposition().solve(target);
        double residual = (a * b - target).cwiseAbs().maxCoeff();
        if (!(residual <= consistencyTolerance)) {
            std::string others;
            for (int other : neighbours)
                if (other != bead)
                    others += (others.empty() ? "" : ", ") + std::to_string(other);
            throw Error("bead " + std::to_string(bead) + " shares atoms with bead(s) " + others +
                        " and no force map on its own atoms satisfies Σ_j b_Ij c_Jj = δ_IJ (residual " +
                        formatNumber(residual) +
                        "): its atoms cannot tell it apart from the overlapping beads; give explicit force "
                        "coefficients or change the groups");
        }
        for (size_t k = 0; k < own.size(); k++)
            if (b[k] != 0) {
                forceRows.index.push_back(own[k]);
                forceRows.value.push_back(b[k]);
            }
        forceRows.rowStart.push_back(static_cast<int>(forceRows.index.size()));
    }
}

void LinearMap::setExplicitForceMap(const MatrixXd& forceCoefficients) {
    if (forceCoefficients.rows() != numBeads || forceCoefficients.cols() != numAtoms)
        throw Error("forceCoefficients must have the shape of coefficients, " + std::to_string(numBeads) + " × " +
                    std::to_string(numAtoms) + ", got " + std::to_string(forceCoefficients.rows()) + " × " +
                    std::to_string(forceCoefficients.cols()));
    SparseRows rows;
    rows.rowStart.assign(1, 0);
    for (int bead = 0; bead < numBeads; bead++) {
        for (int atom = 0; atom < numAtoms; atom++) {
            double b = forceCoefficients(bead, atom);
            if (!std::isfinite(b))
                throw Error("forceCoefficients(" + std::to_string(bead) + ", " + std::to_string(atom) +
                            ") is not finite");
            if (b != 0) {
                rows.index.push_back(atom);
                rows.value.push_back(b);
            }
        }
        rows.rowStart.push_back(static_cast<int>(rows.index.size()));
    }
    // Σ_j b_Ij c_Jj over the atoms where b_I is nonzero, scattering through c's columns.
    std::vector<std::vector<std::pair<int, double>>> atomBeads(numAtoms);
    for (int bead = 0; bead < numBeads; bead++)
        for (int k = positionRows.rowStart[bead]; k < positionRows.rowStart[bead + 1]; k++)
            atomBeads[positionRows.index[k]].emplace_back(bead, positionRows.value[k]);
    VectorXd product(numBeads);
    for (int bead = 0; bead < numBeads; bead++) {
        product.setZero();
        for (int k = rows.rowStart[bead]; k < rows.rowStart[bead + 1]; k++)
            for (const auto& [other, c] : atomBeads[rows.index[k]])
                product[other] += rows.value[k] * c;
        for (int other = 0; other < numBeads; other++) {
            double expected = other == bead ? 1.0 : 0.0;
            if (!(std::abs(product[other] - expected) <= consistencyTolerance))
                throw Error("forceCoefficients is not a valid force map: Σ_j b_Ij c_Jj for I = " +
                            std::to_string(bead) + ", J = " + std::to_string(other) + " is " +
                            formatNumber(product[other]) + ", expected " + formatNumber(expected) +
                            " (the force map must satisfy Σ_j b_Ij c_Jj = δ_IJ)");
        }
    }
    forceRows = std::move(rows);
    forceMapType = ForceMapType::Explicit;
}

const std::vector<int>& LinearMap::getBeadAtoms(int bead) const {
    if (bead < 0 || bead >= numBeads)
        throw Error("bead index " + std::to_string(bead) + " out of range [0, " + std::to_string(numBeads) + ")");
    return beadAtoms[bead];
}

MatrixXd LinearMap::toDense(const SparseRows& rows, int numRows, int numColumns) {
    MatrixXd m = MatrixXd::Zero(numRows, numColumns);
    for (int r = 0; r < numRows; r++)
        for (int k = rows.rowStart[r]; k < rows.rowStart[r + 1]; k++)
            m(r, rows.index[k]) = rows.value[k];
    return m;
}

MatrixXd LinearMap::getCoefficients() const {
    return toDense(positionRows, numBeads, numAtoms);
}

MatrixXd LinearMap::getForceCoefficients() const {
    return toDense(forceRows, numBeads, numAtoms);
}

void LinearMap::apply(const SparseRows& rows, int numRows, int numColumns, int batchSize, const double* in,
                      double* out) {
    const size_t inStride = 3 * static_cast<size_t>(numColumns);
    const size_t outStride = 3 * static_cast<size_t>(numRows);
    for (int item = 0; item < batchSize; item++) {
        const double* x = in + item * inStride;
        double* y = out + item * outStride;
        for (int r = 0; r < numRows; r++) {
            double sx = 0, sy = 0, sz = 0;
            for (int k = rows.rowStart[r]; k < rows.rowStart[r + 1]; k++) {
                const double* xj = x + 3 * static_cast<size_t>(rows.index[k]);
                double w = rows.value[k];
                sx += w * xj[0];
                sy += w * xj[1];
                sz += w * xj[2];
            }
            y[3 * r] = sx;
            y[3 * r + 1] = sy;
            y[3 * r + 2] = sz;
        }
    }
}

void LinearMap::mapPositions(int batchSize, const double* positions, double* cgPositions) const {
    checkBatch(batchSize, positions, cgPositions, "positions", "cgPositions");
    apply(positionRows, numBeads, numAtoms, batchSize, positions, cgPositions);
}

void LinearMap::mapForces(int batchSize, const double* forces, double* cgForces) const {
    checkBatch(batchSize, forces, cgForces, "forces", "cgForces");
    apply(forceRows, numBeads, numAtoms, batchSize, forces, cgForces);
}

void LinearMap::distributeForces(int batchSize, const double* cgForces, double* atomForces) const {
    checkBatch(batchSize, cgForces, atomForces, "cgForces", "atomForces");
    const size_t inStride = 3 * static_cast<size_t>(numBeads);
    const size_t outStride = 3 * static_cast<size_t>(numAtoms);
    for (int item = 0; item < batchSize; item++) {
        const double* f = cgForces + item * inStride;
        double* out = atomForces + item * outStride;
        std::fill(out, out + outStride, 0.0);
        for (int bead = 0; bead < numBeads; bead++)
            for (int k = positionRows.rowStart[bead]; k < positionRows.rowStart[bead + 1]; k++) {
                double* target = out + 3 * static_cast<size_t>(positionRows.index[k]);
                double c = positionRows.value[k];
                target[0] += c * f[3 * bead];
                target[1] += c * f[3 * bead + 1];
                target[2] += c * f[3 * bead + 2];
            }
    }
}

std::vector<double> LinearMap::mapPositions(const std::vector<double>& positions) const {
    int batch = inferBatch(positions.size(), numAtoms, "positions", "atoms");
    std::vector<double> out(3 * static_cast<size_t>(batch) * numBeads);
    mapPositions(batch, positions.data(), out.data());
    return out;
}

std::vector<double> LinearMap::mapForces(const std::vector<double>& forces) const {
    int batch = inferBatch(forces.size(), numAtoms, "forces", "atoms");
    std::vector<double> out(3 * static_cast<size_t>(batch) * numBeads);
    mapForces(batch, forces.data(), out.data());
    return out;
}

std::vector<double> LinearMap::distributeForces(const std::vector<double>& cgForces) const {
    int batch = inferBatch(cgForces.size(), numBeads, "cgForces", "beads");
    std::vector<double> out(3 * static_cast<size_t>(batch) * numAtoms);
    distributeForces(batch, cgForces.data(), out.data());
    return out;
}

// ---------------------------------------------------------------------------------------------
// SliceMap

namespace {

// Validated here rather than by LinearMap so that a repeated atom is reported as such, not as two
// beads whose force map cannot be separated.
std::vector<std::vector<int>> sliceGroups(int numAtoms, const std::vector<int>& atoms) {
    if (numAtoms <= 0)
        throw Error("numAtoms must be positive, got " + std::to_string(numAtoms));
    if (atoms.empty())
        throw Error("atoms: a slice map needs at least one atom");
    std::vector<bool> seen(numAtoms, false);
    std::vector<std::vector<int>> groups;
    groups.reserve(atoms.size());
    for (size_t k = 0; k < atoms.size(); k++) {
        int atom = atoms[k];
        if (atom < 0 || atom >= numAtoms)
            throw Error("atoms[" + std::to_string(k) + "]: atom index " + std::to_string(atom) + " out of range [0, " +
                        std::to_string(numAtoms) + ")");
        if (seen[atom])
            throw Error("atoms[" + std::to_string(k) + "]: atom " + std::to_string(atom) +
                        " is listed twice; a slice keeps each atom once");
        seen[atom] = true;
        groups.push_back({atom});
    }
    return groups;
}

constexpr int alanineDipeptideNumAtoms = 22;

} // namespace

SliceMap::SliceMap(int numAtoms, const std::vector<int>& atoms)
    : LinearMap(numAtoms, sliceGroups(numAtoms, atoms),
                std::vector<std::vector<double>>(atoms.size(), std::vector<double>{1.0}), "atoms"),
      atoms(atoms) {}

SliceMap SliceMap::alanineDipeptideHeavyAtom() {
    // CH3(ACE) C O N CA CB C O N CH3(NME)
    return SliceMap(alanineDipeptideNumAtoms, {1, 4, 5, 6, 8, 10, 14, 15, 16, 18});
}

SliceMap SliceMap::alanineDipeptideCoreBeta() {
    // C(ACE) N CA CB C N(NME): the φ/ψ backbone plus Cβ.
    return SliceMap(alanineDipeptideNumAtoms, {4, 6, 8, 10, 14, 16});
}

SliceMap SliceMap::alanineDipeptide(const std::string& mapping) {
    if (mapping == "heavy_atom")
        return alanineDipeptideHeavyAtom();
    if (mapping == "core_beta")
        return alanineDipeptideCoreBeta();
    throw Error("mapping: unknown alanine-dipeptide CG mapping \"" + mapping +
                "\"; expected \"heavy_atom\" or \"core_beta\"");
}

} // namespace cgflow::coords
