#ifndef CGFLOW_COORDS_FEATURES_H_
#define CGFLOW_COORDS_FEATURES_H_

#include <Eigen/Core>

#include <string>
#include <vector>

namespace cgflow::coords {

/**
 * Triclinic box in OpenMM's reduced form: a = (ax,0,0), b = (bx,by,0), c = (cx,cy,cz), with
 * positive diagonal. a, b and c are only read when periodic is true.
 */
struct PeriodicBox {
    bool periodic = false;
    Eigen::Vector3d a = Eigen::Vector3d::Zero();
    Eigen::Vector3d b = Eigen::Vector3d::Zero();
    Eigen::Vector3d c = Eigen::Vector3d::Zero();
};

/**
 * to - from, reduced to the minimum image when the box is periodic. Same algorithm as OpenMM's
 * Reference platform, so both agree on which image is nearest: subtract c*n_c, then b*n_b,
 * then a*n_a, each n = floor(d_k/box_kk + 0.5) on the current d (OpenMM's rounding of ties).
 */
Eigen::Vector3d displacement(const Eigen::Vector3d& from, const Eigen::Vector3d& to, const PeriodicBox& box);

enum class FeatureType { Distance, Angle, Dihedral, Coordinate };

/** "distance", "angle", "dihedral" or "coordinate". */
std::string featureTypeName(FeatureType type);

struct Feature {
    FeatureType type = FeatureType::Distance;
    std::vector<int> particles; // 2, 3, 4, 1 particles respectively
    int axis = 0;               // Coordinate only: 0,1,2 = x,y,z
    double period = 0;          // Coordinate only: 0 = raw coordinate; >0 = encoded as (cos(2πx/P), sin(2πx/P))
    /** Distance 1, Angle 1 (radians), Dihedral 2 (cos φ, sin φ), Coordinate 1 (raw) or 2 (periodic). */
    int getWidth() const;
};

/** Number of particles a feature type takes: 2, 3, 4 or 1. */
int numParticlesOf(FeatureType type);

/**
 * Throws Error, naming nameForErrors, for a wrong particle count, an index outside
 * [0, numParticles), repeated particles in a distance/angle/dihedral, an axis not in 0..2 or a
 * negative or non-finite period.
 */
void validateFeature(const Feature& feature, int numParticles, const std::string& nameForErrors);

/** Sum of getWidth() over the features. */
int totalWidth(const std::vector<Feature>& features);

/**
 * positions: 3*numParticles doubles (x0,y0,z0,x1,...). out: totalWidth(features) values, the
 * features concatenated in order. Features must have passed validateFeature().
 *
 * Angle (i,j,k) is the angle at j between j->i and j->k, as atan2(|u×v|, u·v), which stays
 * accurate near 0 and π. Dihedral (i,j,k,l) uses OpenMM's (IUPAC) sign convention,
 * φ = atan2(|b2| b1·(b2×b3), (b1×b2)·(b2×b3)) with b1 = j-i, b2 = k-j, b3 = l-k. Inter-particle
 * vectors use displacement() (minimum image when periodic); coordinates are read raw, unwrapped.
 */
void computeFeatures(const std::vector<Feature>& features, const double* positions, const PeriodicBox& box,
                     double* out);

/**
 * Chain rule: given dL/dfeatures (totalWidth values), ACCUMULATE dL/dpositions into grad
 * (3*numParticles). Where a feature is not differentiable (coincident particles for a
 * distance, collinear ones for an angle or dihedral) its contribution is taken as zero.
 */
void backpropFeatures(const std::vector<Feature>& features, const double* positions, const PeriodicBox& box,
                      const double* dLdFeatures, double* grad);

/**
 * Forward mode, the transpose of backpropFeatures(): out (totalWidth values, overwritten) = J t,
 * the directional derivative of the features along the position tangent t (3*numParticles), with
 * J = d features / d positions. Force matching needs both products: the force is -J^T dU/df
 * (backpropFeatures), and the loss gradient with respect to dU/df is J applied to the loss
 * gradient with respect to the force. Each row of J is backpropFeatures() of a unit vector, taken
 * on the feature's own particles alone (O(1) per row, O(features) in all), so both directions share
 * one set of derivative formulas. Where a feature is not differentiable its row is zero, as there.
 */
void jvpFeatures(const std::vector<Feature>& features, const double* positions, const PeriodicBox& box,
                 const double* tangent, double* out);

} // namespace cgflow::coords

#endif
