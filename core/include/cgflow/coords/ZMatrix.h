#ifndef CGFLOW_COORDS_ZMATRIX_H_
#define CGFLOW_COORDS_ZMATRIX_H_

#include <string>
#include <utility>
#include <vector>

namespace cgflow::coords {

/**
 * How one atom is placed from atoms placed before it: at distance |x_atom - x_bondPartner|, at the
 * angle atom-bondPartner-anglePartner (vertex at bondPartner) and at the dihedral
 * atom-bondPartner-anglePartner-dihedralPartner, all in the conventions of Features.h (dihedral
 * with OpenMM's/IUPAC sign). Unused partners are -1.
 *
 * circular marks a dihedral that is a genuinely free torsion (rotation about a single bond that is
 * not in a ring): a flow must treat it as a coordinate on the circle. A non-circular ("dependent")
 * dihedral is an improper or a sibling dihedral (e.g. the second hydrogen of a methyl group measured
 * from the first) whose value is pinned by the local geometry, so it may be treated as a real
 * number near its reference value.
 */
struct ZMatrixRow {
    int atom = -1;
    int bondPartner = -1;
    int anglePartner = -1;
    int dihedralPartner = -1;
    bool circular = false;
};

enum class InternalCoordinateType { Bond, Angle, Dihedral };

/**
 * A Z-matrix: one row per atom, in placement order. The first three rows are the reference atoms
 * that fix the frame: row 0 has no partners (the origin), row 1 only a bond partner (row 0's atom;
 * 1 DoF), row 2 a bond and an angle partner (the two earlier atoms in either role; 2 DoF). Every
 * later row has all three partners, placed earlier and distinct (3 DoF). An N-atom molecule thus has
 * 3N-6 internal degrees of freedom (N >= 3; 1 for N = 2, 0 for N = 1).
 *
 * Column layout of an internal-coordinate vector (InternalCoordinates uses it): row 1's bond is
 * column 0; row 2's bond and angle are columns 1 and 2; row r >= 3 owns columns 3r-6 (bond),
 * 3r-5 (angle), 3r-4 (dihedral). With rows ordered as in alanineDipeptide() this is the layout of
 * the FAB/boltzgen internal-coordinate vector up to a permutation of the per-atom triples.
 */
class ZMatrix {
public:
    /** An empty Z-matrix (no atoms). */
    ZMatrix() = default;
    /**
     * Explicit rows in placement order (the manual override). Throws Error, naming the row and the
     * field, unless: there is at least one row; every atom 0..rows.size()-1 appears exactly once;
     * partners are placed in earlier rows, distinct from each other and from the atom; rows 0-2 have
     * exactly the partners described above and are not marked circular. Partners need not be bonded
     * (that is the caller's choice).
     */
    explicit ZMatrix(std::vector<ZMatrixRow> rows);

    /**
     * Builds a Z-matrix from a bond graph. bonds: pairs of atom indices in [0, numAtoms), no self
     * bonds, no duplicates (in either order); the graph must be connected. masses: empty, or one
     * finite non-negative value per atom (amu); they only break ties (heavier atoms first).
     *
     * The backbone is the set of atoms with two or more bonds (the heavy-atom skeleton of an
     * ordinary molecule; hydrogens and other terminal atoms hang off it). It is placed first, by a
     * depth-first walk from one end of its longest path (the end with the lower index), always
     * following the deepest branch first so the main chain comes before side chains; then the
     * terminal atoms, grouped by the atom they are bonded to, in backbone order (heavier first).
     * Each atom a is bonded to its bond partner p, its angle partner is p's own bond partner (or,
     * for the first atom, p's first-placed neighbour), and its dihedral partner is chosen so that
     * only free torsions are circular:
     *   - if p already has another placed neighbour s besides the angle partner, a is placed by the
     *     improper/sibling dihedral a-p-q-s (a terminal atom prefers the first terminal sibling,
     *     e.g. the first hydrogen of a methyl or NH3 group); such dihedrals are not circular;
     *   - otherwise a is placed by the proper torsion a-p-q-r about the bond p-q, which is the one
     *     circular torsion of that bond if the bond is not in a ring (ring torsions are dependent).
     * Hence every rotatable bond contributes exactly one circular torsion (methyl rotors included).
     */
    static ZMatrix fromBonds(int numAtoms, const std::vector<std::pair<int, int>>& bonds,
                             const std::vector<double>& masses = {});

    /**
     * The Z-matrix of alanine dipeptide (ACE-ALA-NME, 22 atoms in the order of OpenMM's and
     * openmmtools' alanine-dipeptide files: 0 HH31, 1 CH3, 2 HH32, 3 HH33, 4 C, 5 O, 6 N, 7 H,
     * 8 CA, 9 HA, 10 CB, 11 HB1, 12 HB2, 13 HB3, 14 C, 15 O, 16 N, 17 H, 18 C, 19 H1, 20 H2, 21 H3)
     * used by Midgley et al. (FAB) and by Schopmans & Friederich; see ZMatrix.cpp for the source and
     * the 12 circular torsions. 60 internal DoF; reference atoms CA, N, C (8, 6, 14).
     */
    static ZMatrix alanineDipeptide();

    int getNumAtoms() const { return static_cast<int>(rows.size()); }
    /** Number of internal coordinates (columns): 3N-6 for N >= 3. */
    int getNumInternal() const;
    const std::vector<ZMatrixRow>& getRows() const { return rows; }
    /** Row in [0, getNumAtoms()), else Error. */
    const ZMatrixRow& getRow(int row) const;
    /** The row that places atom, else Error. */
    int getRowOfAtom(int atom) const;
    /** The atoms of rows 0, 1, 2 (fewer for tiny molecules). */
    std::vector<int> getReferenceAtoms() const;

    /** Columns owned by a row, -1 where the row has no such coordinate. Row out of range -> Error. */
    int getBondColumn(int row) const;
    int getAngleColumn(int row) const;
    int getDihedralColumn(int row) const;
    /** Column in [0, getNumInternal()), else Error. */
    InternalCoordinateType getColumnType(int column) const;
    int getColumnRow(int column) const;
    bool isCircularColumn(int column) const;
    /** The 2, 3 or 4 atoms that define a column: atom, bondPartner[, anglePartner[, dihedralPartner]]. */
    std::vector<int> getColumnAtoms(int column) const;
    /** E.g. "dihedral(4,6,8,14) circular", for messages and plots. */
    std::string describeColumn(int column) const;

    /** Columns of the circular dihedrals, ascending. */
    std::vector<int> getCircularColumns() const;
    int getNumCircular() const;

private:
    void checkColumn(int column) const;

    std::vector<ZMatrixRow> rows;
    std::vector<int> rowOfAtom;
};

} // namespace cgflow::coords

#endif
