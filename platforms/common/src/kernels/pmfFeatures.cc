// Geometric features of a PMFForce and their Jacobians.
// One thread per feature. For every model input o it writes the value inputs[o] and
// jacobian[12*o + 3*r + c] = d inputs[o] / d position(role r, component c), which the force
// kernel later contracts with dE/dinputs. Conventions match the double-precision Reference
// path (core/coords/Features): angle at the middle particle, IUPAC dihedral sign.

DEVICE real3 pmfDelta(real4 from, real4 to, real4 boxVecX, real4 boxVecY, real4 boxVecZ) {
    real3 d = make_real3(to.x - from.x, to.y - from.y, to.z - from.z);
#ifdef USE_PERIODIC
    // Minimum image for OpenMM's reduced triclinic boxes, as in the Reference platform.
    real scale3 = floor(d.z / boxVecZ.z + (real) 0.5);
    d.x -= scale3 * boxVecZ.x; d.y -= scale3 * boxVecZ.y; d.z -= scale3 * boxVecZ.z;
    real scale2 = floor(d.y / boxVecY.y + (real) 0.5);
    d.x -= scale2 * boxVecY.x; d.y -= scale2 * boxVecY.y;
    real scale1 = floor(d.x / boxVecX.x + (real) 0.5);
    d.x -= scale1 * boxVecX.x;
#endif
    return d;
}

DEVICE void pmfStoreJacobian(GLOBAL real* RESTRICT jacobian, int input, int role, real3 d) {
    jacobian[12 * input + 3 * role] = d.x;
    jacobian[12 * input + 3 * role + 1] = d.y;
    jacobian[12 * input + 3 * role + 2] = d.z;
}

KERNEL void computePMFFeatures(GLOBAL const real4* RESTRICT posq, GLOBAL const int* RESTRICT particleSlot,
        GLOBAL const int4* RESTRICT featureParticles, GLOBAL const int4* RESTRICT featureInfo,
        GLOBAL const real* RESTRICT featurePeriod, GLOBAL real* RESTRICT inputs, GLOBAL real* RESTRICT jacobian,
        real4 boxVecX, real4 boxVecY, real4 boxVecZ) {
    for (int f = GLOBAL_ID; f < NUM_FEATURES; f += GLOBAL_SIZE) {
        int4 atoms = featureParticles[f];
        int4 info = featureInfo[f];  // x: type, y: axis, z: first input index
        int type = info.x;
        int o = info.z;
        real4 p0 = posq[particleSlot[atoms.x]];
        if (type == 0) {
            real3 d = pmfDelta(p0, posq[particleSlot[atoms.y]], boxVecX, boxVecY, boxVecZ);
            real r = SQRT(dot(d, d));
            // Coincident particles have no defined gradient; like the Reference path, add none.
            // Written r <= 0, not r > 0, so that a NaN distance gives a NaN gradient, as in Reference.
            real3 u = (r <= 0 ? make_real3(0, 0, 0) : d / r);
            inputs[o] = r;
            pmfStoreJacobian(jacobian, o, 0, -u);
            pmfStoreJacobian(jacobian, o, 1, u);
        }
        else if (type == 1) {
            real4 p1 = posq[particleSlot[atoms.y]];
            real3 u = pmfDelta(p1, p0, boxVecX, boxVecY, boxVecZ);
            real3 v = pmfDelta(p1, posq[particleSlot[atoms.z]], boxVecX, boxVecY, boxVecZ);
            real3 n = cross(u, v);
            real nNorm = SQRT(dot(n, n));
            inputs[o] = atan2(nNorm, dot(u, v));
            // d theta / d u points in the plane, perpendicular to u, away from v (and vice versa).
            // Collinear particles: the angle is 0 or pi and has no gradient (Reference does the same).
            // (NaN positions fail the test nNorm <= 0 and give NaN gradients, as in Reference.)
            real3 dU = (nNorm <= 0 ? make_real3(0, 0, 0) : cross(u, n) / (dot(u, u) * nNorm));
            real3 dV = (nNorm <= 0 ? make_real3(0, 0, 0) : cross(n, v) / (dot(v, v) * nNorm));
            pmfStoreJacobian(jacobian, o, 0, dU);
            pmfStoreJacobian(jacobian, o, 1, -dU - dV);
            pmfStoreJacobian(jacobian, o, 2, dV);
        }
        else if (type == 2) {
            real4 p1 = posq[particleSlot[atoms.y]];
            real4 p2 = posq[particleSlot[atoms.z]];
            real4 p3 = posq[particleSlot[atoms.w]];
            real3 v0 = pmfDelta(p1, p0, boxVecX, boxVecY, boxVecZ);  // p0 - p1
            real3 v1 = pmfDelta(p1, p2, boxVecX, boxVecY, boxVecZ);  // p2 - p1
            real3 v2 = pmfDelta(p3, p2, boxVecX, boxVecY, boxVecZ);  // p2 - p3
            real3 cp0 = cross(v0, v1);
            real3 cp1 = cross(v1, v2);
            real normBC = SQRT(dot(v1, v1));
            real phi = atan2(normBC * dot(v0, cp1), dot(cp0, cp1));
            real c = cos(phi), s = sin(phi);
            inputs[o] = c;
            inputs[o + 1] = s;
            // Blondel-Karplus derivatives of phi, free of singularities except collinear triples.
            // A collinear triple has no gradient; NaN positions pass this test and give NaN gradients.
            bool defined = !(dot(cp0, cp0) <= 0 || dot(cp1, cp1) <= 0);
            real3 d0 = (defined ? -(normBC / dot(cp0, cp0)) * cp0 : make_real3(0, 0, 0));
            real3 d3 = (defined ? (normBC / dot(cp1, cp1)) * cp1 : make_real3(0, 0, 0));
            real a = (defined ? dot(v0, v1) / dot(v1, v1) : 0);
            real b = (defined ? dot(v2, v1) / dot(v1, v1) : 0);
            real3 t = a * d0 - b * d3;
            real3 d1 = t - d0;
            real3 d2 = -t - d3;
            // The expressions above give -d phi/dx (they are OpenMM's torsion forces for dE/dphi = 1).
            pmfStoreJacobian(jacobian, o, 0, s * d0);
            pmfStoreJacobian(jacobian, o, 1, s * d1);
            pmfStoreJacobian(jacobian, o, 2, s * d2);
            pmfStoreJacobian(jacobian, o, 3, s * d3);
            pmfStoreJacobian(jacobian, o + 1, 0, -c * d0);
            pmfStoreJacobian(jacobian, o + 1, 1, -c * d1);
            pmfStoreJacobian(jacobian, o + 1, 2, -c * d2);
            pmfStoreJacobian(jacobian, o + 1, 3, -c * d3);
        }
        else {
            int axis = info.y;
            real x = (axis == 0 ? p0.x : (axis == 1 ? p0.y : p0.z));
            real period = featurePeriod[f];
            real3 e = make_real3((real) (axis == 0 ? 1 : 0), (real) (axis == 1 ? 1 : 0), (real) (axis == 2 ? 1 : 0));
            if (period > 0) {
                real w = (real) 6.283185307179586 / period;
                real c = cos(w * x), s = sin(w * x);
                inputs[o] = c;
                inputs[o + 1] = s;
                pmfStoreJacobian(jacobian, o, 0, (-s * w) * e);
                pmfStoreJacobian(jacobian, o + 1, 0, (c * w) * e);
            }
            else {
                inputs[o] = x;
                pmfStoreJacobian(jacobian, o, 0, e);
            }
        }
    }
}

// One thread per particle that appears in a feature: contracts dE/dinputs (summed over
// ensemble members, each already scaled by 1/M) with the Jacobian. Inputs are copy-major (copy c's
// NUM_INPUTS values start at c * NUM_INPUTS), and so are the (copy, member) gradients. Each particle is owned by
// one thread, so forces are added without atomics and the result is deterministic.
KERNEL void applyPMFForces(GLOBAL const real* RESTRICT memberEnergy, GLOBAL const real* RESTRICT memberGrad,
        GLOBAL const real* RESTRICT jacobian, GLOBAL const int* RESTRICT involvedParticles,
        GLOBAL const int* RESTRICT particleSlot, GLOBAL const int* RESTRICT entryStart,
        GLOBAL const int2* RESTRICT entries, GLOBAL mm_long* RESTRICT forceBuffers,
        GLOBAL mixed* RESTRICT energyBuffer, int includeForces) {
    if (GLOBAL_ID == 0) {
        mixed energy = 0;
        for (int m = 0; m < NUM_COPIES * NUM_MEMBERS; m++)
            energy += memberEnergy[m];
        energyBuffer[0] += energy / NUM_MEMBERS;
    }
    if (!includeForces)
        return;
    for (int i = GLOBAL_ID; i < NUM_INVOLVED; i += GLOBAL_SIZE) {
        real3 grad = make_real3(0, 0, 0);
        for (int e = entryStart[i]; e < entryStart[i + 1]; e++) {
            int2 entry = entries[e];  // x: model input (of all copies), y: role of the particle in its feature
            int copy = entry.x / NUM_INPUTS;
            GLOBAL const real* copyGrad = memberGrad + copy * NUM_MEMBERS * NUM_INPUTS + (entry.x - copy * NUM_INPUTS);
            real g = 0;
            for (int m = 0; m < NUM_MEMBERS; m++)
                g += copyGrad[m * NUM_INPUTS];
            int j = 12 * entry.x + 3 * entry.y;
            grad += g * make_real3(jacobian[j], jacobian[j + 1], jacobian[j + 2]);
        }
        int slot = particleSlot[involvedParticles[i]];
        forceBuffers[slot] += (mm_long) (-grad.x * (real) 0x100000000);
        forceBuffers[slot + PADDED_NUM_ATOMS] += (mm_long) (-grad.y * (real) 0x100000000);
        forceBuffers[slot + 2 * PADDED_NUM_ATOMS] += (mm_long) (-grad.z * (real) 0x100000000);
    }
}
