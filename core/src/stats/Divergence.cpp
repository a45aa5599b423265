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
    return kl(floored(p, epsilon, "klDivergence", "p"), floored(q, epsilon, "klDivergence", "q"));
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

double pmfError(const std::vector<double>& p, const std::vector<double>& q, double epsilon) {
    checkPair(p, q, epsilon, "pmfError");
    const std::vector<double> a = floored(p, epsilon, "pmfError", "p");
    const std::vector<double> b = floored(q, 0.0, "pmfError", "q");
    std::vector<double> d;
    for (size_t i = 0; i < a.size(); i++)
        if (b[i] > 0)
            d.push_back(std::log(a[i]) - std::log(b[i]));
    double mean = 0;
    for (double v : d)
        mean += v / d.size();
    double variance = 0;
    for (double v : d)
        variance += (v - mean) * (v - mean) / d.size();
    return variance;
}

} // namespace cgflow::stats
