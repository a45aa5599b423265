#ifndef CGFLOW_COORDS_CHIRALITY_H_
#define CGFLOW_COORDS_CHIRALITY_H_

#include "cgflow/coords/ZMatrix.h"

#include <vector>

namespace cgflow::coords {

/**
 * Handedness of an amino acid's alpha carbon. Undetermined: a zero or non-finite signed volume
 * (coplanar substituents, or NaN positions from a failed sample), which is data, not an error.
 */
enum class Chirality : signed char { D = -1, Undetermined = 0, L = 1 };

/**
 * The alpha carbon and its substituents. alphaHydrogen may be -1; when given it makes the test use
 * all four substituents. The other four indices are required.
 */
struct ChiralCenter {
    int alphaCarbon = -1;
    int nitrogen = -1;
    int carbonylCarbon = -1;
    int betaCarbon = -1;
    int alphaHydrogen = -1;

    /** CA 8, N 6, C 14, CB 10, HA 9 in the atom order of ZMatrix::alanineDipeptide(). */
    static ChiralCenter alanineDipeptide();
};

/** Error, naming the field, unless the indices are in [0, numAtoms) and distinct. */
void validateChiralCenter(const ChiralCenter& center, int numAtoms);

/**
 * V = (N - CA) . ((C - CA) x s), s = CB - HA (or CB - CA without HA): the signed volume spanned by
 * N, C and the side chain seen from CA. V > 0 for L (S configuration for every amino acid but
 * cysteine): looking from HA towards CA, N -> C -> CB runs clockwise (the "CORN" rule: CO, R, N
 * clockwise with H towards the viewer). Subtracting HA uses the fourth substituent too, so a
 * distorted centre is still judged by where CB and HA sit relative to the N-CA-C plane.
 * positions: 3*numAtoms values of one configuration.
 */
double chiralVolume(const ChiralCenter& center, const double* positions);
Chirality chiralityOf(const ChiralCenter& center, const double* positions);
/** For a batch (sample-major, batch x 3*numAtoms, see InternalCoordinates.h); out: batch values. */
void detectChirality(const ChiralCenter& center, int numAtoms, int batch, const double* cartesian, Chirality* out);
std::vector<Chirality> detectChirality(const ChiralCenter& center, int numAtoms, int batch, const double* cartesian);

/**
 * The torsion of a Z-matrix that decides the handedness, and its L range, in RAW internal
 * coordinates (radians, IUPAC sign; see InternalCoordinates::denormalize for normalized values).
 * The sample is L iff t = q[column] (referenceColumn < 0) or t = wrap(q[column] - q[referenceColumn])
 * (wrapped to [-pi, pi)) lies in the open interval (lower, upper), which is (0, pi) or (-pi, 0).
 *
 * How a flow should obtain only L molecules (both are supported; the choice belongs to the flow):
 *  - by construction: with a Z-matrix from ZMatrix::fromBonds, CB is placed by the improper
 *    CB-CA-N-C, a dependent (non-circular) dihedral whose sign alone is the handedness
 *    (referenceColumn = -1). A flow whose support for that column lies inside (lower, upper) (e.g. a
 *    bounded spline or truncated base mapped into the half-interval) produces only L, and nothing is
 *    discarded or counted twice. This is the recommended route for new models.
 *  - by filtering (FAB's route, needed with ZMatrix::alanineDipeptide(), whose CB torsion is
 *    circular and measured relative to phi, so referenceColumn is the phi column): draw, test with
 *    contains() or detectChirality(), drop the D samples. The flow then samples q restricted to L,
 *    whose density is q(x) / P_q(L): log-weights must subtract log P_q(L) (estimated by the kept
 *    fraction) when log Z or other absolute quantities matter, and an energy evaluation spent on a
 *    dropped sample still counts in the evaluation budget (test before evaluating to avoid it).
 */
struct ChiralTorsionRange {
    int column = -1;
    int referenceColumn = -1;
    double lower = 0;
    double upper = 0;
    /** The handedness test above for one raw internal-coordinate vector. */
    bool contains(const double* rawInternal) const;
};

/**
 * Finds the row placing CB (else HA) from CA (its bond partner) with N or C as angle partner, and
 * expresses the handedness through its dihedral: directly when the dihedral partner is the other of
 * N and C, or relative to a dihedral column about the same CA-N or CA-C axis that places the other
 * backbone neighbour (found in either atom order). Error if the Z-matrix has no such torsion (then
 * use detectChirality on Cartesian coordinates).
 */
ChiralTorsionRange findChiralTorsionRange(const ZMatrix& zMatrix, const ChiralCenter& center);

} // namespace cgflow::coords

#endif
