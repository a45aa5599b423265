#include "cgflow/io/models/FlowFile.h"
#include "StoredParameters.h"

#include "cgflow/Error.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/flows/FlowConfig.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace cgflow::io {

using nlohmann::json;

namespace {

Tensor int64Tensor(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
    Tensor t;
    t.dtype = DType::I64;
    t.shape = std::move(shape);
    t.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
    return t;
}

std::vector<int64_t> int64Values(const Tensor& t, const std::string& name) {
    if (t.dtype != DType::I64)
        throw Error("tensor '" + name + "' must be I64, got " + dtypeName(t.dtype));
    std::vector<int64_t> values(static_cast<size_t>(t.numel()));
    std::memcpy(values.data(), t.bytes.data(), values.size() * sizeof(int64_t));
    return values;
}

} // namespace

std::string encodeFlow(const flows::Flow& flow, train::ModelTrainer* trainer, const json& info) {
    ModelFile model;
    model.kind = FlowKind;
    model.architecture = {{"flow", flow.getConfig()}};
    model.info = info;
    const int64_t n = static_cast<int64_t>(flow.getNumParameters());
    std::vector<double> params = flow.getParameters();
    model.tensors["parameters"] = Tensor::fromDoubles({n}, params.data());
    if (trainer != nullptr) {
        if (&trainer->getFlow() != &flow)
            throw Error("encodeFlow: the trainer trains a different flow");
        model.architecture["training"] = trainer->getOptions().toJson();
        const optim::AdamState state = trainer->getOptimizer().getState();
        model.tensors["optimizer.first_moment"] = Tensor::fromDoubles({n}, state.firstMoment.data());
        model.tensors["optimizer.second_moment"] = Tensor::fromDoubles({n}, state.secondMoment.data());
        model.tensors["optimizer.step_count"] = int64Tensor({}, {state.stepCount});
        if (trainer->getGuard() != nullptr) {
            const optim::GradientGuard::State guard = trainer->getGuard()->getState();
            model.tensors["guard.history"] =
                Tensor::fromDoubles({static_cast<int64_t>(guard.history.size())}, guard.history.data());
            model.tensors["guard.counters"] =
                int64Tensor({4}, {guard.numAccepted, guard.numClipped, guard.numSkipped, guard.consecutiveSkips});
        }
    }
    return model.serialize();
}

DecodedFlow decodeFlow(const std::string& bytes, const std::string& sourceName) {
    try {
        const ModelFile model = ModelFile::parse(bytes, sourceName);
        if (model.kind != FlowKind)
            throw Error("model kind is '" + model.kind + "', expected '" + FlowKind + "'");
        for (const auto& item : model.architecture.items())
            if (item.key() != "flow" && item.key() != "training")
                throw Error("unexpected architecture field '" + item.key() + "' (expected flow, training)");
        DecodedFlow decoded;
        decoded.flow = readFlow(model);
        decoded.info = model.info;
        const int64_t n = static_cast<int64_t>(decoded.flow->getNumParameters());
        std::set<std::string> expected = {"parameters"};
        if (model.architecture.contains("training")) {
            FlowTrainingState training;
            training.options = train::ModelTrainerOptions::fromJson(model.architecture["training"]);
            training.optimizer.firstMoment =
                model.getTensor("optimizer.first_moment", {n}).toDoubles("optimizer.first_moment");
            training.optimizer.secondMoment =
                model.getTensor("optimizer.second_moment", {n}).toDoubles("optimizer.second_moment");
            training.optimizer.stepCount =
                int64Values(model.getTensor("optimizer.step_count", {}), "optimizer.step_count")[0];
            expected.insert({"optimizer.first_moment", "optimizer.second_moment", "optimizer.step_count"});
            if (training.options.guard) {
                auto historyIt = model.tensors.find("guard.history");
                if (historyIt == model.tensors.end())
                    throw Error("missing tensor 'guard.history'");
                optim::GradientGuard::State guard;
                guard.history = historyIt->second.toDoubles("guard.history");
                if (historyIt->second.shape.size() != 1)
                    throw Error("tensor 'guard.history' must be 1-D");
                std::vector<int64_t> counters = int64Values(model.getTensor("guard.counters", {4}), "guard.counters");
                guard.numAccepted = counters[0];
                guard.numClipped = counters[1];
                guard.numSkipped = counters[2];
                guard.consecutiveSkips = static_cast<int>(counters[3]);
                training.guard = guard;
                expected.insert({"guard.history", "guard.counters"});
            }
            decoded.training = training;
        }
        for (const auto& item : model.tensors)
            if (!expected.count(item.first))
                throw Error("unexpected tensor '" + item.first + "'");
        return decoded;
    } catch (const Error& e) {
        throw withSourceName(e, sourceName);
    }
}

std::unique_ptr<flows::Flow> readFlow(const ModelFile& model) {
    if (!model.architecture.contains("flow"))
        throw Error("architecture field 'flow' (the flow config) is missing");
    // The parameters are in the file: a flow needing more than it holds is refused before it is built.
    std::unique_ptr<flows::Flow> flow;
    {
        flows::ParameterBudget budget(storedParameterCount(model));
        flow = flows::Flow::fromConfig(model.architecture.at("flow"));
    }
    const int64_t n = static_cast<int64_t>(flow->getNumParameters());
    std::vector<double> params = model.getTensor("parameters", {n}).toDoubles("parameters");
    for (double p : params)
        if (!std::isfinite(p))
            throw Error("tensor 'parameters' contains non-finite values");
    flow->setParameters(params);
    return flow;
}

std::unique_ptr<train::ModelTrainer> restoreTrainer(DecodedFlow& decoded) {
    if (!decoded.training)
        throw Error("restoreTrainer: the model file holds no training state (it was saved without a trainer)");
    auto trainer = std::make_unique<train::ModelTrainer>(*decoded.flow, decoded.training->options);
    trainer->getOptimizer().setState(decoded.training->optimizer);
    if (decoded.training->guard)
        trainer->getGuard()->setState(*decoded.training->guard);
    return trainer;
}

} // namespace cgflow::io
