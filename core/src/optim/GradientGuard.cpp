#include "cgflow/optim/GradientGuard.h"

#include "cgflow/Error.h"
#include "cgflow/optim/GradientNorm.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace cgflow::optim {

namespace {

void checkFactor(double factor, const char* name) {
    if (std::isnan(factor) || factor <= 0.0)
        throw Error(std::string("GradientGuard: ") + name + " must be > 0 (or +Inf to disable), got " +
                    std::to_string(factor));
}

} // namespace

GradientGuard::GradientGuard(const GradientGuardOptions& optionsIn) : options(optionsIn) {
    if (options.windowSize < 1)
        throw Error("GradientGuard: windowSize must be >= 1, got " + std::to_string(options.windowSize));
    checkFactor(options.skipFactor, "skipFactor");
    checkFactor(options.clipFactor, "clipFactor");
    if (options.minHistory < 1 || options.minHistory > options.windowSize)
        throw Error("GradientGuard: minHistory must be in [1, windowSize = " + std::to_string(options.windowSize) +
                    "], got " + std::to_string(options.minHistory));
    if (options.maxConsecutiveSkips < 0)
        throw Error("GradientGuard: maxConsecutiveSkips must be >= 0 (0 = unlimited), got " +
                    std::to_string(options.maxConsecutiveSkips));
    history.reserve(options.windowSize);
}

void GradientGuard::remember(double norm) {
    if (history.size() < static_cast<size_t>(options.windowSize)) {
        history.push_back(norm);
        return;
    }
    history[oldest] = norm;
    oldest = (oldest + 1) % history.size();
}

double GradientGuard::getMedian() const {
    if (history.empty())
        return 0.0;
    // At most windowSize (~50) values, once per update: a partial sort of a copy costs nothing
    // next to the update itself, and unlike two heaps with deletions it is obviously right.
    std::vector<double> scratch(history);
    const size_t n = scratch.size();
    const size_t mid = n / 2;
    std::nth_element(scratch.begin(), scratch.begin() + mid, scratch.end());
    const double upper = scratch[mid];
    if (n % 2 == 1)
        return upper;
    const double lower = *std::max_element(scratch.begin(), scratch.begin() + mid);
    return 0.5 * (lower + upper);
}

GradientDecision GradientGuard::check(double norm) {
    GradientDecision decision;
    decision.norm = norm;
    if (std::isfinite(norm) && norm < 0.0)
        throw Error("GradientGuard::check: a gradient norm cannot be negative, got " + std::to_string(norm));
    if (!std::isfinite(norm)) {
        decision.action = GradientAction::Skip;
        decision.scale = 0.0;
        decision.median = getMedian();
        numSkipped++;
        consecutiveSkips++;
        return decision;
    }
    if (getHistorySize() >= options.minHistory) {
        const double median = getMedian();
        decision.median = median;
        if (median > 0.0) {
            const bool forceInsteadOfSkip =
                options.maxConsecutiveSkips > 0 && consecutiveSkips >= options.maxConsecutiveSkips;
            if (norm > options.skipFactor * median && !forceInsteadOfSkip) {
                decision.action = GradientAction::Skip;
                decision.scale = 0.0;
                numSkipped++;
                consecutiveSkips++;
                return decision;
            }
            const double clipNorm = options.clipFactor * median;
            if (norm > clipNorm || (forceInsteadOfSkip && norm > options.skipFactor * median)) {
                // A forced update (after too many skips) is clipped to the clip threshold; with
                // clipFactor = +Inf there is no finite threshold and it goes through unscaled.
                decision.action = GradientAction::Clip;
                decision.scale = std::isfinite(clipNorm) ? std::min(1.0, clipNorm / norm) : 1.0;
                numClipped++;
                consecutiveSkips = 0;
                remember(norm);
                return decision;
            }
        }
    }
    decision.action = GradientAction::Accept;
    numAccepted++;
    consecutiveSkips = 0;
    remember(norm);
    return decision;
}

GradientDecision GradientGuard::apply(double* grads, size_t n) {
    GradientDecision decision = check(globalGradientNorm(grads, n));
    if (decision.action == GradientAction::Clip && decision.scale != 1.0)
        scaleGradients(grads, n, decision.scale);
    return decision;
}

std::vector<double> GradientGuard::getHistory() const {
    std::vector<double> ordered;
    ordered.reserve(history.size());
    for (size_t i = 0; i < history.size(); i++)
        ordered.push_back(history[(oldest + i) % history.size()]);
    return ordered;
}

void GradientGuard::reset() {
    history.clear();
    oldest = 0;
    numAccepted = numClipped = numSkipped = 0;
    consecutiveSkips = 0;
}

GradientGuard::State GradientGuard::getState() const {
    State state;
    state.history = getHistory();
    state.numAccepted = numAccepted;
    state.numClipped = numClipped;
    state.numSkipped = numSkipped;
    state.consecutiveSkips = consecutiveSkips;
    return state;
}

void GradientGuard::setState(const State& state) {
    if (state.history.size() > static_cast<size_t>(options.windowSize))
        throw Error("GradientGuard::setState: history has " + std::to_string(state.history.size()) +
                    " norms, more than windowSize = " + std::to_string(options.windowSize));
    for (size_t i = 0; i < state.history.size(); i++)
        if (!std::isfinite(state.history[i]) || state.history[i] < 0.0)
            throw Error("GradientGuard::setState: history[" + std::to_string(i) + "] = " +
                        std::to_string(state.history[i]) + "; expected a finite norm >= 0");
    if (state.numAccepted < 0 || state.numClipped < 0 || state.numSkipped < 0 || state.consecutiveSkips < 0)
        throw Error("GradientGuard::setState: the counters must all be >= 0");
    history = state.history;
    history.reserve(options.windowSize);
    oldest = 0;
    numAccepted = state.numAccepted;
    numClipped = state.numClipped;
    numSkipped = state.numSkipped;
    consecutiveSkips = state.consecutiveSkips;
}

} // namespace cgflow::optim
