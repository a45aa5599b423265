#include "cgflow/io/models/SlowFastModelFile.h"
#include "StoredParameters.h"

#include "cgflow/Error.h"
#include "cgflow/io/ModelFile.h"
#include "cgflow/flows/FlowConfig.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace cgflow::io {

std::string encodeSlowFastModel(const models::SlowFastModel& model, const nlohmann::json& info) {
    ModelFile file;
    file.kind = SlowFastModelKind;
    file.architecture = {{"model", model.getConfig()}};
    file.info = info;
    std::vector<double> parameters(model.getNumParameters());
    model.getParameters(parameters.data());
    file.tensors["parameters"] = Tensor::fromDoubles({static_cast<int64_t>(parameters.size())}, parameters.data());
    return file.serialize();
}

std::unique_ptr<models::SlowFastModel> decodeSlowFastModel(const std::string& bytes, const std::string& sourceName) {
    const ModelFile file = ModelFile::parse(bytes, sourceName);
    if (file.kind != SlowFastModelKind)
        throw Error(sourceName + ": kind is '" + file.kind + "', expected '" + SlowFastModelKind + "'");
    try {
        if (!file.architecture.contains("model"))
            throw Error("architecture field 'model' (the slow/fast model config) is missing");
        std::unique_ptr<models::SlowFastModel> model;
        {
            // The model's flows may not need more parameters than the file holds (see ParameterBudget).
            flows::ParameterBudget budget(storedParameterCount(file));
            model = std::make_unique<models::SlowFastModel>(file.architecture.at("model"));
        }
        const std::vector<double> parameters =
            file.getTensor("parameters", {static_cast<int64_t>(model->getNumParameters())}).toDoubles("parameters");
        for (double p : parameters)
            if (!std::isfinite(p))
                throw Error("tensor 'parameters' contains non-finite values");
        model->setParameters(parameters.data());
        return model;
    }
    catch (const Error& e) {
        throw withSourceName(e, sourceName);
    }
}

} // namespace cgflow::io
