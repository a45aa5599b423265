#include "cgflow/coords/Features.h"

#include "cgflow/Error.h"

#include <Eigen/Geometry>

#include <cmath>

namespace cgflow::coords {

using Eigen::Vector3d;

namespace {

constexpr double twoPi = 6.283185307179586476925286766559;

Vector3d positionOf(const double* positions, int particle) {
    return Vector3d(positions[3 * particle], positions[3 * particle + 1], positions[3 * particle + 2]);
}

void addGradient(double* grad, int particle, const Vector3d& g) {
    grad[3 * particle] += g[0];
    grad[3 * particle + 1] += g[1];
    grad[3 * particle + 2] += g[2];
}

Vector3d vectorBetween(const double* positions, int from, int to, const PeriodicBox& box) {
    return displacement(positionOf(positions, from), positionOf(positions, to), box);
}

double dihedralAngle(const Vector3d& b1, const Vector3d& b2, const Vector3d& b3) {
    Vector3d m = b1.cross(b2);
    Vector3d n = b2.cross(b3);
    return std::atan2(b2.norm() * b1.dot(n), m.dot(n));
}

} // namespace

Vector3d displacement(const Vector3d& from, const Vector3d& to, const PeriodicBox& box) {
    Vector3d d = to - from;
    if (box.periodic) {
        d -= box.c * std::floor(d[2] / box.c[2] + 0.5);
        d -= box.b * std::floor(d[1] / box.b[1] + 0.5);
        d -= box.a * std::floor(d[0] / box.a[0] + 0.5);
    }
    return d;
}

std::string featureTypeName(FeatureType type) {
    switch (type) {
    case FeatureType::Distance: return "distance";
    case FeatureType::Angle: return "angle";
    case FeatureType::Dihedral: return "dihedral";
    case FeatureType::Coordinate: return "coordinate";
    }
    throw Error("invalid FeatureType value " + std::to_string(static_cast<int>(type)));
}

int numParticlesOf(FeatureType type) {
    switch (type) {
    case FeatureType::Distance: return 2;
    case FeatureType::Angle: return 3;
    case FeatureType::Dihedral: return 4;
    case FeatureType::Coordinate: return 1;
    }
    throw Error("invalid FeatureType value " + std::to_string(static_cast<int>(type)));
}

int Feature::getWidth() const {
    switch (type) {
    case FeatureType::Distance: return 1;
    case FeatureType::Angle: return 1;
    case FeatureType::Dihedral: return 2;
    case FeatureType::Coordinate: return period > 0 ? 2 : 1;
    }
    throw Error("invalid FeatureType value " + std::to_string(static_cast<int>(type)));
}

void validateFeature(const Feature& feature, int numParticles, const std::string& nameForErrors) {
    const std::string typeName = featureTypeName(feature.type);
    const int expected = numParticlesOf(feature.type);
    if (static_cast<int>(feature.particles.size()) != expected)
        throw Error(nameForErrors + ": a " + typeName + " feature needs " + std::to_string(expected) +
                    (expected == 1 ? " particle" : " particles") + ", got " + std::to_string(feature.particles.size()));
    for (int p : feature.particles)
        if (p < 0 || p >= numParticles)
            throw Error(nameForErrors + ": particle index " + std::to_string(p) + " out of range [0, " +
                        std::to_string(numParticles) + ")");
    for (size_t i = 0; i < feature.particles.size(); i++)
        for (size_t j = i + 1; j < feature.particles.size(); j++)
            if (feature.particles[i] == feature.particles[j])
                throw Error(nameForErrors + ": particle " + std::to_string(feature.particles[i]) +
                            " appears twice in a " + typeName + " feature; its particles must be distinct");
    if (feature.type == FeatureType::Coordinate) {
        if (feature.axis < 0 || feature.axis > 2)
            throw Error(nameForErrors + ": coordinate axis must be 0, 1 or 2 (x, y, z), got " +
                        std::to_string(feature.axis));
        if (!std::isfinite(feature.period) || feature.period < 0)
            throw Error(nameForErrors + ": coordinate period must be 0 (raw) or a finite positive length, got " +
                        std::to_string(feature.period));
    }
}

int totalWidth(const std::vector<Feature>& features) {
    int width = 0;
    for (const Feature& f : features)
        width += f.getWidth();
    return width;
}

void computeFeatures(const std::vector<Feature>& features, const double* positions, const PeriodicBox& box,
                     double* out) {
    for (const Feature& f : features) {
        const std::vector<int>& p = f.particles;
        switch (f.type) {
        case FeatureType::Distance:
            *out++ = vectorBetween(positions, p[0], p[1], box).norm();
            break;
        case FeatureType::Angle: {
            Vector3d u = vectorBetween(positions, p[1], p[0], box);
            Vector3d v = vectorBetween(positions, p[1], p[2], box);
            *out++ = std::atan2(u.cross(v).norm(), u.dot(v));
            break;
        }
        case FeatureType::Dihedral: {
            double phi = dihedralAngle(vectorBetween(positions, p[0], p[1], box),
                                       vectorBetween(positions, p[1], p[2], box),
                                       vectorBetween(positions, p[2], p[3], box));
            *out++ = std::cos(phi);
            *out++ = std::sin(phi);
            break;
        }
        case FeatureType::Coordinate: {
            double x = positions[3 * p[0] + f.axis];
            if (f.period > 0) {
                double angle = twoPi * x / f.period;
                *out++ = std::cos(angle);
                *out++ = std::sin(angle);
            } else
                *out++ = x;
            break;
        }
        }
    }
}

void backpropFeatures(const std::vector<Feature>& features, const double* positions, const PeriodicBox& box,
                      const double* dLdFeatures, double* grad) {
    for (const Feature& f : features) {
        const std::vector<int>& p = f.particles;
        switch (f.type) {
        case FeatureType::Distance: {
            double g = *dLdFeatures++;
            Vector3d d = vectorBetween(positions, p[0], p[1], box);
            double r = d.norm();
            // Coincident particles (r == 0) have no defined gradient: add none. The test is written
            // !(r <= 0), not r > 0, so that a NaN geometry gives NaN gradients (and forces) rather
            // than silent zeros that an integrator could not tell from a force-free state.
            if (!(r <= 0)) {
                Vector3d dr = (g / r) * d;
                addGradient(grad, p[1], dr);
                addGradient(grad, p[0], -dr);
            }
            break;
        }
        case FeatureType::Angle: {
            double g = *dLdFeatures++;
            Vector3d u = vectorBetween(positions, p[1], p[0], box);
            Vector3d v = vectorBetween(positions, p[1], p[2], box);
            Vector3d w = u.cross(v);
            double s = w.norm();
            if (!(s <= 0)) {  // collinear: no gradient; NaN: NaN gradients (see Distance)
                // dθ/du is in the u-v plane, perpendicular to u and pointing away from v, with
                // magnitude 1/|u|: exactly (u×w)/(|u|²|w|). The cross-product form avoids the
                // 1/sinθ cancellation of differentiating acos(u·v/(|u||v|)).
                Vector3d du = (g / (u.squaredNorm() * s)) * u.cross(w);
                Vector3d dv = (-g / (v.squaredNorm() * s)) * v.cross(w);
                addGradient(grad, p[0], du);
                addGradient(grad, p[2], dv);
                addGradient(grad, p[1], -(du + dv));
            }
            break;
        }
        case FeatureType::Dihedral: {
            double gCos = *dLdFeatures++;
            double gSin = *dLdFeatures++;
            Vector3d b1 = vectorBetween(positions, p[0], p[1], box);
            Vector3d b2 = vectorBetween(positions, p[1], p[2], box);
            Vector3d b3 = vectorBetween(positions, p[2], p[3], box);
            Vector3d m = b1.cross(b2);
            Vector3d n = b2.cross(b3);
            double mm = m.squaredNorm(), nn = n.squaredNorm(), b2b2 = b2.squaredNorm();
            if (!(mm <= 0) && !(nn <= 0)) {  // a collinear triple: no gradient; NaN: NaN gradients
                double phi = std::atan2(std::sqrt(b2b2) * b1.dot(n), m.dot(n));
                double g = -std::sin(phi) * gCos + std::cos(phi) * gSin;
                // Blondel & Karplus (J. Comput. Chem. 17, 1132 (1996)): the end atoms move along the
                // plane normals; the middle atoms take the rest, split by how far the end atoms'
                // projections lie along the central bond, so that net force and torque vanish.
                double b2norm = std::sqrt(b2b2);
                Vector3d gi = (-g * b2norm / mm) * m;
                Vector3d gl = (g * b2norm / nn) * n;
                double fi = b1.dot(b2) / b2b2;
                double fl = b3.dot(b2) / b2b2;
                Vector3d gj = -gi - fi * gi + fl * gl;
                Vector3d gk = -gl + fi * gi - fl * gl;
                addGradient(grad, p[0], gi);
                addGradient(grad, p[1], gj);
                addGradient(grad, p[2], gk);
                addGradient(grad, p[3], gl);
            }
            break;
        }
        case FeatureType::Coordinate: {
            double* target = grad + 3 * p[0] + f.axis;
            if (f.period > 0) {
                double gCos = *dLdFeatures++;
                double gSin = *dLdFeatures++;
                double scale = twoPi / f.period;
                double angle = scale * positions[3 * p[0] + f.axis];
                *target += scale * (-std::sin(angle) * gCos + std::cos(angle) * gSin);
            } else
                *target += *dLdFeatures++;
            break;
        }
        }
    }
}

void jvpFeatures(const std::vector<Feature>& features, const double* positions, const PeriodicBox& box,
                 const double* tangent, double* out) {
    // Row k of J is backpropFeatures() of the unit vector e_k. Each feature touches at most four
    // particles, so it is back-propagated alone on a local copy of them (re-indexed 0..3): the
    // derivative formulas exist once, and a row costs O(1), not O(features). The minimum-image
    // shift is the same for the copies, as displacements depend only on the particles' positions.
    for (const Feature& f : features) {
        const int count = static_cast<int>(f.particles.size());
        Feature local = f;
        double localPositions[12], localTangent[12];
        for (int q = 0; q < count; q++) {
            local.particles[q] = q;
            for (int a = 0; a < 3; a++) {
                localPositions[3 * q + a] = positions[3 * f.particles[q] + a];
                localTangent[3 * q + a] = tangent[3 * f.particles[q] + a];
            }
        }
        const std::vector<Feature> one = {local};
        for (int k = 0; k < f.getWidth(); k++) {
            double unit[2] = {0.0, 0.0}, row[12] = {};
            unit[k] = 1.0;
            backpropFeatures(one, localPositions, box, unit, row);
            double value = 0;
            for (int c = 0; c < 3 * count; c++)
                value += row[c] * localTangent[c];
            *out++ = value;
        }
    }
}

} // namespace cgflow::coords
