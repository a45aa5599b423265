#include "cgflow/stats/Divergence.h"

#include "cgflow/Error.h"

#include <cmath>
#include <string>

namespace cgflow::stats {

namespace {

std::vector<double> floored(const std::vector<double>& p, double epsilon, const char* function, const char* name) {
    if (p.empty())
        throw Error(std::string(function) + ": " + name + " is empty");
    double total = 0;
    for (size_t b = 0; b < p.size(); b++) {
        if (!(p[b] >= 0) || !std::isfinite(p[b]))
            throw Error(std::string(function) + ": " + name + "[" + std::to_string(b) + "] must be finite and >= 0");
        total += p[b];
    }
    if (total == 0)
        throw Error(std::string(function) + ": " + name + " is all zero");
    std::vector<double> out(p.size());
    const double norm = 1 + p.size() * epsilon;
    for (size_t b = 0; b < p.size(); b++)
        out[b] = (p[b] / total + epsilon) / norm;
    return out;
}

void checkPair(const std::vector<double>& p, const std::vector<double>& q, double epsilon, const char* function) {
    if (p.size() != q.size())
        throw Error(std::string(function) + ": p has " + std::to_string(p.size()) + " bins but q has " +
                    std::to_string(q.size()));
    if (!(epsilon >= 0) || !std::isfinite(epsilon))
        throw Error(std::string(function) + ": epsilon must be finite and >= 0, got " + std::to_string(epsilon));
}

double kl(const std::vector<double>& p, const std::vector<double>& q) {
    double d = 0;
    for (size_t b = 0; b < p.size(); b++)
        if (p[b] > 0)
            d += p[b] * std::log(p[b] / q[b]);
    return d;
}

} // namespace

double klDivergence(const std::vector<double>& p, const std::vector<double>& q, double epsilon) {
    checkPair(p, q, epsilon, "klDivergence");
    // Separate statements: p is validated before q, so the first bad argument is the one reported.
    const std::vector<double> a = floored(p, epsilon, "klDivergence", "p");
    const std::vector<double> b = floored(q, epsilon, "klDivergence", "q");
    return kl(a, b);
}

double jensenShannonDivergence(const std::vector<double>& p, const std::vector<double>& q, double epsilon) {
    checkPair(p, q, epsilon, "jensenShannonDivergence");
    const std::vector<double> a = floored(p, epsilon, "jensenShannonDivergence", "p");
    const std::vector<double> b = floored(q, epsilon, "jensenShannonDivergence", "q");
    std::vector<double> m(a.size());
    for (size_t i = 0; i < a.size(); i++)
        m[i] = 0.5 * (a[i] + b[i]);
    return 0.5 * (kl(a, m) + kl(b, m));
}

double pmfError(const std::vector<double>& p, const std::vector<double>& q, double baseline) {
    checkPair(p, q, 0.0, "pmfError");
    if (!(baseline > 0 && baseline <= 1))
        throw Error("pmfError: baseline must be in (0, 1], got " + std::to_string(baseline));
    const std::vector<double> a = floored(p, 0.0, "pmfError", "p");
    const std::vector<double> b = floored(q, 0.0, "pmfError", "q");
    // Mixture weights of the bins populated in either grid, then the weighted squared difference of
    // -ln p; a bin empty in one grid takes the baseline (it has no logarithm otherwise).
    double weightSum = 0, error = 0;
    for (size_t i = 0; i < a.size(); i++) {
        if (a[i] == 0 && b[i] == 0)
            continue;
        const double pa = a[i] > 0 ? a[i] : baseline;
        const double pb = b[i] > 0 ? b[i] : baseline;
        const double m = 0.5 * (pa + pb);
        const double d = std::log(pa) - std::log(pb);
        weightSum += m;
        error += m * d * d;
    }
    return error / weightSum;
}

} // namespace cgflow::stats
