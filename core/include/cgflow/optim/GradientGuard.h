#ifndef CGFLOW_OPTIM_GRADIENTGUARD_H_
#define CGFLOW_OPTIM_GRADIENTGUARD_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cgflow::optim {

/** What to do with one update's gradient. */
enum class GradientAction { Accept, Clip, Skip };

/** Settings of GradientGuard; the defaults are the data-free CG papers' (FAB's) values. */
struct GradientGuardOptions {
    int windowSize = 50;      ///< norms remembered for the running median, >= 1
    double skipFactor = 10.0; ///< skip when norm > skipFactor * median; > 0, +Inf never skips
    double clipFactor = 5.0;  ///< clip to clipFactor * median when norm > that; > 0, +Inf never clips
    /**
     * While fewer than this many norms are remembered, every finite norm is accepted (and
     * remembered): a median of one or two norms from the first, typically wild updates of an
     * untrained model says little about what is abnormal. In [1, windowSize].
     */
    int minHistory = 5;
    /**
     * 0 (the papers' behaviour): a norm above skipFactor * median is always skipped. > 0: after
     * this many consecutive skips the next such update is clipped instead (and remembered), so
     * that a lasting jump of the gradient scale — e.g. after a large step of adaptive tempering —
     * cannot stall training forever with every update skipped.
     */
    int maxConsecutiveSkips = 0;
};

/** The guard's verdict on one norm. */
struct GradientDecision {
    GradientAction action = GradientAction::Accept;
    double norm = 0.0;   ///< the norm that was judged
    double median = 0.0; ///< the running median it was compared with (0 while warming up)
    double scale = 1.0;  ///< the factor applied to the gradients: < 1 for Clip, 1 for Accept, 0 for Skip
};

/**
 * The stabilizer of the data-free coarse-graining papers (after Midgley et al.): keep the norms of
 * the last windowSize accepted updates, and for a new gradient norm
 *   SKIP   if norm > skipFactor * median (the update is dropped; the norm is not remembered),
 *   CLIP   to clipFactor * median if norm > clipFactor * median,
 *   ACCEPT otherwise.
 * Accepted and clipped updates were both applied, so both are remembered, with the norm measured
 * before clipping: the median then tracks the true gradient scale and can follow a genuine rise.
 *
 * Edge cases, all documented choices rather than errors:
 *  - fewer than minHistory norms remembered: ACCEPT (see GradientGuardOptions::minHistory);
 *  - non-finite norm (a NaN/Inf energy or force in the batch): always SKIP, never remembered;
 *  - median exactly 0 (all remembered gradients were zero): ACCEPT, since no multiple of 0 is a
 *    useful threshold and skipping would stall training for good.
 * Ties (norm exactly at a threshold) are accepted / clipped, i.e. the comparisons are strict.
 */
class GradientGuard {
public:
    /** Invalid options -> Error naming the field. */
    explicit GradientGuard(const GradientGuardOptions& options = GradientGuardOptions());

    const GradientGuardOptions& getOptions() const { return options; }

    /** Judge `norm` and update the history and counters accordingly. */
    GradientDecision check(double norm);
    /**
     * Compute the global norm of grads[0 .. n), judge it with check(), and scale the gradients in
     * place for CLIP. SKIP leaves the gradients untouched: the caller must not apply the update.
     */
    GradientDecision apply(double* grads, size_t n);

    /** Median of the remembered norms (mean of the middle two for an even count); 0 when empty. */
    double getMedian() const;
    /** Number of norms remembered, at most windowSize. */
    int getHistorySize() const { return static_cast<int>(history.size()); }
    /** The remembered norms, oldest first. */
    std::vector<double> getHistory() const;
    int64_t getNumAccepted() const { return numAccepted; }
    int64_t getNumClipped() const { return numClipped; }
    int64_t getNumSkipped() const { return numSkipped; }
    int getConsecutiveSkips() const { return consecutiveSkips; }
    /** Forget the history and zero the counters. */
    void reset();

    /** Plain data for checkpoints: the remembered norms (oldest first) and the counters. */
    struct State {
        std::vector<double> history;
        int64_t numAccepted = 0;
        int64_t numClipped = 0;
        int64_t numSkipped = 0;
        int consecutiveSkips = 0;
    };
    State getState() const;
    /**
     * history must have at most windowSize entries, all finite and >= 0, and the counters must be
     * >= 0; else Error and the guard is unchanged.
     */
    void setState(const State& state);

private:
    void remember(double norm);

    GradientGuardOptions options;
    std::vector<double> history; // ring buffer of up to windowSize norms
    size_t oldest = 0;           // index of the oldest entry once the buffer is full
    int64_t numAccepted = 0;
    int64_t numClipped = 0;
    int64_t numSkipped = 0;
    int consecutiveSkips = 0;
};

} // namespace cgflow::optim

#endif
