#ifndef CGFLOW_FLOWS_ODEINTEGRATOR_H_
#define CGFLOW_FLOWS_ODEINTEGRATOR_H_

#include <Eigen/Core>

#include <cstdint>
#include <functional>
#include <vector>

namespace cgflow::flows {

/** Settings of the adaptive Dormand-Prince 5(4) integrator. */
struct OdeOptions {
    double absoluteTolerance = 1e-4; ///< > 0; the CG-BG paper's dopri5 setting
    double relativeTolerance = 1e-4; ///< >= 0
    double initialStep = 0.05;       ///< |h| of each sample's first trial step, in (0, 1]
    int maxSteps = 10000;            ///< accepted + rejected steps per sample before it is given up
    /** Error naming the field for values outside the ranges above. */
    void check(const char* where) const;
};

/** What one integrate() call did, summed over its samples. */
struct OdeStatistics {
    int64_t samples = 0;     ///< columns integrated
    int64_t evaluations = 0; ///< right-hand-side evaluations, counted per sample (one column = one)
    int64_t accepted = 0;    ///< accepted steps, per sample
    int64_t rejected = 0;    ///< rejected steps, per sample
    int64_t failed = 0;      ///< samples given up (non-finite derivative at an accepted point, or maxSteps)
    OdeStatistics& operator+=(const OdeStatistics& other);
};

/**
 * The right-hand side dy/dt = f(t, y) for a batch: t (n) holds each column's own time, y and dydt
 * are (m x n), one sample per column; dydt is already sized (a view into the integrator's buffers).
 */
using OdeRightHandSide = std::function<void(const Eigen::Ref<const Eigen::VectorXd>& t,
                                            const Eigen::Ref<const Eigen::MatrixXd>& y, Eigen::Ref<Eigen::MatrixXd> dydt)>;

/** Buffers reused between integrate() calls (one per thread). */
struct OdeWorkspace {
    Eigen::MatrixXd y, stage, next, error, dydt;
    std::vector<Eigen::MatrixXd> k; // the seven stage derivatives, compacted to the active samples
    Eigen::VectorXd t, h, stageTime;
    std::vector<int> column;        // active sample -> column of the caller's y
    std::vector<int> steps;         // steps taken per active sample
};

/**
 * Integrates every column of y from t0 to t1 (either direction) with the embedded Dormand-Prince
 * 5(4) pair (Dormand & Prince 1980; the coefficients of Hairer, Norsett & Wanner's DOPRI5, first
 * same as last), each sample with its OWN adaptive step: the error of a step is the RMS over the
 * sample's m components of e_k / (atol + rtol max(|y_k|, |y_k new|)), accepted when <= 1, and the
 * next step is h min(10, max(0.2, 0.9 err^(-1/5))) (the usual controller, as torchdiffeq's). Active
 * samples are evaluated together, so every stage is one batched call of f, but a sample's result
 * does not depend on which other samples share the batch.
 *
 * A step whose stages are not finite is rejected and retried at a fifth of its length; a sample whose
 * derivative is not finite at an accepted point, or which needs more than maxSteps steps, is given
 * up: its column is set to NaN and it is counted in failed (callers turn that into weight 0).
 */
void integrateDormandPrince(const OdeRightHandSide& f, Eigen::Ref<Eigen::MatrixXd> y, double t0, double t1,
                            const OdeOptions& options, OdeWorkspace& ws, OdeStatistics* statistics = nullptr);

} // namespace cgflow::flows

#endif
