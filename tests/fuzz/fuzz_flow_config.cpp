// libFuzzer target: flow configs (the builder form and the explicit form) as JSON text.
// Documented refusals: cgflow::Error ("Unknown keys -> Error naming them", bad values). Text that is
// not JSON is not the flow code's concern and is skipped. A flow that builds must round-trip through
// getConfig() and evaluate a tiny batch without crashing.
#include "FuzzCommon.h"
#include "cgflow/Error.h"
#include "cgflow/flows/Flow.h"
#include "cgflow/flows/FlowConfig.h"

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <string>

using namespace cgflow;

namespace {
constexpr uint64_t kMaxParameters = 2000000;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const nlohmann::json config = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded())
        return 0;
    try {
        flows::expandFlowConfig(config);
    } catch (const Error&) {
    }
    std::unique_ptr<flows::Flow> flow;
    try {
        // A config may legitimately ask for a big network (the builder's defaults give a 2000-dimensional
        // flow ~70M parameters); building those is slow but correct, so the harness caps the size with
        // the same ParameterBudget the model-file decoders use (which also fuzzes the budget itself).
        flows::ParameterBudget budget(kMaxParameters);
        flow = flows::buildFlow(config);
    } catch (const Error&) {
        return 0; // refused
    }
    // The explicit form written by getConfig() builds the same architecture.
    const nlohmann::json explicitConfig = flow->getConfig();
    flows::ParameterBudget budget(kMaxParameters);
    std::unique_ptr<flows::Flow> again = flows::buildFlow(explicitConfig);
    FUZZ_CHECK(again->getConfig() == explicitConfig, "buildFlow(getConfig()) changed the config");
    FUZZ_CHECK(again->getNumParameters() == flow->getNumParameters(), "buildFlow(getConfig()) changed the size");
    // Evaluate two samples when the flow is small enough to be quick.
    if (flow->getDimension() <= 64 && flow->getNumParameters() <= 200000 && flow->getContextDimension() <= 64) {
        flow->setNumThreads(1);
        Eigen::MatrixXd context = Eigen::MatrixXd::Constant(flow->getContextDimension(), 2, 0.25);
        const Eigen::MatrixXd* contextPtr = flow->getContextDimension() > 0 ? &context : nullptr;
        Eigen::MatrixXd x;
        Eigen::VectorXd logQ, logQBack;
        try {
            flow->sample(2, 7, contextPtr, x, logQ);
            flow->logProb(x, contextPtr, logQBack);
        } catch (const Error&) {
        }
    }
    return 0;
}
