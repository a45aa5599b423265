// PMFForce and CGMonteCarloIntegrator on the Reference and CPU platforms (double precision, the ground truth).
#include "PMFForce.h"
#include <map>
#include <string>

extern "C" void registerCGFlowReferenceKernelFactories();

static std::string currentPlatform = "Reference";
static const char* platformName() { return currentPlatform.c_str(); }
static std::map<std::string, std::string> platformProperties() { return {}; }
static bool isDoublePrecision() { return true; }
static double energyTolerance() { return 1e-10; }

#include "PMFForceTests.h"
#include "CGMonteCarloTests.h"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    if (argc > 1 && std::string(argv[1]) == "CPU") {
        // C++ programs load no plugins by themselves; the CPU platform is one.
        Platform::loadPluginLibrary(std::string(CGFLOW_OPENMM_PLUGIN_DIR) + "/libOpenMMCPU.so");
        currentPlatform = "CPU";
    }
    registerCGFlowReferenceKernelFactories();
    return RUN_ALL_TESTS();
}
