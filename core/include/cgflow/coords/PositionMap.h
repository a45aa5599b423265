#ifndef CGFLOW_COORDS_POSITIONMAP_H_
#define CGFLOW_COORDS_POSITIONMAP_H_

#include "cgflow/coords/InternalCoordinates.h"

#include <nlohmann/json.hpp>

#include <array>
#include <memory>
#include <vector>

namespace cgflow::coords {

/**
 * How the output vector y of a flow becomes the positions of a System's particles, and back: the
 * part of a Boltzmann generator between the flow and the Context.
 *
 *  - Cartesian: y has one entry per slot (particle, axis) in nm. Coordinates that are in no slot are
 *    copied from a template (the Context's current positions), so a model may move only some
 *    particles or only some axes (a 2-D model on particle 0's x and y; a CG System whose particles'
 *    x-coordinates carry φ and ψ). log|det J| = 0.
 *  - Internal: y is the (optionally normalized) internal-coordinate vector of an
 *    InternalCoordinates over ALL particles (Full Jacobian convention unless the caller changed it).
 *    The molecule is built in the canonical frame and then translated so that its centroid is the
 *    centroid of the template; the rigid-body degrees of freedom carry no energy for an isolated
 *    molecule, so this only keeps the molecule where the Context had it.
 *
 *  - Internal with condition columns (a conditional Boltzmann generator, e.g. x_FG given the CG point
 *    s = (phi, psi) of Schopmans & Friederich): some circular dihedral columns are not produced by the
 *    flow but taken from a condition vector s (rad, the physical dihedral; one vector per sample). y
 *    then holds the remaining columns in order, and the density is the conditional one, q(x | s).
 *    Positions whose condition columns differ from s are outside the support of q( . | s):
 *    fromPositions reports each sample's own condition values, so a caller can tell.
 *
 * Either way the density of the positions (modulo the fixed coordinates or rigid motions) is
 *   log q(x) = log q_flow(y) - logDetJ(y),
 * with logDetJ from InternalCoordinates (including the normalization's sum(log scale)), or 0.
 *
 * Batches: y is (dimension x n) column-major, one sample per column (Flow's layout, which is the same
 * memory as a sample-major n x dimension array); positions are n x 3N sample-major (x0, y0, z0, x1,
 * ...), as in InternalCoordinates.
 */
class PositionMap {
public:
    enum class Type { Cartesian, Internal };
    /** (particle, axis) with axis 0, 1, 2 for x, y, z. */
    using Slot = std::array<int, 2>;
    /** Internal column `column` (a circular dihedral) is the condition vector's entry `condition`. */
    struct ConditionColumn {
        int column;
        int condition;
    };

    /**
     * Errors (naming the argument): numParticles < 1, no slots, a particle out of range, an axis not
     * in {0, 1, 2}, a slot listed twice.
     */
    static PositionMap cartesian(int numParticles, std::vector<Slot> slots);
    /** All three coordinates of every particle, in order (y = the flattened positions). */
    static PositionMap allCartesian(int numParticles);
    /**
     * Error if the molecule has fewer than 3 atoms (no canonical frame to build it in). Condition
     * columns (optional): each column must be a circular dihedral of the Z-matrix, listed once, and each
     * condition index >= 0 (errors name the entry).
     */
    static PositionMap internal(InternalCoordinates coordinates, std::vector<ConditionColumn> conditionColumns = {});

    Type getType() const { return type; }
    int getDimension() const;
    int getNumParticles() const { return numParticles; }
    /** Cartesian only (Error otherwise). */
    const std::vector<Slot>& getSlots() const;
    /** Internal only (Error otherwise). */
    const InternalCoordinates& getInternalCoordinates() const;
    /** Per dimension of y: true for the circular dihedrals of an internal map, false otherwise. */
    std::vector<bool> getCircular() const;
    /** The condition columns of an internal map (empty for an unconditional map). */
    const std::vector<ConditionColumn>& getConditionColumns() const { return conditionColumns; }
    /** How many condition values a sample needs: 1 + the largest condition index, 0 without condition columns. */
    int getNumConditionValues() const;
    /**
     * Internal maps: per internal column, the dimension of y that fills it, or -1 - k for condition
     * column k. Cartesian maps: empty.
     */
    const std::vector<int>& getColumnSources() const { return columnSources; }
    /** Internal maps: the internal column dimension d of y fills (d for an unconditional map). */
    int getColumnOfDimension(int d) const;

    /**
     * y (dimension x n) -> positions (n x 3N, written). templatePositions: 3N values (nm), required;
     * for a Cartesian map it supplies the coordinates outside the slots, for an internal one the
     * centroid. logDetJ: n values (written) or nullptr. Non-finite y give non-finite positions for
     * that sample only (never an exception), so a caller can count and reject them. condition:
     * getNumConditionValues() values per sample (n x that, sample-major), required exactly when the map
     * has condition columns.
     */
    void toPositions(int n, const double* y, const double* templatePositions, double* positions,
                     double* logDetJ = nullptr, const double* condition = nullptr) const;
    /**
     * The inverse: positions (n x 3N) -> y (dimension x n, written) and logDetJ (the same quantity as
     * toPositions reports, so log q(x) = log q_flow(y) - logDetJ). For an internal map the positions
     * may be in any frame. conditionValues (n x the number of condition columns, written, or nullptr):
     * the dihedral each condition column has in the positions, in [-pi, pi).
     */
    void fromPositions(int n, const double* positions, double* y, double* logDetJ = nullptr,
                       double* conditionValues = nullptr) const;

    /**
     * {"type": "cartesian", "num_particles": N, "slots": [[p, axis], ...]} or
     * {"type": "internal", "z_matrix": [[atom, bond, angle, dihedral, circular], ...] (-1 for no
     * partner), "jacobian": "full" | "frame", "normalization": null | {"shift": [...], "scale": [...]},
     * and only for a conditional map "condition_columns": [[column, condition], ...]}. Numbers round-trip
     * exactly.
     */
    nlohmann::json toJson() const;
    /** Inverse of toJson; Error naming the field for anything malformed or unknown. */
    static PositionMap fromJson(const nlohmann::json& json);

private:
    PositionMap() = default;

    Type type = Type::Cartesian;
    int numParticles = 0;
    std::vector<Slot> slots;
    std::shared_ptr<const InternalCoordinates> coordinates;
    std::vector<ConditionColumn> conditionColumns;
    std::vector<int> columnSources;
};

} // namespace cgflow::coords

#endif
