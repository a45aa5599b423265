#include "cgflow/coords/CGMapDihedral.h"
#include "BatchArguments.h"

#include "cgflow/Error.h"

#include <Eigen/Geometry>

#include <algorithm>
#include <cmath>
#include <string>

namespace cgflow::coords {

using Eigen::Vector3d;

namespace {

Vector3d positionOf(const double* positions, int atom) {
    return Vector3d(positions[3 * atom], positions[3 * atom + 1], positions[3 * atom + 2]);
}

using detail::checkBatch;

bool contains(const std::vector<int>& set, int atom) {
    return std::find(set.begin(), set.end(), atom) != set.end();
}

/**
 * Why rotating `set` about dihedral `index`'s central bond would not be a valid force-map direction,
 * or an empty string if it is (see the class comment for the rules).
 */
std::string rotatingSetProblem(const std::vector<std::array<int, 4>>& dihedrals, int index,
                               const std::vector<int>& set) {
    const std::array<int, 4>& d = dihedrals[index];
    if (contains(set, d[1]) || contains(set, d[2]))
        return "it contains a central-bond atom (" + std::to_string(d[1]) + " or " + std::to_string(d[2]) +
               "), which the rotation must keep fixed";
    if (contains(set, d[0]) == contains(set, d[3]))
        return "it must contain exactly one of the end atoms " + std::to_string(d[0]) + " and " +
               std::to_string(d[3]);
    for (size_t m = 0; m < dihedrals.size(); m++) {
        if (static_cast<int>(m) == index)
            continue;
        int inside = 0, fixedOnAxis = 0;
        for (int atom : dihedrals[m]) {
            inside += contains(set, atom);
            fixedOnAxis += atom == d[1] || atom == d[2];
        }
        // Unchanged if none of its atoms moves, or if all of them move rigidly (the axis atoms
        // j and k lie on the rotation axis and so move with the rigid body too).
        if (inside != 0 && inside + fixedOnAxis != 4)
            return "rotating it would change dihedrals[" + std::to_string(m) +
                   "]; each other CG dihedral needs none of its atoms in the set, or all of them in the set "
                   "or on the central bond";
    }
    return "";
}

} // namespace

DihedralCGMap::DihedralCGMap(int numAtoms, const std::vector<std::array<int, 4>>& dihedrals,
                             const std::vector<std::vector<int>>& rotatingAtoms)
    : numAtoms(numAtoms), dihedrals(dihedrals) {
    if (numAtoms <= 0)
        throw Error("numAtoms must be positive, got " + std::to_string(numAtoms));
    if (dihedrals.empty())
        throw Error("dihedrals: a dihedral CG map needs at least one dihedral");
    if (!rotatingAtoms.empty() && rotatingAtoms.size() != dihedrals.size())
        throw Error("rotatingAtoms must be empty or hold one set per dihedral (" + std::to_string(dihedrals.size()) +
                    "), got " + std::to_string(rotatingAtoms.size()));
    for (size_t k = 0; k < dihedrals.size(); k++) {
        Feature f{FeatureType::Dihedral, {dihedrals[k][0], dihedrals[k][1], dihedrals[k][2], dihedrals[k][3]}};
        validateFeature(f, numAtoms, "dihedrals[" + std::to_string(k) + "]");
        features.push_back({f});
    }
    rotating.resize(dihedrals.size());
    for (size_t k = 0; k < dihedrals.size(); k++) {
        const int index = static_cast<int>(k);
        if (!rotatingAtoms.empty() && !rotatingAtoms[k].empty()) {
            const std::string name = "rotatingAtoms[" + std::to_string(k) + "]";
            std::vector<int> set = rotatingAtoms[k];
            for (int atom : set)
                if (atom < 0 || atom >= numAtoms)
                    throw Error(name + ": atom index " + std::to_string(atom) + " out of range [0, " +
                                std::to_string(numAtoms) + ")");
            std::sort(set.begin(), set.end());
            auto repeated = std::adjacent_find(set.begin(), set.end());
            if (repeated != set.end())
                throw Error(name + ": atom " + std::to_string(*repeated) + " is listed twice");
            std::string problem = rotatingSetProblem(this->dihedrals, index, set);
            if (!problem.empty())
                throw Error(name + " is not a valid rotating set for dihedrals[" + std::to_string(k) + "]: " + problem);
            rotating[k] = set;
            continue;
        }
        // Prefer l, the usual "moving" end of a torsion; fall back to i.
        for (int end : {dihedrals[k][3], dihedrals[k][0]})
            if (rotatingSetProblem(this->dihedrals, index, {end}).empty()) {
                rotating[k] = {end};
                break;
            }
    }
}

DihedralCGMap DihedralCGMap::alanineDipeptidePhiPsi() {
    return DihedralCGMap(22, {{4, 6, 8, 14}, {6, 8, 14, 16}},
                         {{0, 1, 2, 3, 4, 5, 7}, {15, 16, 17, 18, 19, 20, 21}});
}

const std::array<int, 4>& DihedralCGMap::getDihedralAtoms(int index) const {
    if (index < 0 || index >= getNumDihedrals())
        throw Error("dihedral index " + std::to_string(index) + " out of range [0, " +
                    std::to_string(getNumDihedrals()) + ")");
    return dihedrals[index];
}

const std::vector<int>& DihedralCGMap::getRotatingAtoms(int index) const {
    getDihedralAtoms(index);
    return rotating[index];
}

bool DihedralCGMap::canMapForces() const {
    return std::none_of(rotating.begin(), rotating.end(), [](const std::vector<int>& s) { return s.empty(); });
}

void DihedralCGMap::mapPositions(int batchSize, const double* positions, double* angles, const PeriodicBox& box) const {
    checkBatch(batchSize, positions, angles, "positions", "angles");
    const int nd = getNumDihedrals();
    for (int item = 0; item < batchSize; item++) {
        const double* x = positions + item * 3 * static_cast<size_t>(numAtoms);
        for (int k = 0; k < nd; k++) {
            double cs[2];
            computeFeatures(features[k], x, box, cs);
            angles[static_cast<size_t>(item) * nd + k] = std::atan2(cs[1], cs[0]);
        }
    }
}

void DihedralCGMap::computeJacobian(int batchSize, const double* positions, double* jacobian,
                                    const PeriodicBox& box) const {
    checkBatch(batchSize, positions, jacobian, "positions", "jacobian");
    const int nd = getNumDihedrals();
    const size_t width = 3 * static_cast<size_t>(numAtoms);
    for (int item = 0; item < batchSize; item++) {
        const double* x = positions + item * width;
        for (int k = 0; k < nd; k++) {
            double* row = jacobian + (static_cast<size_t>(item) * nd + k) * width;
            std::fill(row, row + width, 0.0);
            double cs[2];
            computeFeatures(features[k], x, box, cs);
            // The feature is (cos φ, sin φ); seeding its backward pass with dφ/d(cos, sin) =
            // (-sin φ, cos φ) yields ∇φ itself, so the dihedral derivative is Features' one.
            double seed[2] = {-cs[1], cs[0]};
            backpropFeatures(features[k], x, box, seed, row);
        }
    }
}

void DihedralCGMap::addAtomForces(int batchSize, const double* positions, const double* dVds, double* atomForces,
                                  const PeriodicBox& box) const {
    checkBatch(batchSize, positions, atomForces, "positions", "atomForces");
    if (batchSize > 0 && dVds == nullptr)
        throw Error("dVds is null but batchSize is " + std::to_string(batchSize));
    const int nd = getNumDihedrals();
    const size_t width = 3 * static_cast<size_t>(numAtoms);
    for (int item = 0; item < batchSize; item++) {
        const double* x = positions + item * width;
        double* f = atomForces + item * width;
        for (int k = 0; k < nd; k++) {
            double cs[2];
            computeFeatures(features[k], x, box, cs);
            // Seeding with -dV/dφ·dφ/d(cos, sin) makes the backward pass accumulate -dV/dφ ∇φ,
            // the force, straight into the caller's array.
            double minusDv = -dVds[static_cast<size_t>(item) * nd + k];
            double seed[2] = {-cs[1] * minusDv, cs[0] * minusDv};
            backpropFeatures(features[k], x, box, seed, f);
        }
    }
}

void DihedralCGMap::computeForceMapVectors(int batchSize, const double* positions, double* vectors,
                                           const PeriodicBox& box) const {
    checkBatch(batchSize, positions, vectors, "positions", "vectors");
    if (!canMapForces())
        throw Error("a CG dihedral has no rotating set (both its end atoms are used by other CG dihedrals); "
                    "pass rotatingAtoms to define its force map");
    const int nd = getNumDihedrals();
    const size_t width = 3 * static_cast<size_t>(numAtoms);
    for (int item = 0; item < batchSize; item++) {
        const double* x = positions + item * width;
        for (int k = 0; k < nd; k++) {
            double* v = vectors + (static_cast<size_t>(item) * nd + k) * width;
            std::fill(v, v + width, 0.0);
            const std::array<int, 4>& d = dihedrals[k];
            Vector3d rk = positionOf(x, d[2]);
            Vector3d axis = displacement(positionOf(x, d[1]), rk, box);
            double length = axis.norm();
            // No rotation axis (length 0): the dihedral is undefined, as in Features, and the row
            // stays 0. Written length <= 0 so that a NaN geometry goes on to NaN vectors instead.
            if (length <= 0)
                continue;
            double sigma = contains(rotating[k], d[3]) ? 1.0 : -1.0;
            Vector3d omega = (sigma / length) * axis;
            for (int atom : rotating[k]) {
                Vector3d t = omega.cross(displacement(rk, positionOf(x, atom), box));
                v[3 * atom] = t[0];
                v[3 * atom + 1] = t[1];
                v[3 * atom + 2] = t[2];
            }
        }
    }
}

void DihedralCGMap::mapForces(int batchSize, const double* positions, const double* forces,
                              double* generalizedForces, const PeriodicBox& box) const {
    checkBatch(batchSize, positions, generalizedForces, "positions", "generalizedForces");
    if (batchSize > 0 && forces == nullptr)
        throw Error("forces is null but batchSize is " + std::to_string(batchSize));
    if (!canMapForces())
        throw Error("a CG dihedral has no rotating set (both its end atoms are used by other CG dihedrals); "
                    "pass rotatingAtoms to define its force map");
    const int nd = getNumDihedrals();
    const size_t width = 3 * static_cast<size_t>(numAtoms);
    for (int item = 0; item < batchSize; item++) {
        const double* x = positions + item * width;
        const double* f = forces + item * width;
        for (int k = 0; k < nd; k++) {
            const std::array<int, 4>& d = dihedrals[k];
            Vector3d rk = positionOf(x, d[2]);
            Vector3d axis = displacement(positionOf(x, d[1]), rk, box);
            double length = axis.norm();
            double torque = 0;
            if (!(length <= 0)) {  // a zero-length axis gives 0; a NaN geometry gives NaN, as in Features
                Vector3d moment = Vector3d::Zero();
                for (int atom : rotating[k])
                    moment += displacement(rk, positionOf(x, atom), box).cross(positionOf(f, atom));
                double sigma = contains(rotating[k], d[3]) ? 1.0 : -1.0;
                torque = sigma * axis.dot(moment) / length;
            }
            generalizedForces[static_cast<size_t>(item) * nd + k] = torque;
        }
    }
}

namespace {

int inferBatch(size_t size, int numAtoms, const char* name) {
    size_t stride = 3 * static_cast<size_t>(numAtoms);
    if (size % stride != 0)
        throw Error(std::string(name) + " must hold batch × " + std::to_string(numAtoms) +
                    " atoms × 3 values, a multiple of " + std::to_string(stride) + ", got " + std::to_string(size));
    return static_cast<int>(size / stride);
}

} // namespace

std::vector<double> DihedralCGMap::mapPositions(const std::vector<double>& positions, const PeriodicBox& box) const {
    int batch = inferBatch(positions.size(), numAtoms, "positions");
    std::vector<double> out(static_cast<size_t>(batch) * getNumDihedrals());
    mapPositions(batch, positions.data(), out.data(), box);
    return out;
}

std::vector<double> DihedralCGMap::computeJacobian(const std::vector<double>& positions, const PeriodicBox& box) const {
    int batch = inferBatch(positions.size(), numAtoms, "positions");
    std::vector<double> out(positions.size() * getNumDihedrals());
    computeJacobian(batch, positions.data(), out.data(), box);
    return out;
}

std::vector<double> DihedralCGMap::mapForces(const std::vector<double>& positions, const std::vector<double>& forces,
                                             const PeriodicBox& box) const {
    int batch = inferBatch(positions.size(), numAtoms, "positions");
    if (forces.size() != positions.size())
        throw Error("forces must have the size of positions (" + std::to_string(positions.size()) + " values), got " +
                    std::to_string(forces.size()));
    std::vector<double> out(static_cast<size_t>(batch) * getNumDihedrals());
    mapForces(batch, positions.data(), forces.data(), out.data(), box);
    return out;
}

} // namespace cgflow::coords
