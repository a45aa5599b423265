#ifndef CGFLOW_FLOWS_BASEDENSITY_H_
#define CGFLOW_FLOWS_BASEDENSITY_H_

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cgflow::flows {

/** The density of one base dimension. */
enum class BaseKind {
    StandardNormal,  ///< N(0, 1) on the real line
    TruncatedNormal, ///< N(0, 1) restricted to [-B, B] and renormalized (the data-free CG papers' base)
    UniformCircle    ///< uniform on the circle [-pi, pi) (Rezende et al.; circular dimensions)
};

std::string baseKindName(BaseKind kind);
/** "normal"/"standard_normal", "truncated_normal", "uniform_circle"; anything else -> Error listing them. */
BaseKind parseBaseKind(const std::string& name);

/**
 * The product base density of a flow, one BaseKind per dimension (so mixed real/circular bases are
 * one object). Sampling is by inverse CDF from counter-based Philox uniforms: one uniform per
 * dimension, indexed by (seed, sample index, dimension), so the draws of sample i are the same
 * whatever the batch size, chunking or thread count, and sample(n, seed, firstIndex = k) continues a
 * stream exactly where a call for the first k samples stopped.
 */
class BaseDensity {
public:
    BaseDensity() = default;
    /** Every kind valid; truncationBound > 0 and finite when any dimension is TruncatedNormal (else Error). */
    BaseDensity(std::vector<BaseKind> kinds, double truncationBound = 5.0);

    int getDimension() const { return static_cast<int>(kinds.size()); }
    const std::vector<BaseKind>& getKinds() const { return kinds; }
    double getTruncationBound() const { return truncationBound; }
    /** Dimensions whose kind is UniformCircle. */
    std::vector<bool> getCircular() const;

    /** Columns [0, n) of z (dimension x n) receive samples firstIndex .. firstIndex + n - 1. */
    void sample(uint64_t seed, uint64_t firstIndex, Eigen::Ref<Eigen::MatrixXd> z) const;
    /**
     * log p of every column of z into logP (size z.cols()). Outside the support (a truncated-normal
     * value beyond B) the log-density is -inf; circular values are read on the circle (any finite
     * angle has density 1 / 2 pi); NaN gives NaN.
     */
    void logProb(const Eigen::Ref<const Eigen::MatrixXd>& z, double* logP) const;
    /** grad (dimension x n) += scale[i] * d log p / dz for every column i (0 for circular dimensions). */
    void accumulateLogProbGradient(const Eigen::Ref<const Eigen::MatrixXd>& z, const double* scale,
                                   Eigen::Ref<Eigen::MatrixXd> grad) const;

    nlohmann::json getConfig() const;
    static BaseDensity fromConfig(const nlohmann::json& config);

private:
    std::vector<BaseKind> kinds;
    double truncationBound = 5.0;
    double logNormalizer = 0;     // log of the sum of the per-dimension normalizers
};

/** The standard normal quantile Phi^-1(p) for p in (0, 1), accurate to a few ulp (Halley-refined). */
double standardNormalQuantile(double p);
/** Phi(x) = P(N(0,1) <= x), from erfc so that the lower tail keeps full relative accuracy. */
double standardNormalCdf(double x);

} // namespace cgflow::flows

#endif
