#include "cgflow/flows/FlowConfig.h"

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"
#include "cgflow/flows/AffineCoupling.h"
#include "cgflow/flows/Permutation.h"
#include "cgflow/flows/AtomPermutation.h"
#include "cgflow/flows/ContinuousFlow.h"
#include "cgflow/flows/RightStochasticLinear.h"
#include "cgflow/flows/SplineCoupling.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace cgflow::flows {

namespace {

using nlohmann::json;

const std::set<std::string> commonKeys = {"dimension", "circular", "context_dimension", "context_circular",
                                          "precision", "seed",     "num_threads"};
const std::set<std::string> explicitKeys = {"base", "layers"};
const std::set<std::string> builderKeys = {"coupling",      "num_layers",     "masks",          "mask_seed",
                                           "shifts",        "shift_seed",     "circular_shift", "base",
                                           "base_bound",    "num_bins",       "bound",          "min_bin_width",
                                           "min_bin_height", "min_derivative", "hidden",         "num_blocks",
                                           "activation",    "time_embedding", "atol",           "rtol"};

void checkKeys(const json& config, std::set<std::string> allowed, const char* form) {
    allowed.insert(commonKeys.begin(), commonKeys.end());
    io::checkKeys(config, allowed, std::string("flow config (") + form + " form)");
}

const std::string where = "flow config";

int intField(const json& config, const char* key, int fallback) {
    return io::readInt(config, key, fallback, where);
}

uint64_t seedField(const json& config, const char* key) {
    return io::readUnsigned(config, key, 0, where);
}

std::vector<bool> indexMask(const json& config, const char* key, int size) {
    std::vector<bool> mask(size, false);
    if (!config.contains(key))
        return mask;
    if (!config[key].is_array())
        throw Error(std::string("flow config: \"") + key + "\" must be an array of indices");
    for (const auto& v : config[key]) {
        if (!io::isInt(v) || v.get<int>() < 0 || v.get<int>() >= size)
            throw Error(std::string("flow config: \"") + key + "\" entries must be integers in [0, " +
                        std::to_string(size) + ")");
        mask[v.get<int>()] = true;
    }
    return mask;
}

json maskIndices(const std::vector<bool>& mask) {
    json indices = json::array();
    for (size_t i = 0; i < mask.size(); i++)
        if (mask[i])
            indices.push_back(i);
    return indices;
}

std::unique_ptr<Bijection> makeLayer(const json& layer, const std::vector<bool>& circular, int index) {
    if (!layer.is_object() || !layer.contains("type") || !layer["type"].is_string())
        throw Error("flow config: layer " + std::to_string(index) + " must be an object with a string \"type\"");
    const std::string type = layer["type"].get<std::string>();
    if (type == "spline_coupling")
        return SplineCoupling::fromConfig(layer, circular);
    if (type == "affine_coupling")
        return AffineCoupling::fromConfig(layer, circular);
    if (type == "permutation")
        return Permutation::fromConfig(layer, circular);
    if (type == "circular_shift")
        return CircularShift::fromConfig(layer, circular);
    if (type == "right_stochastic_linear")
        return RightStochasticLinear::fromConfig(layer, circular);
    if (type == "atom_permutation")
        return AtomPermutation::fromConfig(layer, circular);
    if (type == "continuous_flow")
        return ContinuousFlow::fromConfig(layer, circular);
    throw Error("flow config: layer " + std::to_string(index) + " has unknown type \"" + type +
                "\"; expected spline_coupling, affine_coupling, permutation, circular_shift, "
                "right_stochastic_linear, atom_permutation or continuous_flow");
}

// The builder form's coupling stack. Masks and shifts are drawn here once and written out, so the
// explicit config fully determines the architecture.
// The builder form of a continuous normalizing flow: one continuous_flow layer whose vector field
// has "num_layers" hidden layers of width "hidden".
json expandContinuous(const json& config, int contextFeatures) {
    for (const char* key : {"masks", "mask_seed", "shifts", "shift_seed", "circular_shift", "num_bins", "bound",
                            "min_bin_width", "min_bin_height", "min_derivative", "num_blocks"})
        if (config.contains(key))
            throw Error(std::string("flow config: \"") + key + "\" belongs to coupling flows, not to \"coupling\": "
                        "\"continuous\"");
    if (contextFeatures > 0)
        throw Error("flow config: a continuous flow is unconditional; \"context_dimension\" must be 0");
    const int numLayers = intField(config, "num_layers", 3);
    const int hidden = intField(config, "hidden", 96);
    if (numLayers < 0 || numLayers > 64)
        throw Error("flow config: \"num_layers\" (hidden layers of the vector field) must be in [0, 64], got " +
                    std::to_string(numLayers));
    json layer = {{"type", "continuous_flow"}, {"hidden", std::vector<int>(numLayers, hidden)}};
    for (const char* key : {"time_embedding", "activation", "atol", "rtol"})
        if (config.contains(key))
            layer[key] = config[key];
    return json::array({layer});
}

json expandBuilder(const json& config, int dimension, const std::vector<bool>& circular, int contextFeatures) {
    const std::string coupling = config.value("coupling", std::string("spline"));
    if (coupling == "continuous")
        return expandContinuous(config, contextFeatures);
    for (const char* key : {"time_embedding", "atol", "rtol"})
        if (config.contains(key))
            throw Error(std::string("flow config: \"") + key + "\" belongs to \"coupling\": \"continuous\"");
    if (coupling != "spline" && coupling != "affine" && coupling != "elementwise")
        throw Error("flow config: \"coupling\" must be \"spline\", \"affine\", \"elementwise\" or \"continuous\", got \"" +
                    coupling + "\"");
    const int numLayers = intField(config, "num_layers", 12);
    if (numLayers < 1 || numLayers > MaxBuilderLayers)
        throw Error("flow config: \"num_layers\" must be in [1, " + std::to_string(MaxBuilderLayers) + "], got " +
                    std::to_string(numLayers));
    const bool paired = coupling != "elementwise";
    if (paired && (numLayers % 2 != 0 || dimension < 2))
        throw Error("flow config: coupling layers come in complementary pairs, so \"num_layers\" must be even and the "
                    "dimension >= 2 (got " + std::to_string(numLayers) + " layers, dimension " +
                    std::to_string(dimension) + "); use \"coupling\": \"elementwise\" for 1-D problems");
    const int numPairs = paired ? numLayers / 2 : 0;

    std::vector<std::vector<bool>> masks;
    if (paired && config.contains("masks")) {
        if (!config["masks"].is_array() || static_cast<int>(config["masks"].size()) != numPairs)
            throw Error("flow config: \"masks\" must be a list of " + std::to_string(numPairs) +
                        " masks (one per coupling pair)");
        for (const auto& m : config["masks"]) {
            if (!m.is_array() || static_cast<int>(m.size()) != dimension)
                throw Error("flow config: every mask must be a list of " + std::to_string(dimension) + " booleans");
            std::vector<bool> mask;
            int count = 0;
            for (const auto& v : m) {
                if (!v.is_boolean())
                    throw Error("flow config: mask entries must be booleans");
                mask.push_back(v.get<bool>());
                count += v.get<bool>();
            }
            if (count == 0 || count == dimension)
                throw Error("flow config: a mask must transform some but not all dimensions");
            masks.push_back(mask);
        }
    } else if (paired) {
        const uint64_t seed = seedField(config, "mask_seed");
        for (int p = 0; p < numPairs; p++) {
            std::vector<int> order(dimension);
            for (int d = 0; d < dimension; d++)
                order[d] = d;
            std::mt19937_64 engine(seed + static_cast<uint64_t>(p));
            for (int i = dimension; i > 1; i--)
                std::swap(order[i - 1], order[engine() % static_cast<uint64_t>(i)]);
            std::vector<bool> mask(dimension, false);
            for (int i = 0; i < dimension / 2; i++)
                mask[order[i]] = true;
            masks.push_back(mask);
        }
    }

    bool anyCircular = false;
    for (bool c : circular)
        anyCircular = anyCircular || c;
    const bool shiftsWanted = paired && anyCircular && config.value("circular_shift", true);
    std::vector<std::vector<double>> shifts;
    if (shiftsWanted && config.contains("shifts")) {
        if (!config["shifts"].is_array() || static_cast<int>(config["shifts"].size()) != numPairs - 1)
            throw Error("flow config: \"shifts\" must be a list of " + std::to_string(numPairs - 1) +
                        " lists (one after every coupling pair but the last)");
        for (const auto& s : config["shifts"]) {
            if (!s.is_array())
                throw Error("flow config: every entry of \"shifts\" must be a list of numbers");
            std::vector<double> values;
            for (const auto& v : s) {
                if (!v.is_number())
                    throw Error("flow config: shift values must be numbers");
                values.push_back(v.get<double>());
            }
            shifts.push_back(values);
        }
    } else if (shiftsWanted) {
        const uint64_t seed = seedField(config, "shift_seed");
        for (int p = 0; p + 1 < numPairs; p++)
            shifts.push_back(CircularShift::random(circular, seed + static_cast<uint64_t>(p))->getShifts());
    }

    json layer = {{"context_features", contextFeatures},
                  {"hidden", intField(config, "hidden", 256)},
                  {"num_blocks", intField(config, "num_blocks", 1)},
                  {"activation", config.value("activation", std::string("relu"))}};
    if (coupling != "affine") {
        const SplineOptions defaults;
        layer["num_bins"] = intField(config, "num_bins", defaults.numBins);
        layer["bound"] = config.value("bound", defaults.bound);
        layer["min_bin_width"] = config.value("min_bin_width", defaults.minBinWidth);
        layer["min_bin_height"] = config.value("min_bin_height", defaults.minBinHeight);
        layer["min_derivative"] = config.value("min_derivative", defaults.minDerivative);
    }
    layer["type"] = coupling == "affine" ? "affine_coupling" : "spline_coupling";

    json layers = json::array();
    if (!paired) {
        layer["transformed"] = maskIndices(std::vector<bool>(dimension, true));
        for (int l = 0; l < numLayers; l++)
            layers.push_back(layer);
        return layers;
    }
    for (int p = 0; p < numPairs; p++) {
        std::vector<bool> complement(dimension);
        for (int d = 0; d < dimension; d++)
            complement[d] = !masks[p][d];
        layer["transformed"] = maskIndices(masks[p]);
        layers.push_back(layer);
        layer["transformed"] = maskIndices(complement);
        layers.push_back(layer);
        if (shiftsWanted && p + 1 < numPairs)
            layers.push_back({{"type", "circular_shift"}, {"shifts", shifts[p]}});
    }
    return layers;
}

} // namespace

json expandFlowConfig(const json& config) {
    if (!config.is_object())
        throw Error("flow config must be a JSON object (a dict)");
    const int dimension = intField(config, "dimension", -1);
    if (dimension < 1)
        throw Error("flow config: \"dimension\" (an integer >= 1) is required");
    if (dimension > MaxFlowDimension)
        throw Error("flow config: \"dimension\" must be <= " + std::to_string(MaxFlowDimension) + ", got " +
                    std::to_string(dimension));
    const bool isExplicit = config.contains("layers");
    checkKeys(config, isExplicit ? explicitKeys : builderKeys, isExplicit ? "explicit" : "builder");
    const std::vector<bool> circular = indexMask(config, "circular", dimension);
    const int contextDimension = intField(config, "context_dimension", 0);
    if (contextDimension < 0 || contextDimension > MaxFlowDimension)
        throw Error("flow config: \"context_dimension\" must be in [0, " + std::to_string(MaxFlowDimension) + "]");
    const std::vector<bool> contextCircular = indexMask(config, "context_circular", contextDimension);
    int contextFeatures = 0;
    for (bool c : contextCircular)
        contextFeatures += c ? 2 : 1;

    json out = {{"dimension", dimension},
                {"circular", maskIndices(circular)},
                {"context_dimension", contextDimension},
                {"context_circular", maskIndices(contextCircular)},
                {"precision", config.value("precision", std::string("float64"))}};
    for (const char* key : {"seed", "num_threads"})
        if (config.contains(key))
            out[key] = config[key];
    if (isExplicit) {
        if (!config.contains("base"))
            throw Error("flow config (explicit form): \"base\" is required");
        out["base"] = config["base"];
        out["layers"] = config["layers"];
        return out;
    }
    std::string realKind = "normal";
    if (config.contains("base")) {
        if (!config["base"].is_string())
            throw Error("flow config (builder form): \"base\" must be \"normal\" or \"truncated_normal\"");
        realKind = config["base"].get<std::string>();
        if (parseBaseKind(realKind) == BaseKind::UniformCircle)
            throw Error("flow config: \"base\" sets the density of the real dimensions; circular ones are always "
                        "uniform_circle");
    }
    json kinds = json::array();
    for (int d = 0; d < dimension; d++)
        kinds.push_back(circular[d] ? std::string("uniform_circle") : realKind);
    out["base"] = {{"kinds", kinds}};
    if (realKind == "truncated_normal") {
        if (config.contains("base_bound") && !config["base_bound"].is_number())
            throw Error("flow config: \"base_bound\" must be a number");
        out["base"]["truncation_bound"] = config.value("base_bound", 5.0);
    }
    out["layers"] = expandBuilder(config, dimension, circular, contextFeatures);
    return out;
}

std::unique_ptr<Flow> buildFlow(const json& configIn) {
    const json config = expandFlowConfig(configIn);
    const int dimension = config["dimension"].get<int>();
    const std::vector<bool> circular = indexMask(config, "circular", dimension);
    BaseDensity base = BaseDensity::fromConfig(config["base"]);
    if (base.getDimension() != dimension)
        throw Error("flow config: the base density has " + std::to_string(base.getDimension()) +
                    " kinds, expected the dimension " + std::to_string(dimension));
    if (base.getCircular() != circular)
        throw Error("flow config: the base density's uniform_circle dimensions must be exactly the \"circular\" ones");
    if (!config["layers"].is_array())
        throw Error("flow config: \"layers\" must be an array");
    std::vector<std::unique_ptr<Bijection>> layers;
    std::vector<bool> current = circular;
    int index = 0;
    for (const auto& layer : config["layers"]) {
        layers.push_back(makeLayer(layer, current, index++));
        current = layers.back()->getOutputCircular();
    }
    const int contextDimension = config["context_dimension"].get<int>();
    auto flow = std::make_unique<Flow>(std::move(base), std::move(layers),
                                       indexMask(config, "context_circular", contextDimension));
    flow->initializeParameters(seedField(config, "seed"));
    if (!config["precision"].is_string())
        throw Error("flow config: \"precision\" must be a string");
    flow->setPrecision(nn::parsePrecision(config["precision"].get<std::string>()));
    if (config.contains("num_threads"))
        flow->setNumThreads(intField(config, "num_threads", 1));
    return flow;
}

namespace {
thread_local ParameterBudget* innermostBudget = nullptr;

std::string formatCount(double count) {
    char text[64];
    std::snprintf(text, sizeof(text), "%.0f", count);
    return text;
}
} // namespace

ParameterBudget::ParameterBudget(uint64_t maxParametersIn) : maxParameters(maxParametersIn), outer(innermostBudget) {
    innermostBudget = this;
}

ParameterBudget::~ParameterBudget() {
    innermostBudget = outer;
}

void ParameterBudget::charge(double count, const std::string& what) {
    ParameterBudget* budget = innermostBudget;
    if (budget == nullptr)
        return;
    if (!(count >= 0) || count > static_cast<double>(budget->maxParameters - budget->used))
        throw Error(what + " would have " + formatCount(count) + " parameters, more than the " +
                    std::to_string(budget->maxParameters - budget->used) + " left of the " +
                    std::to_string(budget->maxParameters) + " the model holds");
    budget->used += static_cast<uint64_t>(count);
}

std::unique_ptr<Flow> Flow::fromConfig(const json& config) {
    return buildFlow(config);
}

std::unique_ptr<Flow> Flow::clone() const {
    std::unique_ptr<Flow> copy = buildFlow(getConfig());
    copy->setParameters(getParameters());
    copy->setNumThreads(numThreads);
    return copy;
}

json Flow::getConfig() const {
    std::vector<bool> circular = base.getCircular();
    json layerConfigs = json::array();
    for (const auto& layer : layers)
        layerConfigs.push_back(layer->getConfig());
    return {{"dimension", getDimension()},
            {"circular", maskIndices(circular)},
            {"context_dimension", getContextDimension()},
            {"context_circular", maskIndices(contextCircular)},
            {"base", base.getConfig()},
            {"layers", layerConfigs},
            {"precision", nn::precisionName(precision)}};
}

} // namespace cgflow::flows
