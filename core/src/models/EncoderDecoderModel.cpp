#include "cgflow/models/EncoderDecoderModel.h"

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"
#include "cgflow/flows/BaseDensity.h"

#include <cmath>
#include <set>

namespace cgflow::models {

using namespace cgflow::flows; // the building blocks of these models

using nlohmann::json;

namespace {

constexpr uint64_t decoderStreamOffset = 0x9E3779B97F4A7C15ull;

int requiredDimension(const json& config, const char* key) {
    return io::requireInt(config, key, "encoder_decoder model config", 1);
}

} // namespace

EncoderDecoderModel::EncoderDecoderModel(const json& config) {
    if (!config.is_object())
        throw Error("encoder_decoder model config: must be an object");
    for (const auto& item : config.items())
        if (!std::set<std::string>{"latent_dimension", "data_dimension", "decoder", "encoder", "prior", "seed"}.count(item.key()))
            throw Error("encoder_decoder model config: unknown key \"" + item.key() +
                        "\" (expected latent_dimension, data_dimension, decoder, encoder, prior, seed)");
    const int d = requiredDimension(config, "latent_dimension"), D = requiredDimension(config, "data_dimension");
    json decoderConfig = config.value("decoder", json::object());
    json encoderConfig = config.value("encoder", json::object());
    if (!decoderConfig.is_object() || !encoderConfig.is_object())
        throw Error("encoder_decoder model config: \"decoder\" and \"encoder\" must be gaussian_conditional config objects");
    decoderConfig["condition_dimension"] = d;
    decoderConfig["output_dimension"] = D;
    if (!decoderConfig.contains("std"))
        decoderConfig["std"] = "constant";
    encoderConfig["condition_dimension"] = D;
    encoderConfig["output_dimension"] = d;
    decoder = GaussianConditional::fromConfig(decoderConfig);
    encoder = GaussianConditional::fromConfig(encoderConfig);
    if (config.contains("prior")) {
        json priorConfig = config["prior"];
        if (!priorConfig.is_object())
            throw Error("encoder_decoder model config: \"prior\" must be a flow config object");
        if (!priorConfig.contains("dimension"))
            priorConfig["dimension"] = d;
        prior = Flow::fromConfig(priorConfig);
        if (prior->getDimension() != d)
            throw Error("encoder_decoder model config: the prior flow must have dimension latent_dimension = " +
                        std::to_string(d) + ", got " + std::to_string(prior->getDimension()));
        if (prior->getContextDimension() > 0)
            throw Error("encoder_decoder model config: the prior flow must not be conditional");
    }
    if (config.contains("seed"))
        initializeParameters(config["seed"].get<uint64_t>());
}

json EncoderDecoderModel::getConfig() const {
    json config = {{"latent_dimension", getLatentDimension()}, {"data_dimension", getDimension()},
                   {"decoder", decoder->getConfig()}, {"encoder", encoder->getConfig()}};
    if (prior)
        config["prior"] = prior->getConfig();
    return config;
}

Flow& EncoderDecoderModel::getPriorFlow() {
    if (!prior)
        throw Error("EncoderDecoderModel::getPriorFlow: the model's q(z) is N(0, I) (no \"prior\" in its config)");
    return *prior;
}

size_t EncoderDecoderModel::getNumParameters() const {
    return priorOffset() + (prior ? prior->getNumParameters() : 0);
}

void EncoderDecoderModel::getParameters(double* out) const {
    decoder->getParameters(out);
    encoder->getParameters(out + decoder->getNumParameters());
    if (prior)
        prior->getParameters(out + priorOffset());
}

void EncoderDecoderModel::setParameters(const double* in) {
    decoder->setParameters(in);
    encoder->setParameters(in + decoder->getNumParameters());
    if (prior)
        prior->setParameters(in + priorOffset());
    savedBatch = -1;
}

void EncoderDecoderModel::initializeParameters(uint64_t seed) {
    decoder->initializeParameters(seed);
    encoder->initializeParameters(seed + 1);
    if (prior)
        prior->initializeParameters(seed + 2);
    savedBatch = -1;
}

void EncoderDecoderModel::run(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* zOut,
                              bool save) {
    if (n < 0)
        throw Error("EncoderDecoderModel: n must be >= 0, got " + std::to_string(n));
    const int d = getLatentDimension(), D = getDimension();
    Eigen::MatrixXd z(d, n), eps(D, n);
    Eigen::VectorXd logQz(n), logQx, logR;
    if (prior) {
        prior->sample(n, seed, nullptr, z, logQz, save);
    } else {
        const BaseDensity latentBase(std::vector<BaseKind>(d, BaseKind::StandardNormal));
        latentBase.sample(seed, 0, z);
        latentBase.logProb(z, logQz.data());
    }
    BaseDensity(std::vector<BaseKind>(D, BaseKind::StandardNormal)).sample(seed + decoderStreamOffset, 0, eps);
    decoder->sample(z, eps, x, logQx, decoderWorkspace, save);
    encoder->logProb(x, z, logR, encoderWorkspace, save);
    logQ = logQz + logQx - logR;
    if (zOut != nullptr)
        *zOut = z;
    savedBatch = save ? n : -1;
}

void EncoderDecoderModel::sample(int n, uint64_t seed, Eigen::MatrixXd& x, Eigen::VectorXd& logQ, Eigen::MatrixXd* z) {
    run(n, seed, x, logQ, z, false);
}

Eigen::MatrixXd EncoderDecoderModel::encode(const Eigen::MatrixXd& x) const {
    if (x.rows() != getDimension())
        throw Error("EncoderDecoderModel::encode: x has " + std::to_string(x.rows()) + " rows, expected " +
                    std::to_string(getDimension()));
    Eigen::MatrixXd mean, logStd;
    encoder->meanAndLogStd(x, mean, logStd);
    return mean;
}

void EncoderDecoderModel::sampleForTraining(int n, uint64_t seed, const Eigen::MatrixXd* context, Eigen::MatrixXd& x,
                                            Eigen::VectorXd& logQ) {
    if (context != nullptr && context->size() > 0)
        throw Error("EncoderDecoderModel: the model is not conditional, but a context was given");
    run(n, seed, x, logQ, nullptr, true);
}

void EncoderDecoderModel::backwardSample(const Eigen::MatrixXd& gradX, const Eigen::VectorXd& gradLogQ, double* paramGrad,
                                         Eigen::MatrixXd* gradContext, Eigen::MatrixXd* gradBase) {
    if (savedBatch < 0)
        throw Error("EncoderDecoderModel::backwardSample: needs a preceding sampleForTraining()");
    if (gradContext != nullptr || gradBase != nullptr)
        throw Error("EncoderDecoderModel::backwardSample: context and base gradients are not available");
    if (gradX.rows() != getDimension() || gradX.cols() != savedBatch || gradLogQ.size() != savedBatch)
        throw Error("EncoderDecoderModel::backwardSample: gradients do not match the last sample");
    savedBatch = -1;
    gradientBuffer.setZero(static_cast<Eigen::Index>(getNumParameters()));
    double* buffer = gradientBuffer.data();
    // s = log q(z) + log q(x|z) - log r(z|x): r contributes -dL/ds through its parameters, through x (its
    // condition) and through z (its output). With N(0, I), z is fixed noise and nothing flows to it; with
    // the prior flow, z = T(base) and dL/dz (from r, from the decoder's mean and std, and from log q(z)
    // itself, which the flow's backward adds) goes into the flow.
    const Eigen::VectorXd gradLogR = -gradLogQ;
    Eigen::MatrixXd gradXFromEncoder, gradZFromEncoder, gradZFromDecoder;
    encoder->backwardLogProb(gradLogR, &gradXFromEncoder, prior ? &gradZFromEncoder : nullptr,
                             buffer + decoder->getNumParameters(), encoderWorkspace);
    const Eigen::MatrixXd totalGradX = gradX + gradXFromEncoder;
    decoder->backwardSample(&totalGradX, &gradLogQ, prior ? &gradZFromDecoder : nullptr, buffer, decoderWorkspace);
    if (prior)
        prior->backwardSample(gradZFromEncoder + gradZFromDecoder, gradLogQ, buffer + priorOffset());
    if (paramGrad != nullptr)
        for (Eigen::Index i = 0; i < gradientBuffer.size(); i++)
            paramGrad[i] += gradientBuffer[i];
}

} // namespace cgflow::models
