// The weights engine, part 2 (cgflow/stats/Clipping.h): the three clipping policies on hand-made
// arrays and the report of how an estimate moves with the clipping level.
#include "CoreTestUtils.h"
#include "cgflow/stats/Clipping.h"
#include "cgflow/stats/LogWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace cgflow::stats;
using cgflowtest::errorMessage;

namespace {
const double Inf = std::numeric_limits<double>::infinity();
const std::vector<double> logW = {1, 5, -Inf, 3, 4, 2};
} // namespace

TEST(StatsClipping, ClipTopKSetsTheKLargestToTheKthLargest) {
    EXPECT_EQ(clipTopK(logW, 3), (std::vector<double>{1, 3, -Inf, 3, 3, 2}));
    EXPECT_EQ(clipTopK(logW, 1), logW); // the largest set to itself
    EXPECT_EQ(clipTopK(logW, 5), (std::vector<double>{1, 1, -Inf, 1, 1, 1}));
    EXPECT_EQ(clipTopK(logW, 0), logW);
    // Ties: the conditional-flow paper's k = 3 of 30 with a tie at the cut.
    EXPECT_EQ(clipTopK({7, 9, 7, 1, 7}, 3), (std::vector<double>{7, 7, 7, 1, 7}));
    EXPECT_NE(errorMessage([] { clipTopK(logW, 6); }).find("k must be in [0, 5]"), std::string::npos);
    EXPECT_NE(errorMessage([] { clipTopK(logW, -1); }).find("k must be in [0, 5]"), std::string::npos);
    EXPECT_NE(errorMessage([] { clipTopK({1, NAN}, 1); }).find("logW[1] is NaN or +inf"), std::string::npos);
}

TEST(StatsClipping, DropTopFractionDiscardsTheLargest) {
    // 0.4 of the 5 finite entries: the two largest (5 and 4) become weight zero; order is kept.
    EXPECT_EQ(dropTopFraction(logW, 0.4), (std::vector<double>{1, -Inf, -Inf, 3, -Inf, 2}));
    // ceil: 0.1 of 5 still drops one (the CG-BG rule, 1 % of a batch, always drops at least one).
    EXPECT_EQ(dropTopFraction(logW, 0.1), (std::vector<double>{1, -Inf, -Inf, 3, 4, 2}));
    EXPECT_EQ(dropTopFraction(logW, 0.0), logW);
    // 1 % of 1000 is exactly 10 (no rounding up to 11).
    std::vector<double> many(1000);
    for (int i = 0; i < 1000; i++)
        many[i] = 0.001 * i;
    const std::vector<double> dropped = dropTopFraction(many, 0.01);
    int zero = 0;
    for (int i = 0; i < 1000; i++) {
        zero += dropped[i] == -Inf;
        if (i < 990) {
            EXPECT_EQ(dropped[i], many[i]);
        }
    }
    EXPECT_EQ(zero, 10);
    EXPECT_NE(errorMessage([] { dropTopFraction(logW, 1.0); }).find("fraction must be in [0, 1)"), std::string::npos);
    EXPECT_NE(errorMessage([] { dropTopFraction(logW, 0.9); }).find("would drop all 5 finite log-weights"),
              std::string::npos);
}

TEST(StatsClipping, ClipAbovePercentileCapsAtTheInterpolatedPercentile) {
    // Finite entries {1, 2, 3, 4, 5}: percentile 75 sits at position 3 (value 4), percentile 90 at
    // position 3.6 (4 + 0.6 * (5 - 4) = 4.6), as numpy.percentile.
    EXPECT_EQ(clipAbovePercentile(logW, 75), (std::vector<double>{1, 4, -Inf, 3, 4, 2}));
    const std::vector<double> p90 = clipAbovePercentile(logW, 90);
    EXPECT_NEAR(p90[1], 4.6, 1e-14);
    EXPECT_EQ(p90[4], 4.0);
    EXPECT_EQ(p90[2], -Inf);
    EXPECT_EQ(clipAbovePercentile(logW, 100), logW);
    EXPECT_NE(errorMessage([] { clipAbovePercentile(logW, 0); }).find("percentile must be in (0, 100]"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { clipAbovePercentile({-Inf, -Inf}, 50); }).find("no finite entries"), std::string::npos);
}

TEST(StatsClipping, ReportShowsHowAnEstimateMovesWithTheLevel) {
    const auto ess = [](const std::vector<double>& w) { return effectiveSampleSize(w); };
    const std::vector<ClippingRow> rows = clippingReport(logW, "top_k", {0, 2, 5}, ess);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].numModified, 0);
    EXPECT_EQ(rows[1].numModified, 1); // the top two become the second largest: only the largest changes
    EXPECT_EQ(rows[2].numModified, 4);
    EXPECT_NEAR(rows[2].ess, 5.0, 1e-12);
    EXPECT_EQ(rows[1].estimate, rows[1].ess);
    EXPECT_LT(rows[0].ess, rows[1].ess);
    // A self-normalized mean of f = index under dropping: {0, 0.2, 0.4} of the finite entries.
    const std::vector<double> f = {0, 1, 2, 3, 4, 5};
    const auto mean = [&](const std::vector<double>& w) { return selfNormalizedMean(w, f).value; };
    const std::vector<ClippingRow> drop = clippingReport(logW, "drop_fraction", {0, 0.2, 0.4}, mean);
    EXPECT_NEAR(drop[0].estimate, selfNormalizedMean(logW, f).value, 1e-15);
    // Dropping log w = 5 (index 1) leaves weights e^1, e^3, e^4, e^2 on indices 0, 3, 4, 5.
    const double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0), e4 = std::exp(4.0);
    EXPECT_NEAR(drop[1].estimate, (3 * e3 + 4 * e4 + 5 * e2) / (e1 + e2 + e3 + e4), 1e-13);
    EXPECT_EQ(drop[2].numModified, 2);
    const std::vector<ClippingRow> pct = clippingReport(logW, "percentile", {100, 75}, ess);
    EXPECT_EQ(pct[0].numModified, 0);
    EXPECT_EQ(pct[1].numModified, 1);
    EXPECT_EQ(pct[1].level, 75);
    EXPECT_NE(errorMessage([] { clippingReport(logW, "soft", {1}, nullptr); }).find("policy must be"), std::string::npos);
    EXPECT_NE(errorMessage([&] { clippingReport(logW, "top_k", {1.5}, ess); }).find("top_k levels must be integers"),
              std::string::npos);
}
