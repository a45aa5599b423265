#include "cgflow/optim/GradientNorm.h"

#include "cgflow/Error.h"

#include <Eigen/Core>
#include <cmath>
#include <limits>
#include <string>

namespace cgflow::optim {

double globalGradientNorm(const double* grads, size_t n) {
    if (n == 0)
        return 0.0;
    if (grads == nullptr)
        throw Error("globalGradientNorm: grads must not be null");
    Eigen::Map<const Eigen::VectorXd> g(grads, static_cast<Eigen::Index>(n));
    const double sumSquares = g.squaredNorm();
    if (std::isnan(sumSquares))
        return sumSquares;
    // The plain sum of squares overflows for entries above ~1e154 and loses everything below
    // ~1e-154; Eigen's scaled stableNorm is several times slower, so it is used only then.
    if (std::isinf(sumSquares) || sumSquares < std::numeric_limits<double>::min()) {
        if (!g.allFinite())
            return std::numeric_limits<double>::infinity();
        return g.stableNorm();
    }
    return std::sqrt(sumSquares);
}

void scaleGradients(double* grads, size_t n, double factor) {
    if (n == 0)
        return;
    if (grads == nullptr)
        throw Error("scaleGradients: grads must not be null");
    Eigen::Map<Eigen::ArrayXd>(grads, static_cast<Eigen::Index>(n)) *= factor;
}

double clipGradientNorm(double* grads, size_t n, double maxNorm) {
    if (std::isnan(maxNorm) || maxNorm <= 0.0)
        throw Error("clipGradientNorm: maxNorm must be > 0 (or +Inf for no clipping), got " + std::to_string(maxNorm));
    const double norm = globalGradientNorm(grads, n);
    if (std::isfinite(norm) && norm > maxNorm)
        scaleGradients(grads, n, maxNorm / norm);
    return norm;
}

} // namespace cgflow::optim
