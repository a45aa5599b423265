// EncoderDecoderModel: pathwise gradients of the bound against finite differences, the bound's
// surrogate as an importance weight for log Z, and training through FlowTrainer.
#include "CoreTestUtils.h"
#include "cgflow/flows/EncoderDecoderModel.h"
#include "cgflow/flows/FlowTrainer.h"
#include "cgflow/stats/LogWeights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace cgflow::flows;
using cgflowtest::errorMessage;

namespace {

nlohmann::json config() {
    return {{"latent_dimension", 2}, {"data_dimension", 3},
            {"decoder", {{"hidden", 8}, {"activation", "tanh"}}},
            {"encoder", {{"hidden", 8}, {"activation", "tanh"}}}, {"seed", 4}};
}

void perturb(EncoderDecoderModel& model, unsigned seed, double scale) {
    std::vector<double> p(model.getNumParameters());
    model.getParameters(p.data());
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, scale);
    for (double& v : p)
        v += noise(rng);
    model.setParameters(p.data());
}

} // namespace

TEST(EncoderDecoderModel, PathwiseGradientsMatchFiniteDifferences) {
    EncoderDecoderModel model(config());
    perturb(model, 1, 0.2);
    const int n = 5;
    std::mt19937_64 rng(2);
    std::normal_distribution<double> normal(0, 1);
    Eigen::MatrixXd c(3, n);
    Eigen::VectorXd g(n);
    for (int i = 0; i < c.size(); i++)
        c.data()[i] = normal(rng);
    for (int i = 0; i < n; i++)
        g[i] = normal(rng);
    auto loss = [&]() {
        Eigen::MatrixXd x;
        Eigen::VectorXd s;
        model.sample(n, 7, x, s);
        return (c.array() * x.array()).sum() + g.dot(s);
    };
    Eigen::MatrixXd x;
    Eigen::VectorXd s;
    model.sampleForTraining(n, 7, nullptr, x, s);
    std::vector<double> grad(model.getNumParameters(), 0.0), p(model.getNumParameters());
    model.backwardSample(c, g, grad.data());
    model.getParameters(p.data());
    const double h = 1e-6;
    for (size_t i = 0; i < p.size(); i += 3) {
        const double keep = p[i];
        p[i] = keep + h;
        model.setParameters(p.data());
        const double up = loss();
        p[i] = keep - h;
        model.setParameters(p.data());
        const double down = loss();
        p[i] = keep;
        model.setParameters(p.data());
        const double fd = (up - down) / (2 * h);
        EXPECT_NEAR(grad[i], fd, 1e-5 * std::max(1.0, std::fabs(fd))) << "parameter " << i;
    }
}

TEST(EncoderDecoderModel, SurrogateIsAnImportanceWeightForLogZ) {
    // U = |x|^2 / 2 in 3-D: Z = (2 pi)^(3/2) whatever the (perturbed) encoder and decoder.
    EncoderDecoderModel model(config());
    perturb(model, 3, 0.1);
    Eigen::MatrixXd x;
    Eigen::VectorXd s;
    model.sample(200000, 11, x, s);
    std::vector<double> logW(s.size());
    for (Eigen::Index i = 0; i < s.size(); i++)
        logW[i] = -0.5 * x.col(i).squaredNorm() - s[i];
    const cgflow::stats::Estimate logZ = cgflow::stats::logMeanExp(logW);
    EXPECT_LT(std::fabs(logZ.value - 1.5 * std::log(2 * M_PI)), 4 * logZ.error + 1e-3) << logZ.value << " +- " << logZ.error;
}

TEST(EncoderDecoderModel, TrainsAndValidatesItsConfig) {
    EncoderDecoderModel model(config());
    FlowTrainer trainer(model, FlowTrainerOptions::fromJson({{"learning_rate", 1e-2}}));
    double first = 0, last = 0;
    for (int step = 0; step < 80; step++) {
        Eigen::MatrixXd x;
        Eigen::VectorXd s;
        trainer.sample(128, 50 + step, nullptr, x, s);
        Eigen::VectorXd u = 2.0 * (x.array() - 1).square().colwise().sum().matrix().transpose();
        Eigen::MatrixXd f = -4.0 * (x.array() - 1).matrix();
        (step == 0 ? first : last) = trainer.reverseKLStep(u, f, 1.0).loss;
    }
    EXPECT_LT(last, first - 1.0);
    EXPECT_EQ(model.encode(Eigen::MatrixXd::Zero(3, 4)).rows(), 2);
    EXPECT_NE(errorMessage([] { EncoderDecoderModel m({{"latent_dimension", 0}, {"data_dimension", 3}}); })
                  .find("\"latent_dimension\" must be an integer >= 1"),
              std::string::npos);
}
