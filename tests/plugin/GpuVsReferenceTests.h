// GPU kernels against the double-precision Reference kernel, for random models and
// configurations. Included after PMFForceTests.h by the OpenCL and CUDA tests.
extern "C" void registerCGFlowReferenceKernelFactories();

TEST(PMFForce, MatchesReferenceForRandomModels) {
    std::vector<Activation> activations = {Activation::Tanh, Activation::Sigmoid, Activation::Softplus,
                                           Activation::SiLU, Activation::ReLU};
    // Include a network too large for local memory, to exercise the global-scratch path.
    std::vector<std::vector<int>> architectures = {{8, 32, 1}, {8, 64, 48, 16, 1}, {8, 1100, 1100, 1}};
    unsigned seed = 1;
    for (const std::vector<int>& widths : architectures)
        for (Activation act : activations) {
            if (widths[1] > 1000 && act != Activation::Tanh)
                continue;
            System system = makeSystem(6);
            PMFForce* force = new PMFForce();
            force->setModelBytes(randomEnsembleBytes(widths, 3, act, seed++));
            addAllFeatureKinds(*force);
            system.addForce(force);
            VerletIntegrator i1(0.001), i2(0.001);
            Context gpu(system, i1, platform(), platformProperties());
            Context ref(system, i2, Platform::getPlatformByName("Reference"));
            for (unsigned trial = 0; trial < 3; trial++) {
                std::vector<Vec3> pos = randomPositions(6, 1000 * seed + trial);
                gpu.setPositions(pos);
                ref.setPositions(pos);
                State sg = gpu.getState(State::Energy | State::Forces);
                State sr = ref.getState(State::Energy | State::Forces);
                double e = sr.getPotentialEnergy();
                EXPECT_NEAR(sg.getPotentialEnergy(), e, energyTolerance() * std::max(1.0, std::fabs(e)));
                double norm = 0;
                for (const Vec3& f : sr.getForces())
                    norm += f.dot(f);
                norm = std::sqrt(norm);
                // Forces: relative to the force norm, 1e-4 in float (cancellation in dihedral derivatives).
                double tol = (isDoublePrecision() ? 1e-8 : 1e-4) * std::max(1.0, norm);
                for (int i = 0; i < 6; i++)
                    for (int k = 0; k < 3; k++)
                        EXPECT_NEAR(sg.getForces()[i][k], sr.getForces()[i][k], tol)
                            << "widths[1]=" << widths[1] << " act=" << (int) act << " particle " << i;
                std::vector<double> mg = force->getEnsembleEnergies(gpu), mr = force->getEnsembleEnergies(ref);
                for (size_t m = 0; m < mr.size(); m++)
                    EXPECT_NEAR(mg[m], mr[m], energyTolerance() * std::max(1.0, std::fabs(mr[m])));
            }
        }
}

TEST(PMFForce, SingularGeometriesMatchReference) {
    // Coincident and collinear particles: features are defined, gradients are not; both paths
    // must give the same finite energy and forces (the undefined terms contribute nothing).
    System system = makeSystem(6);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 16, 1}, 2, Activation::Tanh, 77));
    addAllFeatureKinds(*force);
    system.addForce(force);
    VerletIntegrator i1(0.001), i2(0.001);
    Context gpu(system, i1, platform(), platformProperties());
    Context ref(system, i2, Platform::getPlatformByName("Reference"));
    std::vector<Vec3> pos = {Vec3(0, 0, 0), Vec3(0, 0, 0), Vec3(0.3, 0, 0), Vec3(0.6, 0, 0), Vec3(0.1, 0.2, 0.3), Vec3(0.6, 0, 0)};
    gpu.setPositions(pos);
    ref.setPositions(pos);
    State sg = gpu.getState(State::Energy | State::Forces);
    State sr = ref.getState(State::Energy | State::Forces);
    ASSERT_TRUE(std::isfinite(sr.getPotentialEnergy()));
    EXPECT_NEAR(sg.getPotentialEnergy(), sr.getPotentialEnergy(), energyTolerance() * std::max(1.0, std::fabs(sr.getPotentialEnergy())));
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++) {
            ASSERT_TRUE(std::isfinite(sg.getForces()[i][k])) << "particle " << i;
            EXPECT_NEAR(sg.getForces()[i][k], sr.getForces()[i][k], isDoublePrecision() ? 1e-8 : 1e-3);
        }
}

TEST(PMFForce, ParticleGroupsMatchReference) {
    // Many copies, as a CG Monte Carlo integrator's walkers: every (copy, member) pair is one work group.
    const int copies = 40;
    System system = makeSystem(6 * copies);
    PMFForce* force = new PMFForce();
    force->setModelBytes(randomEnsembleBytes({8, 24, 12, 1}, 4, Activation::Sigmoid, 8));
    addAllFeatureKinds(*force);
    for (int c = 0; c < copies; c++)
        force->addParticleGroup({c, copies + c, 2 * copies + c, 3 * copies + c, 4 * copies + c, 5 * copies + c});
    system.addForce(force);
    VerletIntegrator i1(0.001), i2(0.001);
    Context gpu(system, i1, platform(), platformProperties());
    Context ref(system, i2, Platform::getPlatformByName("Reference"));
    std::vector<Vec3> pos = randomPositions(6 * copies, 31);
    gpu.setPositions(pos);
    ref.setPositions(pos);
    State sg = gpu.getState(State::Energy | State::Forces);
    State sr = ref.getState(State::Energy | State::Forces);
    const double e = sr.getPotentialEnergy();
    EXPECT_NEAR(sg.getPotentialEnergy(), e, energyTolerance() * std::max(1.0, std::fabs(e)) * copies);
    double norm = 0;
    for (const Vec3& f : sr.getForces())
        norm += f.dot(f);
    norm = std::sqrt(norm / copies);
    for (int i = 0; i < 6 * copies; i++)
        for (int k = 0; k < 3; k++)
            EXPECT_NEAR(sg.getForces()[i][k], sr.getForces()[i][k], (isDoublePrecision() ? 1e-8 : 1e-4) * std::max(1.0, norm))
                << "particle " << i;
    std::vector<double> mg = force->getCopyMemberEnergies(gpu), mr = force->getCopyMemberEnergies(ref);
    ASSERT_EQ(mg.size(), mr.size());
    for (size_t m = 0; m < mr.size(); m++)
        EXPECT_NEAR(mg[m], mr[m], energyTolerance() * std::max(1.0, std::fabs(mr[m])));
}
