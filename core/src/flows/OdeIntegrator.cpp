#include "cgflow/flows/OdeIntegrator.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace cgflow::flows {

namespace {

// Dormand-Prince 5(4): nodes, the Butcher tableau (row 6 is the 5th-order solution, so its stage is
// the new point and its derivative the next step's first: FSAL) and the error weights b5 - b4.
constexpr double C[7] = {0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0};
constexpr double A[7][6] = {
    {0, 0, 0, 0, 0, 0},
    {1.0 / 5.0, 0, 0, 0, 0, 0},
    {3.0 / 40.0, 9.0 / 40.0, 0, 0, 0, 0},
    {44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0, 0, 0},
    {19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0, 0},
    {9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0},
    {35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0}};
constexpr double E[7] = {71.0 / 57600.0,      0.0,           -71.0 / 16695.0, 71.0 / 1920.0,
                         -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0};

constexpr double Safety = 0.9, MinFactor = 0.2, MaxFactor = 10.0;

} // namespace

void OdeOptions::check(const char* where) const {
    const std::string w(where);
    if (!(absoluteTolerance > 0) || !std::isfinite(absoluteTolerance))
        throw Error(w + ": \"atol\" (absolute tolerance) must be finite and > 0, got " +
                    std::to_string(absoluteTolerance));
    if (!(relativeTolerance >= 0) || !std::isfinite(relativeTolerance))
        throw Error(w + ": \"rtol\" (relative tolerance) must be finite and >= 0, got " +
                    std::to_string(relativeTolerance));
    if (!(initialStep > 0 && initialStep <= 1))
        throw Error(w + ": \"initial_step\" must be in (0, 1], got " + std::to_string(initialStep));
    if (maxSteps < 1)
        throw Error(w + ": \"max_steps\" must be >= 1, got " + std::to_string(maxSteps));
}

OdeStatistics& OdeStatistics::operator+=(const OdeStatistics& other) {
    samples += other.samples;
    evaluations += other.evaluations;
    accepted += other.accepted;
    rejected += other.rejected;
    failed += other.failed;
    return *this;
}

void integrateDormandPrince(const OdeRightHandSide& f, Eigen::Ref<Eigen::MatrixXd> out, double t0, double t1,
                            const OdeOptions& options, OdeWorkspace& ws, OdeStatistics* statistics) {
    options.check("integrateDormandPrince");
    if (!std::isfinite(t0) || !std::isfinite(t1))
        throw Error("integrateDormandPrince: t0 and t1 must be finite");
    const int m = static_cast<int>(out.rows());
    const int n = static_cast<int>(out.cols());
    OdeStatistics stats;
    stats.samples = n;
    if (n == 0 || t0 == t1) {
        if (statistics != nullptr)
            *statistics += stats;
        return;
    }
    const double span = t1 - t0;
    const double direction = span > 0 ? 1.0 : -1.0;
    const double tiny = 1e-14 * std::abs(span);

    ws.y = out;
    ws.k.resize(7);
    for (auto& k : ws.k)
        k.resize(m, n);
    ws.stage.resize(m, n);
    ws.error.resize(m, n);
    ws.t = Eigen::VectorXd::Constant(n, t0);
    ws.h = Eigen::VectorXd::Constant(n, direction * std::min(options.initialStep, std::abs(span)));
    ws.stageTime.resize(n);
    ws.column.resize(n);
    ws.steps.assign(n, 0);
    for (int i = 0; i < n; i++)
        ws.column[i] = i;

    int active = n;
    // Keeps the active samples flagged in keep (in order) at the front of every per-sample buffer.
    std::vector<char> keep(n);
    auto compact = [&]() {
        int w = 0;
        for (int i = 0; i < active; i++) {
            if (!keep[i])
                continue;
            if (w != i) {
                ws.y.col(w) = ws.y.col(i);
                ws.k[0].col(w) = ws.k[0].col(i);
                ws.t[w] = ws.t[i];
                ws.h[w] = ws.h[i];
                ws.column[w] = ws.column[i];
                ws.steps[w] = ws.steps[i];
            }
            w++;
        }
        active = w;
    };
    auto giveUp = [&](int i) {
        out.col(ws.column[i]).setConstant(std::numeric_limits<double>::quiet_NaN());
        stats.failed++;
        keep[i] = 0;
    };

    f(ws.t.head(active), ws.y.leftCols(active), ws.k[0].leftCols(active));
    stats.evaluations += active;
    for (int i = 0; i < active; i++) {
        keep[i] = 1;
        if (!ws.k[0].col(i).allFinite() || !ws.y.col(i).allFinite())
            giveUp(i);
    }
    compact();

    while (active > 0) {
        const auto h = ws.h.head(active);
        for (int s = 1; s < 7; s++) {
            auto stage = ws.stage.leftCols(active);
            stage = ws.y.leftCols(active);
            for (int j = 0; j < s; j++)
                if (A[s][j] != 0.0)
                    stage.noalias() += ws.k[j].leftCols(active) * (A[s][j] * h).asDiagonal();
            ws.stageTime.head(active) = ws.t.head(active) + C[s] * h;
            f(ws.stageTime.head(active), stage, ws.k[s].leftCols(active));
            stats.evaluations += active;
        }
        // ws.stage now holds the 5th-order solution at t + h, ws.k[6] its derivative.
        auto error = ws.error.leftCols(active);
        error.setZero();
        for (int j = 0; j < 7; j++)
            if (E[j] != 0.0)
                error.noalias() += ws.k[j].leftCols(active) * (E[j] * h).asDiagonal();

        for (int i = 0; i < active; i++) {
            keep[i] = 1;
            ws.steps[i]++;
            double sum = 0;
            for (int r = 0; r < m; r++) {
                const double scale = options.absoluteTolerance +
                                     options.relativeTolerance * std::max(std::abs(ws.y(r, i)), std::abs(ws.stage(r, i)));
                const double q = ws.error(r, i) / scale;
                sum += q * q;
            }
            const double err = std::sqrt(sum / m);
            const bool finite = std::isfinite(err) && ws.stage.col(i).allFinite() && ws.k[6].col(i).allFinite();
            const double hi = ws.h[i];
            const bool last = direction * (t1 - (ws.t[i] + hi)) <= tiny;
            if (finite && err <= 1.0) {
                stats.accepted++;
                ws.y.col(i) = ws.stage.col(i);
                ws.k[0].col(i) = ws.k[6].col(i);
                if (last) {
                    out.col(ws.column[i]) = ws.y.col(i);
                    keep[i] = 0;
                    continue;
                }
                ws.t[i] += hi;
                const double factor = err == 0.0 ? MaxFactor : std::min(MaxFactor, std::max(MinFactor, Safety * std::pow(err, -0.2)));
                ws.h[i] = hi * factor;
            } else {
                stats.rejected++;
                const double factor = finite ? std::min(1.0, std::max(MinFactor, Safety * std::pow(err, -0.2))) : MinFactor;
                ws.h[i] = hi * factor;
            }
            if (direction * (ws.t[i] + ws.h[i] - t1) > 0)
                ws.h[i] = t1 - ws.t[i];
            if (ws.steps[i] >= options.maxSteps || std::abs(ws.h[i]) < tiny)
                giveUp(i);
        }
        compact();
    }
    if (statistics != nullptr)
        *statistics += stats;
}

} // namespace cgflow::flows
