// ModelTrainer's drop-the-k-largest-losses rule: the trimmed step is exactly the step without those
// samples, whichever samples they are, and the option round-trips and rejects bad values.
#include "CoreTestUtils.h"

#include "cgflow/train/ModelTrainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace cgflow::flows;
using namespace cgflow::train;
using cgflowtest::errorMessage;

namespace {

std::unique_ptr<Flow> smallFlow() {
    return Flow::fromConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 8}, {"seed", 4}});
}

std::vector<double> parametersOf(const TrainableModel& model) {
    std::vector<double> p(model.getNumParameters());
    model.getParameters(p.data());
    return p;
}

} // namespace

TEST(TrimmedLosses, TrimmedStepEqualsTheStepWithoutThoseSamples) {
    auto trimmedFlow = smallFlow(), droppedFlow = smallFlow();
    ModelTrainer trimmed(*trimmedFlow, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}, {"drop_largest_losses", 2}}));
    ModelTrainer dropped(*droppedFlow, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}}));
    for (int step = 0; step < 3; step++) {
        Eigen::MatrixXd x, x2;
        Eigen::VectorXd logQ, logQ2;
        trimmed.sample(16, 10 + step, nullptr, x, logQ);
        dropped.sample(16, 10 + step, nullptr, x2, logQ2);
        ASSERT_EQ(x, x2);
        // A harmonic well, plus two clashes (a different pair every step) far up a wall.
        Eigen::VectorXd u = 0.5 * x.colwise().squaredNorm().transpose();
        Eigen::MatrixXd f = -x;
        const int a = 3 + step, b = 11 - step;
        for (int i : {a, b}) {
            u[i] = 1e6 * (1 + i);
            f.col(i) *= 1e6;
        }
        Eigen::VectorXd uDropped = u;
        uDropped[a] = uDropped[b] = std::numeric_limits<double>::infinity();
        const TrainStepReport r1 = trimmed.reverseKLStep(u, f, 0.7);
        const TrainStepReport r2 = dropped.reverseKLStep(uDropped, f, 0.7);
        EXPECT_EQ(r1.numTrimmed, 2);
        EXPECT_EQ(r1.numDropped, 0);
        EXPECT_EQ(r2.numDropped, 2);
        EXPECT_EQ(r1.numSamples, 14);
        EXPECT_EQ(r1.loss, r2.loss);
        EXPECT_EQ(r1.gradientNorm, r2.gradientNorm);
        EXPECT_EQ(parametersOf(*trimmedFlow), parametersOf(*droppedFlow)) << "step " << step;
    }
}

TEST(TrimmedLosses, NonFiniteSamplesAreDroppedBeforeTrimmingAndAllTrimmedIsASkip) {
    auto flow = smallFlow(), reference = smallFlow();
    ModelTrainer trainer(*flow, ModelTrainerOptions::fromJson({{"drop_largest_losses", 3}}));
    ModelTrainer plain(*reference);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    trainer.sample(8, 1, nullptr, x, logQ);
    plain.sample(8, 1, nullptr, x, logQ);
    // Energies far apart, so the three largest losses are those of samples 4, 5 and 6 whatever log q is.
    Eigen::VectorXd u = 100.0 * Eigen::VectorXd::LinSpaced(8, 0.0, 7.0);
    u[7] = std::nan(""); // it must be dropped, not counted among the three largest
    TrainStepReport r = trainer.reverseKLStep(u, -x, 1.0);
    EXPECT_EQ(r.numDropped, 1);
    EXPECT_EQ(r.numTrimmed, 3);
    EXPECT_EQ(r.numSamples, 4);
    Eigen::VectorXd uKept = u;
    uKept.segment(4, 3).setConstant(std::numeric_limits<double>::infinity());
    plain.reverseKLStep(uKept, -x, 1.0);
    EXPECT_EQ(parametersOf(*flow), parametersOf(*reference));
    // Three samples and k = 3: nothing is left, so the step is skipped (reported, not clamped).
    const std::vector<double> before = parametersOf(*flow);
    trainer.sample(3, 2, nullptr, x, logQ);
    r = trainer.reverseKLStep(Eigen::VectorXd::Ones(3), -x, 1.0);
    EXPECT_EQ(r.numSamples, 0);
    EXPECT_EQ(r.numTrimmed, 3);
    EXPECT_EQ(r.action, cgflow::optim::GradientAction::Skip);
    EXPECT_EQ(parametersOf(*flow), before);
}

TEST(TrimmedLosses, OptionRoundTripsAndRejectsBadValues) {
    const ModelTrainerOptions options = ModelTrainerOptions::fromJson({{"drop_largest_losses", 5}});
    EXPECT_EQ(options.dropLargestLosses, 5);
    EXPECT_EQ(ModelTrainerOptions::fromJson(options.toJson()).dropLargestLosses, 5);
    EXPECT_FALSE(ModelTrainerOptions::fromJson(nlohmann::json::object()).toJson().contains("drop_largest_losses"));
    EXPECT_NE(errorMessage([] { ModelTrainerOptions::fromJson({{"drop_largest_losses", -1}}); })
                  .find("\"drop_largest_losses\" must be a non-negative integer"),
              std::string::npos);
    EXPECT_NE(errorMessage([] { ModelTrainerOptions::fromJson({{"drop_largest_losses", 1.5}}); })
                  .find("drop_largest_losses"),
              std::string::npos);
}
