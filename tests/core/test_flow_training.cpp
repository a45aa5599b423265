// Flow training (reverse and forward KL, conditional flows) against exact answers, and flow model files.
#include "CoreTestUtils.h"
#include "FlowTestUtils.h"

#include "cgflow/flows/FlowConfig.h"
#include "cgflow/train/ModelTrainer.h"
#include "cgflow/io/models/FlowFile.h"
#include "cgflow/io/SafeTensors.h"

#include <gtest/gtest.h>

#include <array>

using namespace cgflow::flows;
using namespace cgflow::train;
using cgflowtest::errorMessage;
using nlohmann::json;

namespace {

constexpr double Pi = 3.14159265358979323846;

// Three well-separated modes with unequal weights; samples by construction.
struct Mixture {
    std::vector<double> weights = {0.5, 0.3, 0.2};
    // Plain arrays: GCC 12 warns (falsely) about Eigen's AVX-512 loads on small fixed vectors.
    std::vector<std::array<double, 2>> means = {{-2.5, -1.0}, {2.5, -1.0}, {0.0, 2.5}};
    double sigma = 0.5;

    Eigen::MatrixXd sample(int n, std::mt19937_64& engine) const {
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        std::normal_distribution<double> normal(0.0, sigma);
        Eigen::MatrixXd x(2, n);
        for (int i = 0; i < n; i++) {
            const double u = uniform(engine);
            const int k = u < weights[0] ? 0 : u < weights[0] + weights[1] ? 1 : 2;
            x(0, i) = means[k][0] + normal(engine);
            x(1, i) = means[k][1] + normal(engine);
        }
        return x;
    }

    int nearest(double px, double py) const {
        auto distance = [&](int k) { return std::pow(px - means[k][0], 2) + std::pow(py - means[k][1], 2); };
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (distance(k) < distance(best))
                best = k;
        return best;
    }
};

} // namespace

TEST(FlowTraining, ForwardKLReproducesMixtureModeWeights) {
    auto flow = Flow::fromConfig({{"dimension", 2}, {"num_layers", 8}, {"hidden", 32}, {"bound", 6.0},
                                  {"masks", {{true, false}, {false, true}, {true, false}, {false, true}}},
                                  {"seed", 1}, {"num_threads", 2}});
    ModelTrainer trainer(*flow, ModelTrainerOptions::fromJson({{"learning_rate", 3e-3}, {"cosine_steps", 1500},
                                                              {"warmup_steps", 50}, {"final_learning_rate", 1e-4}}));
    Mixture mixture;
    std::mt19937_64 engine(5);
    for (int step = 0; step < 1500; step++)
        trainer.forwardKLStep(mixture.sample(256, engine));
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    const int n = 20000;
    flow->sample(n, 99, nullptr, x, logQ);
    std::vector<double> counts(3, 0.0);
    for (int i = 0; i < n; i++)
        counts[mixture.nearest(x(0, i), x(1, i))] += 1.0 / n;
    for (int k = 0; k < 3; k++)
        EXPECT_NEAR(counts[k], mixture.weights[k], 0.03) << "mode " << k;
    std::cout << "mode weights " << counts[0] << " " << counts[1] << " " << counts[2] << std::endl;
}

TEST(FlowTraining, ReverseKLFitsAGaussianTarget) {
    // p(x) ~ exp(-U), U = (x - mu)^T P (x - mu) / 2 with a correlated precision P.
    const Eigen::Vector2d mu(1.0, -0.5);
    Eigen::Matrix2d cov;
    cov << 1.0, 0.6, 0.6, 0.8;
    const Eigen::Matrix2d precision = cov.inverse();
    const double logZ = std::log(2 * Pi) + 0.5 * std::log(cov.determinant());
    auto flow = Flow::fromConfig({{"dimension", 2}, {"num_layers", 4}, {"hidden", 32}, {"bound", 6.0},
                                  {"masks", {{true, false}, {false, true}}}, {"seed", 2}});
    ModelTrainer trainer(*flow, ModelTrainerOptions::fromJson({{"learning_rate", 3e-3}, {"cosine_steps", 800},
                                                              {"final_learning_rate", 1e-4}}));
    auto evaluate = [&](const Eigen::MatrixXd& x, Eigen::VectorXd& energies, Eigen::MatrixXd& forces) {
        const Eigen::MatrixXd d = x.colwise() - mu;
        forces = -precision * d;
        energies = 0.5 * (d.array() * (precision * d).array()).colwise().sum().transpose();
    };
    Eigen::MatrixXd x, forces;
    Eigen::VectorXd logQ, energies;
    for (int step = 0; step < 800; step++) {
        trainer.sample(256, 1000 + step, nullptr, x, logQ);
        evaluate(x, energies, forces);
        trainer.reverseKLStep(energies, forces, 1.0);
    }
    flow->sample(20000, 7, nullptr, x, logQ);
    evaluate(x, energies, forces);
    const double kl = (logQ + energies).mean() + logZ;
    EXPECT_LT(kl, 0.01);
    EXPECT_GT(kl, -0.005); // a KL estimate this far below 0 would mean a wrong log q
    std::cout << "reverse KL " << kl << std::endl;
}

TEST(FlowTraining, ConditionalFlowFollowsTheContext) {
    // x | c ~ N((2c, -c), 0.3^2 I) for a context c uniform on [-1, 1].
    auto flow = Flow::fromConfig({{"dimension", 2}, {"num_layers", 4}, {"hidden", 32}, {"context_dimension", 1},
                                  {"masks", {{true, false}, {false, true}}}, {"seed", 3}});
    ModelTrainer trainer(*flow, ModelTrainerOptions::fromJson({{"learning_rate", 3e-3}, {"cosine_steps", 1000}}));
    std::mt19937_64 engine(8);
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    std::normal_distribution<double> normal(0.0, 0.3);
    for (int step = 0; step < 1000; step++) {
        Eigen::MatrixXd c(1, 256), x(2, 256);
        for (int i = 0; i < 256; i++) {
            c(0, i) = uniform(engine);
            x(0, i) = 2 * c(0, i) + normal(engine);
            x(1, i) = -c(0, i) + normal(engine);
        }
        trainer.forwardKLStep(x, &c);
    }
    for (double c : {-0.8, 0.0, 0.7}) {
        Eigen::MatrixXd context = Eigen::MatrixXd::Constant(1, 1, c), x;
        Eigen::VectorXd logQ;
        flow->sample(10000, 11, &context, x, logQ);
        const double mean[2] = {x.row(0).mean(), x.row(1).mean()};
        EXPECT_NEAR(mean[0], 2 * c, 0.06) << "context " << c;
        EXPECT_NEAR(mean[1], -c, 0.06) << "context " << c;
        const double sd = std::sqrt((x.row(0).array() - mean[0]).square().mean());
        EXPECT_NEAR(sd, 0.3, 0.05) << "context " << c;
    }
}

TEST(FlowTraining, NonFiniteEnergiesAreDroppedAndCounted) {
    auto flow = Flow::fromConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 8}});
    ModelTrainer trainer(*flow);
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    trainer.sample(10, 1, nullptr, x, logQ);
    Eigen::VectorXd energies = Eigen::VectorXd::Ones(10);
    energies[3] = std::numeric_limits<double>::infinity();
    Eigen::MatrixXd forces = -x;
    forces(0, 5) = std::nan("");
    TrainStepReport report = trainer.reverseKLStep(energies, forces, 1.0);
    EXPECT_EQ(report.numSamples, 8);
    EXPECT_EQ(report.numDropped, 2);
    EXPECT_EQ(report.step, 1);
    EXPECT_NE(errorMessage([&] { trainer.reverseKLStep(energies, forces, 1.0); }).find("call sample() first"),
              std::string::npos);
    trainer.sample(10, 2, nullptr, x, logQ);
    EXPECT_NE(errorMessage([&] { trainer.reverseKLStep(energies.head(9), forces, 1.0); }).find("one per sample"),
              std::string::npos);
}

// An empty batch is an Error naming the argument, not a silently skipped step (loss 0, 0 samples).
TEST(FlowTraining, EmptyBatchesAreErrorsNamingTheArgument) {
    auto flow = Flow::fromConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 8}});
    ModelTrainer trainer(*flow);
    std::string message = errorMessage([&] { trainer.forwardKLStep(Eigen::MatrixXd(2, 0)); });
    EXPECT_NE(message.find("forwardKLStep: x is an empty batch"), std::string::npos) << message;
    Eigen::MatrixXd x;
    Eigen::VectorXd logQ;
    trainer.sample(0, 1, nullptr, x, logQ);
    message = errorMessage([&] { trainer.reverseKLStep(Eigen::VectorXd(0), Eigen::MatrixXd(2, 0), 1.0); });
    EXPECT_NE(message.find("reverseKLStep: energies is an empty batch"), std::string::npos) << message;
    EXPECT_EQ(trainer.getOptimizer().getStepCount(), 0);

    // Flow matching: empty is an Error too; a batch of only non-finite columns stays a skipped step.
    auto continuous = Flow::fromConfig({{"dimension", 2}, {"coupling", "continuous"}, {"hidden", 8}});
    ModelTrainer matching(*continuous);
    message = errorMessage([&] { matching.flowMatchingStep(Eigen::MatrixXd(2, 0), 0); });
    EXPECT_NE(message.find("flowMatchingStep: x1 is an empty batch"), std::string::npos) << message;
    const TrainStepReport skipped =
        matching.flowMatchingStep(Eigen::MatrixXd::Constant(2, 3, std::numeric_limits<double>::quiet_NaN()), 0);
    EXPECT_EQ(skipped.numSamples, 0);
    EXPECT_EQ(skipped.numDropped, 3);
}

TEST(FlowFile, RoundTripIsBitIdenticalAndResumesTraining) {
    json config = {{"dimension", 3}, {"circular", {1}}, {"num_layers", 2}, {"hidden", 8}, {"seed", 4}};
    auto flow = Flow::fromConfig(config);
    ModelTrainer trainer(*flow, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}, {"guard", true}}));
    auto step = [](ModelTrainer& t, int i) {
        Eigen::MatrixXd x, forces;
        Eigen::VectorXd logQ;
        t.sample(64, 100 + i, nullptr, x, logQ);
        forces = -x;
        forces.row(1).setZero();
        Eigen::VectorXd energies = 0.5 * x.colwise().squaredNorm().transpose();
        t.reverseKLStep(energies, forces, 1.0);
    };
    for (int i = 0; i < 7; i++)
        step(trainer, i);
    const std::string bytes = cgflow::io::encodeFlow(*flow, &trainer, {{"note", "test"}});
    for (int i = 7; i < 12; i++)
        step(trainer, i);

    cgflow::io::DecodedFlow decoded = cgflow::io::decodeFlow(bytes, "flow.safetensors");
    EXPECT_EQ(cgflow::io::encodeFlow(*decoded.flow, cgflow::io::restoreTrainer(decoded).get(), decoded.info), bytes);
    auto resumed = cgflow::io::restoreTrainer(decoded);
    for (int i = 7; i < 12; i++)
        step(*resumed, i);
    EXPECT_EQ(decoded.flow->getParameters(), flow->getParameters()); // bit for bit
    EXPECT_EQ(resumed->getOptimizer().getStepCount(), 12);

    // Without a trainer: parameters only, and restoreTrainer explains why it cannot.
    const std::string plain = cgflow::io::encodeFlow(*flow);
    cgflow::io::DecodedFlow plainDecoded = cgflow::io::decodeFlow(plain, "plain");
    EXPECT_EQ(cgflow::io::encodeFlow(*plainDecoded.flow), plain);
    EXPECT_NE(errorMessage([&] { cgflow::io::restoreTrainer(plainDecoded); }).find("no training state"),
              std::string::npos);
}

TEST(FlowFile, CorruptTruncatedAndNewerFilesGiveClearErrors) {
    auto flow = Flow::fromConfig({{"dimension", 2}, {"num_layers", 2}, {"hidden", 4}});
    const std::string bytes = cgflow::io::encodeFlow(*flow);
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeFlow(bytes.substr(0, bytes.size() - 9), "f"); }).find("truncated"),
              std::string::npos);
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeFlow("garbage", "f"); }).find("f"), std::string::npos);
    std::string newer = bytes;
    const size_t at = newer.find("\\\"format_version\\\":1");
    ASSERT_NE(at, std::string::npos);
    newer[at + std::string("\\\"format_version\\\":").size()] = '7';
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeFlow(newer, "f"); }).find("newer version"), std::string::npos);
    std::string wrongKind = bytes;
    const size_t kindAt = wrongKind.find("\\\"kind\\\":\\\"flow\\\"");
    ASSERT_NE(kindAt, std::string::npos);
    wrongKind.replace(kindAt + std::string("\\\"kind\\\":\\\"").size(), 4, "flaw");
    EXPECT_NE(errorMessage([&] { cgflow::io::decodeFlow(wrongKind, "f"); }).find("expected 'flow'"), std::string::npos);
}

// Found writing tests/fuzz (reproduced with fuzz_model_file on a crafted seed): decodeFlow built the flow from
// the architecture before looking at the parameters, so a 2 KB file whose config claimed "hidden": 200000000
// allocated gigabytes (std::bad_alloc or the OOM killer). The file's "parameters" tensor now bounds the flow
// (ParameterBudget).
TEST(FlowFile, ArchitectureLargerThanTheFileIsAnErrorNotAnAllocation) {
    auto flow = Flow::fromConfig({{"dimension", 3}, {"coupling", "affine"}, {"num_layers", 2},
                                  {"masks", {{true, false, false}}}, {"hidden", 4}, {"num_threads", 1}});
    cgflow::io::SafeTensors file = cgflow::io::SafeTensors::parse(cgflow::io::encodeFlow(*flow), "encoded");
    json header = json::parse(file.metadata.at("cgflow"));
    header["architecture"]["flow"]["layers"][0]["hidden"] = 200000000;
    file.metadata["cgflow"] = header.dump();
    const std::string message = errorMessage([&] { cgflow::io::decodeFlow(file.serialize(), "big.safetensors"); });
    EXPECT_EQ(message.rfind("big.safetensors", 0), 0u) << message;
    EXPECT_NE(message.find("AffineCoupling (hidden 200000000, num_blocks 1) would have 80000001400000000 parameters"), std::string::npos) << message;
    // Outside a decoder there is no budget, and a scope restores the outer one.
    {
        ParameterBudget outer(1000000);
        {
            ParameterBudget inner(10);
            EXPECT_THROW(Flow::fromConfig(flow->getConfig()), cgflow::Error);
        }
        EXPECT_NO_THROW(Flow::fromConfig(flow->getConfig()));
    }
    // The budget counts exactly what the layers hold.
    {
        ParameterBudget exact(flow->getNumParameters());
        EXPECT_NO_THROW(Flow::fromConfig(flow->getConfig()));
    }
    {
        ParameterBudget tooSmall(flow->getNumParameters() - 1);
        EXPECT_THROW(Flow::fromConfig(flow->getConfig()), cgflow::Error);
    }
}

TEST(FlowTraining, WeightedForwardKLEqualsRepeatedSamplesAndChecksItsWeights) {
    const json config = {{"dimension", 2}, {"num_layers", 2}, {"hidden", 8}, {"seed", 4}};
    auto a = Flow::fromConfig(config);
    auto b = Flow::fromConfig(config);
    Eigen::MatrixXd x = Eigen::MatrixXd::Random(2, 5);
    const Eigen::VectorXd weights = (Eigen::VectorXd(5) << 1, 2, 0, 1, 3).finished();
    Eigen::MatrixXd repeated(2, 7);
    repeated << x.col(0), x.col(1), x.col(1), x.col(3), x.col(4), x.col(4), x.col(4);
    ModelTrainer weighted(*a, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}}));
    ModelTrainer plain(*b, ModelTrainerOptions::fromJson({{"learning_rate", 1e-2}}));
    for (int step = 0; step < 3; step++) {
        // Scaling all weights changes nothing: they are normalized.
        const Eigen::VectorXd scaled = 2.5 * weights;
        const TrainStepReport r1 = weighted.forwardKLStep(x, nullptr, &scaled);
        const TrainStepReport r2 = plain.forwardKLStep(repeated);
        EXPECT_NEAR(r1.loss, r2.loss, 1e-12);
    }
    std::vector<double> pa(a->getNumParameters()), pb(b->getNumParameters());
    a->getParameters(pa.data());
    b->getParameters(pb.data());
    for (size_t k = 0; k < pa.size(); k++)
        ASSERT_NEAR(pa[k], pb[k], 1e-12) << "parameter " << k;
    Eigen::VectorXd bad = weights;
    bad[2] = -1;
    EXPECT_NE(errorMessage([&] { weighted.forwardKLStep(x, nullptr, &bad); }).find("weights[2]"), std::string::npos);
    const Eigen::VectorXd shortWeights = Eigen::VectorXd::Ones(3);
    EXPECT_NE(errorMessage([&] { weighted.forwardKLStep(x, nullptr, &shortWeights); }).find("weights has 3"),
              std::string::npos);
    const Eigen::VectorXd zeros = Eigen::VectorXd::Zero(5);
    EXPECT_NE(errorMessage([&] { weighted.forwardKLStep(x, nullptr, &zeros); }).find("sum to 0"), std::string::npos);
}
