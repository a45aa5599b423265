#ifndef CGFLOW_COORDS_CGMAPDIHEDRAL_H_
#define CGFLOW_COORDS_CGMAPDIHEDRAL_H_

#include "cgflow/coords/Features.h"

#include <array>
#include <vector>

namespace cgflow::coords {

/**
 * CG variables that are dihedral angles s_k = φ_k(r) (e.g. the backbone φ, ψ of a peptide), in
 * radians in (-π, π], with OpenMM's (IUPAC) sign convention: the same value and derivative as a
 * Dihedral Feature of Features.h, which computes them.
 *
 * Two kinds of force are provided, for the two directions forces travel:
 *
 * 1. CG → atoms (a CG potential or an enhanced-sampling bias V(s) acting on an all-atom system):
 *    f_atoms = -Σ_k (∂V/∂s_k) ∇_r s_k, exact by the chain rule (addAtomForces, computeJacobian).
 *
 * 2. Atoms → CG (the instantaneous generalized force whose conditional mean is the mean force
 *    -∂A/∂s_k that force matching learns; mapForces). Ciccotti, Kapral & Vanden-Eijnden
 *    (ChemPhysChem 6, 1809 (2005)) give -∂A/∂s_k = E[b_k·f + k_BT ∇·b_k | s] for any vector fields
 *    b_k with b_k·∇s_l = δ_kl. We use, for each dihedral (i, j, k, l), a rigid rotation about its
 *    central bond j→k of a set S of "rotating atoms" that holds exactly one end atom (i or l) and
 *    neither j nor k:
 *        b(r)_a = σ ω × (r_a - r_k) for a in S, 0 otherwise,    ω = (r_k - r_j)/|r_k - r_j|,
 *    σ = +1 when l ∈ S, -1 when i ∈ S. Rotating S by an angle α changes φ by exactly σα, so
 *    b·∇φ = 1; ω depends only on j and k (not in S) and ∇_a·(ω × r_a) = 0, so ∇·b = 0 and the
 *    generalized force needs no entropic correction:
 *        F_k = b·f = σ ω · Σ_{a∈S} (r_a - r_k) × f_a,
 *    the torque of S's forces about the bond. The other CG dihedrals must not change under the
 *    rotation (b_k·∇s_m = 0): each must have no atom in S, or all its atoms in S ∪ {j, k} (then it
 *    moves rigidly). A larger S (a whole side group) gives a lower-variance estimate, because
 *    forces internal to S ∪ {j, k} cancel in the torque (e.g. the stiff peptide-plane terms);
 *    the default S is the single end atom l (or else i) that no other CG dihedral uses.
 *
 * Arrays are flat row-major doubles: positions/forces batch × numAtoms × 3; angles and generalized
 * forces batch × numDihedrals; Jacobians batch × numDihedrals × numAtoms × 3. One periodic box
 * applies to the whole batch (minimum-image displacements, as in Features); positions need not
 * be wrapped.
 */
class DihedralCGMap {
public:
    /**
     * dihedrals: atoms (i, j, k, l) of each CG dihedral, distinct, in [0, numAtoms).
     * rotatingAtoms: empty (defaults as above), or one set S per dihedral obeying the rules above;
     * an empty S selects the default for that dihedral. Throws Error, naming the dihedral and the
     * rule, for bad indices or an invalid S. If a dihedral has no valid default S (both end atoms
     * used by other dihedrals), the map is still built but mapForces throws until S is given.
     */
    DihedralCGMap(int numAtoms, const std::vector<std::array<int, 4>>& dihedrals,
                  const std::vector<std::vector<int>>& rotatingAtoms = {});

    /**
     * Alanine dipeptide (ACE-ALA-NME, OpenMM/AMBER atom order, see SliceMap): φ = C(4)-N(6)-CA(8)-C(14)
     * and ψ = N(6)-CA(8)-C(14)-N(16). Rotating sets are the whole sides: for φ the acetyl cap and the
     * amide H, {0 HH31, 1 CH3, 2 HH32, 3 HH33, 4 C, 5 O, 7 H}, turned about N→CA; for ψ the carbonyl O
     * and the N-methyl cap, {15 O, 16 N, 17 H, 18 C, 19 H1, 20 H2, 21 H3}, turned about CA→C.
     */
    static DihedralCGMap alanineDipeptidePhiPsi();

    int getNumAtoms() const { return numAtoms; }
    int getNumDihedrals() const { return static_cast<int>(dihedrals.size()); }
    const std::array<int, 4>& getDihedralAtoms(int index) const;
    /** S for that dihedral; empty when it has none (then mapForces throws). */
    const std::vector<int>& getRotatingAtoms(int index) const;
    /** Whether every dihedral has a rotating set, i.e. mapForces can be called. */
    bool canMapForces() const;

    /** s = φ(r) for each configuration: batch × numDihedrals angles in (-π, π]. */
    void mapPositions(int batchSize, const double* positions, double* angles,
                      const PeriodicBox& box = PeriodicBox()) const;
    /** ∂s_k/∂r for each configuration: batch × numDihedrals × numAtoms × 3 (overwritten; zero where undefined). */
    void computeJacobian(int batchSize, const double* positions, double* jacobian,
                         const PeriodicBox& box = PeriodicBox()) const;
    /**
     * ACCUMULATES into atomForces the forces -Σ_k dVds[k] ∇_r s_k of a CG potential V(s), given its
     * derivatives dVds (batch × numDihedrals). Accumulates so that a bias can be added to forces
     * already computed.
     */
    void addAtomForces(int batchSize, const double* positions, const double* dVds, double* atomForces,
                       const PeriodicBox& box = PeriodicBox()) const;
    /** The vector fields b_k(r) described above: batch × numDihedrals × numAtoms × 3 (overwritten). */
    void computeForceMapVectors(int batchSize, const double* positions, double* vectors,
                                const PeriodicBox& box = PeriodicBox()) const;
    /**
     * Generalized forces F_k = b_k·f (batch × numDihedrals): the instantaneous CG forces on the
     * dihedrals whose conditional mean is -∂A/∂s_k. Throws Error if !canMapForces().
     */
    void mapForces(int batchSize, const double* positions, const double* forces, double* generalizedForces,
                   const PeriodicBox& box = PeriodicBox()) const;

    /** Vector forms: the batch size is inferred from positions (a multiple of 3*numAtoms values). */
    std::vector<double> mapPositions(const std::vector<double>& positions, const PeriodicBox& box = PeriodicBox()) const;
    std::vector<double> computeJacobian(const std::vector<double>& positions,
                                        const PeriodicBox& box = PeriodicBox()) const;
    std::vector<double> mapForces(const std::vector<double>& positions, const std::vector<double>& forces,
                                  const PeriodicBox& box = PeriodicBox()) const;

private:
    int numAtoms;
    std::vector<std::array<int, 4>> dihedrals;
    std::vector<std::vector<int>> rotating;
    // One single-feature list per dihedral, so each angle and its gradient is computed alone.
    std::vector<std::vector<Feature>> features;
};

} // namespace cgflow::coords

#endif
