#ifndef CGFLOW_PMFFORCE_TEST_UTILS_H_
#define CGFLOW_PMFFORCE_TEST_UTILS_H_

// Shared helpers for the PMFForce tests of every platform: random models and systems,
// finite differences, and a double-precision evaluation of the PMF that does not go
// through any OpenMM kernel.

#include "PMFForce.h"
#include "cgflow/coords/Features.h"
#include "cgflow/io/models/MLPEnsembleFile.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "openmm/Context.h"
#include "openmm/Platform.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/Vec3.h"
#include <random>
#include <string>
#include <vector>

namespace cgflowtest {

/** A random ensemble as model-file bytes. Weights scaled so outputs are O(10) kJ/mol. */
inline std::string randomEnsembleBytes(const std::vector<int>& widths, int members, cgflow::nn::Activation act,
                                       unsigned seed, double outputScale = 10.0) {
    std::vector<cgflow::nn::MLP> mlps;
    for (int m = 0; m < members; m++) {
        cgflow::nn::MLP mlp(widths, act);
        mlp.initializeParameters(seed * 100 + m);
        std::mt19937 gen(seed * 7 + m);
        std::normal_distribution<double> normal(0.0, 0.5);
        for (int l = 0; l < mlp.getNumLayers(); l++)
            for (int j = 0; j < mlp.bias(l).size(); j++)
                mlp.bias(l)[j] = normal(gen);
        mlp.weight(mlp.getNumLayers() - 1) *= outputScale;
        mlps.push_back(mlp);
    }
    return cgflow::io::encodeMLPEnsemble(cgflow::nn::MLPEnsemble(mlps));
}

/** Six particles and one feature of every kind: 8 model inputs. */
inline void addAllFeatureKinds(CGFlowPlugin::PMFForce& force) {
    force.addDistance(0, 1);
    force.addAngle(0, 1, 2);
    force.addDihedral(0, 1, 2, 3);
    force.addCoordinate(4, 1);
    force.addCoordinate(5, 0, 2.0);
    force.addDistance(3, 5);
}

inline std::vector<OpenMM::Vec3> randomPositions(int n, unsigned seed, double scale = 0.6) {
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> u(-scale, scale);
    std::vector<OpenMM::Vec3> pos;
    for (int i = 0; i < n; i++)
        pos.push_back(OpenMM::Vec3(u(gen), u(gen), u(gen)));
    return pos;
}

/** Double-precision PMF straight from core, for checking kernels. */
inline double directEnergy(const CGFlowPlugin::PMFForce& force, const std::vector<OpenMM::Vec3>& pos,
                           const cgflow::coords::PeriodicBox& box = cgflow::coords::PeriodicBox()) {
    std::vector<cgflow::coords::Feature> features;
    for (const auto& f : force.getFeatures()) {
        cgflow::coords::Feature c;
        c.type = static_cast<cgflow::coords::FeatureType>(f.type);
        c.particles = f.particles;
        c.axis = f.axis;
        c.period = f.period;
        features.push_back(c);
    }
    Eigen::VectorXd x(cgflow::coords::totalWidth(features));
    std::vector<double> flat;
    for (const OpenMM::Vec3& p : pos)
        flat.insert(flat.end(), {p[0], p[1], p[2]});
    cgflow::coords::computeFeatures(features, flat.data(), box, x.data());
    cgflow::nn::MLPEnsemble ensemble = force.getEnsemble();
    cgflow::nn::MLPEnsemble::Result r;
    ensemble.evaluate(x, false, r);
    return r.mean;
}

inline double energyAt(OpenMM::Context& context, const std::vector<OpenMM::Vec3>& pos) {
    context.setPositions(pos);
    return context.getState(OpenMM::State::Energy).getPotentialEnergy();
}

/** Central finite-difference forces of the context's energy. */
inline std::vector<OpenMM::Vec3> finiteDifferenceForces(OpenMM::Context& context, std::vector<OpenMM::Vec3> pos, double h) {
    std::vector<OpenMM::Vec3> forces(pos.size());
    for (size_t i = 0; i < pos.size(); i++)
        for (int k = 0; k < 3; k++) {
            double x0 = pos[i][k];
            pos[i][k] = x0 + h;
            double ep = energyAt(context, pos);
            pos[i][k] = x0 - h;
            double em = energyAt(context, pos);
            pos[i][k] = x0;
            forces[i][k] = -(ep - em) / (2 * h);
        }
    context.setPositions(pos);
    return forces;
}

} // namespace cgflowtest

#endif
