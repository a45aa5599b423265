#include "cgflow/flows/BaseDensity.h"

#include "cgflow/Error.h"
#include "cgflow/util/Random.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace cgflow::flows {

namespace {

constexpr double Pi = 3.14159265358979323846;
constexpr double LogTwoPi = 1.8378770664093454836;
// Philox counter word that keeps base-density draws apart from other users of the same seed ("BASE").
constexpr uint32_t baseStream = 0x42415345;

} // namespace

std::string baseKindName(BaseKind kind) {
    switch (kind) {
    case BaseKind::StandardNormal:
        return "normal";
    case BaseKind::TruncatedNormal:
        return "truncated_normal";
    case BaseKind::UniformCircle:
        return "uniform_circle";
    }
    throw Error("baseKindName: invalid BaseKind value " + std::to_string(static_cast<int>(kind)));
}

BaseKind parseBaseKind(const std::string& name) {
    if (name == "normal" || name == "standard_normal")
        return BaseKind::StandardNormal;
    if (name == "truncated_normal")
        return BaseKind::TruncatedNormal;
    if (name == "uniform_circle")
        return BaseKind::UniformCircle;
    throw Error("unknown base density '" + name + "'; expected \"normal\", \"truncated_normal\" or \"uniform_circle\"");
}

double standardNormalCdf(double x) {
    return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

double standardNormalQuantile(double p) {
    if (!(p > 0 && p < 1))
        throw Error("standardNormalQuantile: p must be in (0, 1), got " + std::to_string(p));
    // Acklam's rational approximation (relative error < 1.2e-9) as the starting point ...
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01,  -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double low = 0.02425;
    double x;
    if (p < low) {
        const double q = std::sqrt(-2 * std::log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - low) {
        const double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        const double q = std::sqrt(-2 * std::log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    // ... then one Halley step on Phi(x) - p, which triples the number of correct digits. The
    // residual Phi(x) - p is evaluated in the tail where it is accurate (for x > 0 as
    // (1 - p) - Phi(-x), the same quantity without cancellation).
    const double e = x <= 0 ? standardNormalCdf(x) - p : (1 - p) - standardNormalCdf(-x);
    const double u = e * std::sqrt(2 * Pi) * std::exp(0.5 * x * x);
    return x - u / (1 + 0.5 * x * u);
}

BaseDensity::BaseDensity(std::vector<BaseKind> kindsIn, double truncationBoundIn)
    : kinds(std::move(kindsIn)), truncationBound(truncationBoundIn) {
    bool truncated = false;
    for (size_t i = 0; i < kinds.size(); i++) {
        baseKindName(kinds[i]); // throws for a value outside the enum
        truncated = truncated || kinds[i] == BaseKind::TruncatedNormal;
    }
    if (truncated && !(truncationBound > 0 && std::isfinite(truncationBound))) {
        std::ostringstream msg;
        msg << "BaseDensity: truncationBound must be positive and finite, got " << truncationBound;
        throw Error(msg.str());
    }
    const double truncatedMass = 1 - 2 * standardNormalCdf(-truncationBound);
    logNormalizer = 0;
    for (BaseKind kind : kinds) {
        if (kind == BaseKind::UniformCircle)
            logNormalizer += LogTwoPi;
        else
            logNormalizer += 0.5 * LogTwoPi + (kind == BaseKind::TruncatedNormal ? std::log(truncatedMass) : 0.0);
    }
}

std::vector<bool> BaseDensity::getCircular() const {
    std::vector<bool> circular(kinds.size());
    for (size_t i = 0; i < kinds.size(); i++)
        circular[i] = kinds[i] == BaseKind::UniformCircle;
    return circular;
}

void BaseDensity::sample(uint64_t seed, uint64_t firstIndex, Eigen::Ref<Eigen::MatrixXd> z) const {
    if (z.rows() != getDimension())
        throw Error("BaseDensity::sample: z has " + std::to_string(z.rows()) + " rows, expected the dimension " +
                    std::to_string(getDimension()));
    const int dim = getDimension();
    const double lowerMass = standardNormalCdf(-truncationBound);
    const double truncatedMass = 1 - 2 * lowerMass;
    for (Eigen::Index i = 0; i < z.cols(); i++) {
        const uint64_t index = firstIndex + static_cast<uint64_t>(i);
        for (int d = 0; d < dim; d += 2) {
            const util::PhiloxUniforms r = util::philoxOpenUniforms(seed, baseStream, index, static_cast<uint32_t>(d / 2));
            for (int k = 0; k < 2 && d + k < dim; k++) {
                const double u = r.u[k];
                double value;
                switch (kinds[d + k]) {
                case BaseKind::UniformCircle:
                    value = -Pi + 2 * Pi * u;
                    break;
                case BaseKind::StandardNormal:
                    value = standardNormalQuantile(u);
                    break;
                default: {
                    // Inverse CDF of the truncated normal, read from whichever tail is nearer so that
                    // values near +B are as accurate as values near -B.
                    const double q = u * truncatedMass;
                    value = q <= 0.5 * truncatedMass ? standardNormalQuantile(lowerMass + q)
                                                     : -standardNormalQuantile(lowerMass + (truncatedMass - q));
                    value = std::min(std::max(value, -truncationBound), truncationBound); // rounding at the ends only
                }
                }
                z(d + k, i) = value;
            }
        }
    }
}

void BaseDensity::logProb(const Eigen::Ref<const Eigen::MatrixXd>& z, double* logP) const {
    if (z.rows() != getDimension())
        throw Error("BaseDensity::logProb: z has " + std::to_string(z.rows()) + " rows, expected the dimension " +
                    std::to_string(getDimension()));
    const int dim = getDimension();
    for (Eigen::Index i = 0; i < z.cols(); i++) {
        double sumSquares = 0;
        bool outside = false, invalid = false;
        for (int d = 0; d < dim; d++) {
            const double v = z(d, i);
            if (std::isnan(v))
                invalid = true;
            else if (kinds[d] == BaseKind::UniformCircle)
                invalid = invalid || !std::isfinite(v);
            else {
                sumSquares += v * v;
                outside = outside || (kinds[d] == BaseKind::TruncatedNormal && std::abs(v) > truncationBound);
            }
        }
        if (invalid)
            logP[i] = std::nan("");
        else if (outside)
            logP[i] = -std::numeric_limits<double>::infinity();
        else
            logP[i] = -0.5 * sumSquares - logNormalizer;
    }
}

void BaseDensity::accumulateLogProbGradient(const Eigen::Ref<const Eigen::MatrixXd>& z, const double* scale,
                                            Eigen::Ref<Eigen::MatrixXd> grad) const {
    if (z.rows() != getDimension() || grad.rows() != z.rows() || grad.cols() != z.cols())
        throw Error("BaseDensity::accumulateLogProbGradient: z and grad must both be (dimension x n)");
    for (Eigen::Index i = 0; i < z.cols(); i++)
        for (int d = 0; d < getDimension(); d++)
            if (kinds[d] != BaseKind::UniformCircle)
                grad(d, i) -= scale[i] * z(d, i);
}

nlohmann::json BaseDensity::getConfig() const {
    nlohmann::json kindNames = nlohmann::json::array();
    bool truncated = false;
    for (BaseKind kind : kinds) {
        kindNames.push_back(baseKindName(kind));
        truncated = truncated || kind == BaseKind::TruncatedNormal;
    }
    nlohmann::json config = {{"kinds", kindNames}};
    if (truncated)
        config["truncation_bound"] = truncationBound;
    return config;
}

BaseDensity BaseDensity::fromConfig(const nlohmann::json& config) {
    if (!config.is_object() || !config.contains("kinds") || !config["kinds"].is_array())
        throw Error("base density config must be an object with a \"kinds\" array");
    std::vector<BaseKind> kinds;
    for (const auto& k : config["kinds"]) {
        if (!k.is_string())
            throw Error("base density config: every entry of \"kinds\" must be a string");
        kinds.push_back(parseBaseKind(k.get<std::string>()));
    }
    double bound = 5.0;
    if (config.contains("truncation_bound")) {
        if (!config["truncation_bound"].is_number())
            throw Error("base density config: \"truncation_bound\" must be a number");
        bound = config["truncation_bound"].get<double>();
    }
    return BaseDensity(std::move(kinds), bound);
}

} // namespace cgflow::flows
