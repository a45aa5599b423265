#ifndef CGFLOW_COORDS_CGMAP_H_
#define CGFLOW_COORDS_CGMAP_H_

#include <Eigen/Core>

#include <string>
#include <vector>

namespace cgflow::coords {

/**
 * How a LinearMap turns atomistic forces into bead forces.
 *
 * Aggregate: b_Ij = 1 for every atom j of bead I (the sum of the forces on the bead's atoms).
 *   Chosen automatically when no atom belongs to two beads.
 * MinimumNorm: for each bead, the minimum-norm weights on that bead's own atoms that satisfy
 *   Σ_j b_Ij c_Jj = δ_IJ. Chosen automatically when beads share atoms.
 * Explicit: weights given by the caller (checked against the same identity).
 */
enum class ForceMapType { Aggregate, MinimumNorm, Explicit };

/** "aggregate", "minimum-norm" or "explicit". */
std::string forceMapTypeName(ForceMapType type);

/**
 * A linear coarse-graining map R_I = Σ_j c_Ij r_j (the same coefficients for x, y and z), with a
 * force map F_I = Σ_j b_Ij f_j that turns atomistic forces f into the instantaneous CG forces
 * whose conditional mean, given R, is the mean force -∇U_PMF(R) that force matching learns.
 *
 * Which force maps are valid. Ciccotti, Kapral & Vanden-Eijnden (ChemPhysChem 6, 1809 (2005))
 * show the mean force is E[b·f + k_BT ∇·b | R] for any vector fields b with b_I·∇Ξ_J = δ_IJ. For
 * a linear map with constant b the divergence vanishes and the condition is
 *     Σ_j b_Ij c_Jj = δ_IJ                                                       (consistency)
 * (shift every atom j by Σ_I b_Ij δR_I: bead J moves by exactly δR_J, so the PMF's derivative is
 * the average of b·∇u). This is the only condition; it is checked for every map built here.
 * Rows of c must sum to 1 so that R moves with the molecule under translations.
 *
 * The automatic choice:
 *  - Atoms belong to at most one bead (the bead's atoms are the j with c_Ij ≠ 0): b_Ij = 1 on
 *    bead I's atoms, 0 elsewhere. Consistency holds because the row sums are 1 and other beads
 *    have no coefficients there. For centre-of-mass beads this is the total force on the bead's
 *    atoms, the force that drives the bead's centre of mass (M_I R̈_I = Σ_{j∈I} f_j), as used in
 *    multiscale coarse-graining (Noid et al., J. Chem. Phys. 128, 244114 (2008)); a slice map is
 *    the special case of one atom per bead.
 *  - Beads share atoms: for each bead I, the minimum-norm weights b_I supported on I's own atoms
 *    with Σ_{j∈I} b_Ij c_Jj = δ_IJ for every bead J (an underdetermined system on I's atoms,
 *    solved by complete orthogonal decomposition). Keeping b_I on I's own atoms keeps the force
 *    map local; the minimum norm keeps the variance of the projected force low. When I's atoms
 *    cannot separate I from the beads that overlap it (e.g. I's atoms are a subset of a bead J
 *    with proportional coefficients), no such b exists and the constructor throws, naming the
 *    bead; such a map needs explicit force coefficients.
 *
 * Positions must be unwrapped (molecules whole), as OpenMM's State returns them by default: a
 * linear combination of atoms split across a periodic boundary is meaningless.
 *
 * Batched arrays are flat row-major doubles: positions/forces batch × numAtoms × 3, CG
 * positions/forces batch × numBeads × 3.
 */
class LinearMap {
public:
    /**
     * coefficients: c, numBeads × numAtoms. Throws Error unless it has at least one row and one
     * column, every entry is finite and every row sums to 1 within 1e-9 (the message names the
     * bead and its sum; nothing is renormalized). The force map is chosen as described above.
     */
    explicit LinearMap(const Eigen::MatrixXd& coefficients);
    /**
     * Explicit force map b (numBeads × numAtoms, finite). Throws Error unless b has c's shape and
     * |Σ_j b_Ij c_Jj - δ_IJ| <= 1e-9 for every I, J (the message names the pair). b may be nonzero
     * outside a bead's atoms: the consistency identity alone makes it valid for a linear map.
     */
    LinearMap(const Eigen::MatrixXd& coefficients, const Eigen::MatrixXd& forceCoefficients);
    /**
     * Centre-of-mass beads: c_Ij = m_j / M_I for j in groups[I]. masses: one per atom (amu), which
     * sets numAtoms; every atom in a group must have a finite positive mass. Throws Error, naming
     * the group, for an empty group, an index outside [0, numAtoms) or an atom listed twice in a
     * group. Groups may overlap (the force map is then MinimumNorm, see above); atoms in no group
     * are simply not mapped.
     */
    static LinearMap centerOfMass(const std::vector<std::vector<int>>& groups, const std::vector<double>& masses);
    /** Centre-of-geometry beads: centerOfMass with equal masses over numAtoms atoms. */
    static LinearMap centerOfGeometry(int numAtoms, const std::vector<std::vector<int>>& groups);

    virtual ~LinearMap() = default;
    // Declared so that the virtual destructor does not suppress moves.
    LinearMap(const LinearMap&) = default;
    LinearMap(LinearMap&&) = default;
    LinearMap& operator=(const LinearMap&) = default;
    LinearMap& operator=(LinearMap&&) = default;

    int getNumAtoms() const { return numAtoms; }
    int getNumBeads() const { return numBeads; }
    ForceMapType getForceMapType() const { return forceMapType; }
    /** The atoms of a bead (the j with c_Ij ≠ 0), ascending. */
    const std::vector<int>& getBeadAtoms(int bead) const;
    /** c as a dense numBeads × numAtoms matrix. */
    Eigen::MatrixXd getCoefficients() const;
    /** b as a dense numBeads × numAtoms matrix. */
    Eigen::MatrixXd getForceCoefficients() const;

    /** R = c r for batchSize configurations (batch × numAtoms × 3 in, batch × numBeads × 3 out). */
    void mapPositions(int batchSize, const double* positions, double* cgPositions) const;
    /** F = b f for batchSize force sets (batch × numAtoms × 3 in, batch × numBeads × 3 out). */
    void mapForces(int batchSize, const double* forces, double* cgForces) const;
    /**
     * The chain rule for a CG potential acting on atoms: for U(r) = V(Ξ(r)), the atom forces are
     * f_j = Σ_I c_Ij F_I with F = -∇V(R). Writes batch × numAtoms × 3 (overwrites). This is how a
     * bead-level bias (e.g. for enhanced-sampling force matching) is applied to an atomistic run.
     */
    void distributeForces(int batchSize, const double* cgForces, double* atomForces) const;

    /** Vector forms: the batch size is inferred; throws Error if the size is not a multiple of 3*numAtoms. */
    std::vector<double> mapPositions(const std::vector<double>& positions) const;
    std::vector<double> mapForces(const std::vector<double>& forces) const;
    /** cgForces: a multiple of 3*numBeads values. */
    std::vector<double> distributeForces(const std::vector<double>& cgForces) const;

protected:
    /**
     * Sparse form, used by the factories so that no dense numBeads × numAtoms matrix is ever
     * formed (a slice of a solvated protein would otherwise cost gigabytes): bead I has
     * coefficient weights[I][k] on atom atoms[I][k]. Validated like the dense form; entries must
     * be in range and not repeated within a bead. argumentName prefixes error messages.
     */
    LinearMap(int numAtoms, const std::vector<std::vector<int>>& atoms,
              const std::vector<std::vector<double>>& weights, const std::string& argumentName);

private:
    /** Compressed rows: entries [rowStart[I], rowStart[I+1]) of index/value belong to bead I. */
    struct SparseRows {
        std::vector<int> rowStart;
        std::vector<int> index;
        std::vector<double> value;
    };
    static LinearMap fromDense(const Eigen::MatrixXd& coefficients);
    void chooseForceMap();
    void setExplicitForceMap(const Eigen::MatrixXd& forceCoefficients);
    static Eigen::MatrixXd toDense(const SparseRows& rows, int numRows, int numColumns);
    static void apply(const SparseRows& rows, int numRows, int numColumns, int batchSize, const double* in,
                      double* out);

    int numAtoms = 0;
    int numBeads = 0;
    ForceMapType forceMapType = ForceMapType::Aggregate;
    std::vector<std::vector<int>> beadAtoms;
    SparseRows positionRows;
    SparseRows forceRows;
};

/**
 * A slice map: bead I is atom atoms[I] (R_I = r_{atoms[I]}), in the order given. As a linear map,
 * c is a selection matrix, and b = c is the force map: the forces on the kept atoms. It is valid
 * because Σ_j b_Ij c_Jj = Σ_j [j = a_I][j = a_J] = δ_IJ for distinct kept atoms; physically, moving
 * a kept atom moves exactly one bead and nothing else, so the derivative of the PMF along a bead
 * is the average force on its atom. The forces on the dropped atoms are simply ignored.
 */
class SliceMap : public LinearMap {
public:
    /**
     * atoms: the kept atoms, in bead order. Throws Error, naming "atoms", if it is empty, an index
     * is outside [0, numAtoms) or an atom is listed twice.
     */
    SliceMap(int numAtoms, const std::vector<int>& atoms);

    /** The kept atoms, in bead order. */
    const std::vector<int>& getAtoms() const { return atoms; }

    /**
     * Alanine dipeptide (ACE-ALA-NME, 22 atoms in the order of OpenMM's/AMBER's templates:
     * 0 HH31, 1 CH3, 2 HH32, 3 HH33, 4 C, 5 O, 6 N, 7 H, 8 CA, 9 HA, 10 CB, 11 HB1, 12 HB2, 13 HB3,
     * 14 C, 15 O, 16 N, 17 H, 18 C, 19 H1, 20 H2, 21 H3), "Heavy Atom" mapping of the CG-BG paper
     * (Chen et al.): the 10 heavy atoms in atom order, {1, 4, 5, 6, 8, 10, 14, 15, 16, 18}.
     */
    static SliceMap alanineDipeptideHeavyAtom();
    /**
     * Alanine dipeptide "Core Beta" mapping of the CG-BG paper (Chen et al., §4 and Fig. 4a: "preserves
     * the backbone and Cβ atoms", 6 beads): the five backbone atoms that define φ (C–N–Cα–C) and
     * ψ (N–Cα–C–N) (paper §B), i.e. C(ACE) 4, N 6, CA 8, C 14, N(NME) 16, plus CB 10, in atom order:
     * {4, 6, 8, 10, 14, 16}. The paper reports φ/ψ Ramachandran plots for this mapping (Figs. 10, 11),
     * which needs exactly these five backbone atoms; the remaining 6th bead is Cβ.
     */
    static SliceMap alanineDipeptideCoreBeta();
    /** By name, for configuration files: "heavy_atom" or "core_beta". */
    static SliceMap alanineDipeptide(const std::string& mapping);

private:
    std::vector<int> atoms;
};

} // namespace cgflow::coords

#endif
