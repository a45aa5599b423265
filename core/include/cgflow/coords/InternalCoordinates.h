#ifndef CGFLOW_COORDS_INTERNALCOORDINATES_H_
#define CGFLOW_COORDS_INTERNALCOORDINATES_H_

#include "cgflow/coords/ZMatrix.h"

#include <Eigen/Core>

#include <cstdint>
#include <vector>

namespace cgflow::coords {

/**
 * Batches are sample-major: sample s occupies [s*dim, (s+1)*dim) of a flat array, i.e. numpy's
 * C-ordered (batch, dim) array, or this row-major matrix with one sample per ROW. Its memory is that
 * of a column-major (dim x batch) Eigen::MatrixXd with one sample per column (the layout of nn::MLP),
 * so either view is an Eigen::Map of the other, without a copy.
 * Cartesian samples hold 3N values (x0, y0, z0, x1, ...) in the atoms' own order, in nm.
 */
using BatchMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/** x -> rotation * x + translation, applied to every atom of one sample. */
struct RigidMotion {
    Eigen::Matrix3d rotation = Eigen::Matrix3d::Identity();
    Eigen::Vector3d translation = Eigen::Vector3d::Zero();

    /**
     * A rotation drawn uniformly (Haar measure, Shoemake's method) from Philox4x32-10 keyed by seed,
     * with the counter built from index: the same (seed, index) gives the same rotation on every
     * machine and however a batch is split. Translation zero.
     */
    static RigidMotion randomRotation(uint64_t seed, uint64_t index);
    /** randomRotation(seed, firstIndex + s) for s = 0..count-1. */
    static std::vector<RigidMotion> randomRotations(uint64_t seed, int count, uint64_t firstIndex = 0);
};

/**
 * The bijection between Cartesian coordinates modulo rigid motions and the internal coordinates of a
 * Z-matrix (column layout: ZMatrix), for batches, with its log-Jacobian and backward passes.
 *
 * Frame: toCartesian() builds every molecule in the canonical frame of its first three Z-matrix
 * atoms (row 0 at the origin, row 1 on the +x axis, row 2 in the xy-plane with y > 0); toInternal()
 * is invariant to translations and rotations, so toCartesian(toInternal(x)) is x moved into that
 * frame (toCanonicalFrame). Mirror images have negated dihedrals. Atoms are placed NeRF-style
 * (natural extension reference frame), each from its three partners.
 *
 * Normalization (optional; off by default), as in FAB/boltzgen: with a reference structure q_ref,
 *   bonds and angles:      z = (q - q_ref) / scale,
 *   dihedrals:             z = wrap(q - q_ref) / scale,  wrap to [-pi, pi),
 * scales 0.005 nm (bonds), 0.15 rad (angles), 0.2 rad (dependent dihedrals) and exactly 1 for
 * circular dihedrals (which therefore live on [-pi, pi)). The reverse map is q = z*scale + q_ref.
 * When a normalization is set, EVERY internal-coordinate input and output of this class (values and
 * gradients) is in z. Dependent dihedrals round-trip for |z| < pi/scale.
 *
 * log|det J| is that of the map internal -> Cartesian, per sample, including the constant
 * sum(log scale) of the normalization. Both directions report this same quantity, so a density
 * transforms as log p_x(x) = log p_z(z) - logDetJ. Two conventions for the reference atoms
 * (JacobianConvention); every later atom contributes log(b^2 |sin theta|).
 *
 * Threads: samples are split into contiguous blocks over getNumThreads() std::threads; every sample
 * is computed alone, so results are bit-identical for every thread count. The object is not modified
 * by the transforms, so one object may be used from several threads at once.
 *
 * Degenerate inputs (zero bonds, collinear partners, non-finite values) are not errors: they give
 * non-finite or zero results for that sample only, never an exception.
 */
class InternalCoordinates {
public:
    enum class JacobianConvention {
        /**
         * The density of internal coordinates implied by a Cartesian density in all 3N coordinates,
         * with the six rigid-body DoF integrated out: reference atoms contribute log(b1^2) and
         * log(b2^2 |sin theta2|). This is |det| of the full 3N x 3N Jacobian of
         * (internal, translation, rotation) -> x at the identity rotation, so
         * p_int = exp(-beta U(x)) |det J| is the exact Boltzmann marginal of the internal coordinates.
         */
        Full,
        /**
         * |det| of the (3N-6) x (3N-6) Jacobian from the internal coordinates to the Cartesian
         * coordinates left free by the canonical frame (x of row 1; x, y of row 2; all of the rest):
         * the reference atoms contribute log(b2) only. This is boltzgen's/FAB's value; it differs from
         * Full by log(b1^2 b2 |sin theta2|), a function of the three reference coordinates.
         */
        Frame
    };

    /** The per-type scales of setNormalization(reference, scales). All must be finite and positive. */
    struct NormalizationScales {
        double bond = 0.005;
        double angle = 0.15;
        double dihedral = 0.2;
    };

    explicit InternalCoordinates(ZMatrix zMatrix);

    const ZMatrix& getZMatrix() const { return zMatrix; }
    int getNumAtoms() const { return zMatrix.getNumAtoms(); }
    int getNumCartesian() const { return 3 * zMatrix.getNumAtoms(); }
    int getNumInternal() const { return zMatrix.getNumInternal(); }

    /** Default Full. */
    void setJacobianConvention(JacobianConvention convention) { this->convention = convention; }
    JacobianConvention getJacobianConvention() const { return convention; }

    /** numThreads >= 1 (default 1); 0 means std::thread::hardware_concurrency(). Negative -> Error. */
    void setNumThreads(int numThreads);
    int getNumThreads() const { return numThreads; }

    /**
     * Shift by the internal coordinates of referenceCartesian (3N values, typically an energy-minimized
     * structure) and scale per type; circular dihedrals get scale 1. Error if the reference gives a
     * non-finite internal coordinate (coincident or collinear partners) or a scale is not > 0.
     */
    void setNormalization(const double* referenceCartesian, const NormalizationScales& scales);
    /** The same with the default scales (0.005 nm, 0.15 rad, 0.2 rad). */
    void setNormalization(const double* referenceCartesian) { setNormalization(referenceCartesian, NormalizationScales()); }
    /**
     * Explicit per-column shift and scale (getNumInternal() values each). Scales must be finite and
     * > 0, and exactly 1 on circular columns (a scaled circle is no longer [-pi, pi)).
     */
    void setNormalization(std::vector<double> shift, std::vector<double> scale);
    void clearNormalization();
    bool isNormalized() const { return normalized; }
    /** Per column; zeros and ones without a normalization. */
    const std::vector<double>& getShift() const { return shift; }
    const std::vector<double>& getScale() const { return scale; }
    /** sum(log scale): the constant part of logDetJ (0 without a normalization). */
    double getLogScaleSum() const { return logScaleSum; }

    /** raw internal coordinates -> z, and back (identity without a normalization). In-place allowed. */
    void normalize(int batch, const double* raw, double* normalized) const;
    void denormalize(int batch, const double* normalized, double* raw) const;

    /**
     * cartesian: batch x 3N. internal: batch x getNumInternal() (written). logDetJ: batch values or
     * nullptr. Raw dihedrals are in (-pi, pi], raw angles in [0, pi].
     */
    void toInternal(int batch, const double* cartesian, double* internal, double* logDetJ = nullptr) const;
    /**
     * Whether raw internal coordinates (getNumInternal() values, denormalized) lie in the principal domain:
     * bonds > 0, angles in (0, pi), dependent (non-circular) dihedrals within pi of their reference (the
     * normalization's shift; without a normalization, in [-pi, pi]: |z| <= pi / scale). Outside it the map
     * to Cartesians is many-to-one ((b, theta, phi) and (-b, pi - theta, phi + pi) place an atom at the
     * same point; a dependent dihedral phi and phi + 2 pi too), so the density of the positions is not
     * that of one preimage. Circular dihedrals are periodic and always inside.
     */
    bool inPrincipalDomain(const double* raw) const;
    /**
     * internal: batch x getNumInternal(). cartesian: batch x 3N (written), in the canonical frame, then
     * moved by motions[s] if motions is not nullptr (batch entries). logDetJ: batch values or nullptr.
     * A sample outside the principal domain (inPrincipalDomain) gets NaN positions and a NaN logDetJ,
     * so that a caller gives it weight zero (never an exception); toCartesianBackward still differentiates
     * the construction there.
     */
    void toCartesian(int batch, const double* internal, double* cartesian, double* logDetJ = nullptr,
                     const RigidMotion* motions = nullptr) const;
    /**
     * Vector-Jacobian product of toCartesian at `internal` (with the same motions): given
     * dLdCartesian (batch x 3N, or nullptr for zero) and dLdLogDetJ (batch values, or nullptr for
     * zero), writes dLdInternal (batch x getNumInternal()) = J^T dLdCartesian + dLdLogDetJ *
     * d(logDetJ)/d(internal). With dLdCartesian = nullptr and dLdLogDetJ = ones this is the gradient
     * of log|det J| with respect to the internal coordinates.
     */
    void toCartesianBackward(int batch, const double* internal, const double* dLdCartesian, const double* dLdLogDetJ,
                             double* dLdInternal, const RigidMotion* motions = nullptr) const;
    /**
     * Vector-Jacobian product of toInternal at `cartesian`: given dLdInternal (batch x
     * getNumInternal(), or nullptr for zero) and dLdLogDetJ (batch values, or nullptr), writes
     * dLdCartesian (batch x 3N). The result is orthogonal to rigid motions of each sample.
     */
    void toInternalBackward(int batch, const double* cartesian, const double* dLdInternal, const double* dLdLogDetJ,
                            double* dLdCartesian) const;
    /** Moves each sample into the canonical frame (equal to toCartesian(toInternal(x)) up to rounding). */
    void toCanonicalFrame(int batch, const double* cartesian, double* canonical) const;

    /** Eigen forms of the above (rows = samples; column counts checked, Error on mismatch). */
    BatchMatrix toInternal(const BatchMatrix& cartesian, Eigen::VectorXd* logDetJ = nullptr) const;
    BatchMatrix toCartesian(const BatchMatrix& internal, Eigen::VectorXd* logDetJ = nullptr,
                            const std::vector<RigidMotion>* motions = nullptr) const;
    BatchMatrix toCartesianBackward(const BatchMatrix& internal, const BatchMatrix& dLdCartesian,
                                    const Eigen::VectorXd* dLdLogDetJ = nullptr,
                                    const std::vector<RigidMotion>* motions = nullptr) const;
    BatchMatrix toInternalBackward(const BatchMatrix& cartesian, const BatchMatrix& dLdInternal,
                                   const Eigen::VectorXd* dLdLogDetJ = nullptr) const;
    BatchMatrix toCanonicalFrame(const BatchMatrix& cartesian) const;

private:
    struct Row {
        int atom, bond, angle, dihedral;
    };
    void toInternalRaw(const double* x, double* q) const;
    /** Places every atom from raw internal coordinates, in the canonical frame. */
    void placeRaw(const double* q, double* x) const;
    double logDetRaw(const double* q) const;
    void logDetGradientRaw(const double* q, double weight, double* grad) const;
    void checkBatch(int batch, const void* in, const char* inName, int inDim, const void* out, const char* outName,
                    int outDim, const char* function) const;

    ZMatrix zMatrix;
    std::vector<Row> rows;
    std::vector<bool> isDihedral;
    JacobianConvention convention = JacobianConvention::Full;
    int numThreads = 1;
    bool normalized = false;
    std::vector<double> shift, scale;
    double logScaleSum = 0;
};

} // namespace cgflow::coords

#endif
