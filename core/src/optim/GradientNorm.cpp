#include "cgflow/optim/GradientNorm.h"

#include "cgflow/Error.h"

#include <Eigen/Core>
#include <algorithm>
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
    // Summed chunk by chunk from a packet-aligned copy: over unaligned memory Eigen's reduction
    // order depends on the address, and the norm must not change when a resumed run's gradient
    // vector happens to sit elsewhere.
    constexpr Eigen::Index chunkSize = 1024;
    Eigen::Matrix<double, chunkSize, 1> buffer;
    double sumSquares = 0;
    for (Eigen::Index start = 0; start < g.size(); start += chunkSize) {
        const Eigen::Index len = std::min(chunkSize, g.size() - start);
        buffer.head(len) = g.segment(start, len);
        sumSquares += buffer.head(len).squaredNorm();
    }
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
