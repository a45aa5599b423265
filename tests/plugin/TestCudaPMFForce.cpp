// PMFForce and CGMonteCarloIntegrator on CUDA (compiled everywhere, run only where a GPU is present) in single, mixed and double precision (first argument).
#include "PMFForce.h"
#include <map>
#include <string>

extern "C" void registerCGFlowCUDAKernelFactories();

static std::string precision = "single";
static const char* platformName() { return "CUDA"; }
static std::map<std::string, std::string> platformProperties() { return {{"Precision", precision}}; }
static bool isDoublePrecision() { return precision == "double"; }
// Float kernels against double: relative energy error of a few float ulps times the depth.
static double energyTolerance() { return isDoublePrecision() ? 1e-9 : 2e-5; }

#include "PMFForceTests.h"
#include "CGMonteCarloTests.h"
#include "GpuVsReferenceTests.h"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc > 1)
        precision = argv[1];
    registerCGFlowCUDAKernelFactories();
    registerCGFlowReferenceKernelFactories();
    return RUN_ALL_TESTS();
}
