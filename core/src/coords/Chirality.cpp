#include "cgflow/coords/Chirality.h"

#include "cgflow/Error.h"

#include <Eigen/Geometry>

#include <cmath>
#include <string>

namespace cgflow::coords {

using Eigen::Vector3d;

namespace {

constexpr double pi = 3.14159265358979323846;

Vector3d positionOf(const double* x, int atom) {
    return Vector3d(x[3 * atom], x[3 * atom + 1], x[3 * atom + 2]);
}

double wrapAngle(double a) {
    double r = a - 2 * pi * std::floor((a + pi) / (2 * pi));
    return r >= pi ? r - 2 * pi : r;
}

} // namespace

ChiralCenter ChiralCenter::alanineDipeptide() {
    ChiralCenter center;
    center.alphaCarbon = 8;
    center.nitrogen = 6;
    center.carbonylCarbon = 14;
    center.betaCarbon = 10;
    center.alphaHydrogen = 9;
    return center;
}

void validateChiralCenter(const ChiralCenter& center, int numAtoms) {
    const int atoms[5] = {center.alphaCarbon, center.nitrogen, center.carbonylCarbon, center.betaCarbon,
                          center.alphaHydrogen};
    const char* names[5] = {"alphaCarbon", "nitrogen", "carbonylCarbon", "betaCarbon", "alphaHydrogen"};
    for (int k = 0; k < 5; k++) {
        if (k == 4 && atoms[k] == -1)
            continue;
        if (atoms[k] < 0 || atoms[k] >= numAtoms)
            throw Error(std::string("ChiralCenter.") + names[k] + " = " + std::to_string(atoms[k]) +
                        " is outside [0, " + std::to_string(numAtoms) + ")" + (k == 4 ? " (or -1 for none)" : ""));
        for (int j = 0; j < k; j++)
            if (atoms[j] == atoms[k])
                throw Error(std::string("ChiralCenter.") + names[k] + " = " + std::to_string(atoms[k]) + " repeats " +
                            names[j]);
    }
}

double chiralVolume(const ChiralCenter& center, const double* positions) {
    Vector3d ca = positionOf(positions, center.alphaCarbon);
    Vector3d side = positionOf(positions, center.betaCarbon) -
                    (center.alphaHydrogen >= 0 ? positionOf(positions, center.alphaHydrogen) : ca);
    return (positionOf(positions, center.nitrogen) - ca)
        .dot((positionOf(positions, center.carbonylCarbon) - ca).cross(side));
}

Chirality chiralityOf(const ChiralCenter& center, const double* positions) {
    double v = chiralVolume(center, positions);
    return v > 0 ? Chirality::L : v < 0 ? Chirality::D : Chirality::Undetermined; // NaN lands here too
}

void detectChirality(const ChiralCenter& center, int numAtoms, int batch, const double* cartesian, Chirality* out) {
    validateChiralCenter(center, numAtoms);
    if (batch < 0)
        throw Error("detectChirality: batch = " + std::to_string(batch) + " must be >= 0");
    if (batch > 0 && (cartesian == nullptr || out == nullptr))
        throw Error(std::string("detectChirality: ") + (cartesian == nullptr ? "cartesian" : "out") + " is null");
    for (int s = 0; s < batch; s++)
        out[s] = chiralityOf(center, cartesian + 3LL * numAtoms * s);
}

std::vector<Chirality> detectChirality(const ChiralCenter& center, int numAtoms, int batch, const double* cartesian) {
    std::vector<Chirality> out(batch > 0 ? batch : 0);
    detectChirality(center, numAtoms, batch, cartesian, out.data());
    return out;
}

bool ChiralTorsionRange::contains(const double* rawInternal) const {
    double t = rawInternal[column];
    if (referenceColumn >= 0)
        t = wrapAngle(t - rawInternal[referenceColumn]);
    return t > lower && t < upper;
}

ChiralTorsionRange findChiralTorsionRange(const ZMatrix& zMatrix, const ChiralCenter& center) {
    validateChiralCenter(center, zMatrix.getNumAtoms());
    const int ca = center.alphaCarbon;
    // V_X = (N-CA).((C-CA) x (X-CA)) is > 0 for CB and < 0 for HA in L. For any X,
    // sign dihedral(X, CA, N, C) = -sign V_X and sign dihedral(X, CA, C, N) = +sign V_X.
    struct Side {
        int atom;
        int sign;
    };
    const Side sides[2] = {{center.betaCarbon, +1}, {center.alphaHydrogen, -1}};
    for (const Side& side : sides) {
        if (side.atom < 0)
            continue;
        int r = zMatrix.getRowOfAtom(side.atom);
        const ZMatrixRow& row = zMatrix.getRow(r);
        if (r < 3 || row.bondPartner != ca)
            continue;
        int axis = row.anglePartner;
        if (axis != center.nitrogen && axis != center.carbonylCarbon)
            continue;
        int other = axis == center.nitrogen ? center.carbonylCarbon : center.nitrogen;
        bool positive = side.sign * (axis == center.carbonylCarbon ? 1 : -1) > 0;
        ChiralTorsionRange range;
        range.column = zMatrix.getDihedralColumn(r);
        range.lower = positive ? 0.0 : -pi;
        range.upper = positive ? pi : 0.0;
        if (row.dihedralPartner == other)
            return range;
        // dihedral(X, CA, axis, d) - dihedral(other, CA, axis, d) = dihedral(X, CA, axis, other) (mod 2 pi):
        // both measure azimuths about the same axis from the same d. Either atom order of that column works.
        int d = row.dihedralPartner;
        for (int k = 3; k < zMatrix.getNumAtoms(); k++) {
            const ZMatrixRow& o = zMatrix.getRow(k);
            bool forward = o.atom == other && o.bondPartner == ca && o.anglePartner == axis && o.dihedralPartner == d;
            bool reversed = o.atom == d && o.bondPartner == axis && o.anglePartner == ca && o.dihedralPartner == other;
            if (forward || reversed) {
                range.referenceColumn = zMatrix.getDihedralColumn(k);
                return range;
            }
        }
    }
    throw Error("findChiralTorsionRange: no dihedral of this Z-matrix fixes the handedness at atom " +
                std::to_string(ca) + " (CB or HA must be placed from CA with N or C as angle partner); "
                "test Cartesian coordinates with detectChirality instead");
}

} // namespace cgflow::coords
