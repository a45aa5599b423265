// The peer of benchmarks/energy_target.py: the plainest C++ way to get energies and forces
// of a batch from OpenMM, one Context and a loop. Prints one JSON line with evaluations/s.
//
// usage: plain_context_loop SYSTEM_XML POSITIONS_BIN NUM_CONFIGS PLATFORM SECONDS [PLUGIN_DIR]
//   POSITIONS_BIN: NUM_CONFIGS x N x 3 float64, row-major (nm)
#include "openmm/Context.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include "openmm/serialization/XmlSerializer.h"
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

using namespace OpenMM;

static int run(int argc, char** argv);

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    }
    catch (const std::exception& e) {
        std::cerr << "plain_context_loop: " << e.what() << "\n";
        return 1;
    }
}

static int run(int argc, char** argv) {
    if (argc < 6) {
        std::cerr << "usage: " << argv[0] << " SYSTEM_XML POSITIONS_BIN NUM_CONFIGS PLATFORM SECONDS [PLUGIN_DIR]\n";
        return 2;
    }
    if (argc > 6)
        Platform::loadPluginsFromDirectory(argv[6]);
    std::ifstream xmlFile(argv[1]);
    if (!xmlFile) {
        std::cerr << "cannot read " << argv[1] << "\n";
        return 2;
    }
    std::unique_ptr<System> system(XmlSerializer::deserialize<System>(xmlFile));
    const int n = system->getNumParticles();
    const int configs = std::stoi(argv[3]);
    std::vector<double> flat((size_t) configs * n * 3);
    std::ifstream posFile(argv[2], std::ios::binary);
    if (!posFile.read(reinterpret_cast<char*>(flat.data()), flat.size() * sizeof(double))) {
        std::cerr << "cannot read " << configs << " configurations from " << argv[2] << "\n";
        return 2;
    }
    VerletIntegrator integrator(0.001);
    Context context(*system, integrator, Platform::getPlatformByName(argv[4]));
    std::vector<Vec3> pos(n);
    std::vector<double> energies(configs), forces((size_t) configs * n * 3);
    const double seconds = std::stod(argv[5]);
    long long evaluations = 0;
    auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
        for (int b = 0; b < configs; b++) {
            for (int i = 0; i < n; i++)
                pos[i] = Vec3(flat[((size_t) b * n + i) * 3], flat[((size_t) b * n + i) * 3 + 1], flat[((size_t) b * n + i) * 3 + 2]);
            context.setPositions(pos);
            State state = context.getState(State::Energy | State::Forces);
            energies[b] = state.getPotentialEnergy();
            const std::vector<Vec3>& f = state.getForces();
            for (int i = 0; i < n; i++)
                for (int k = 0; k < 3; k++)
                    forces[((size_t) b * n + i) * 3 + k] = f[i][k];
        }
        evaluations += configs;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::printf("{\"name\": \"plain_loop_evals_per_s\", \"value\": %.3f, \"unit\": \"1/s\", \"platform\": \"%s\"}\n",
                evaluations / elapsed, argv[4]);
    return 0;
}
