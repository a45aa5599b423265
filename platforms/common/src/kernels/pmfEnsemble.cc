// Forward and backward pass of an ensemble of MLPs with one scalar output.
// One work group per (copy, member) pair, copy-major: a PMFForce with particle groups evaluates
// every member on every copy's inputs. Threads split the neurons of a layer and
// synchronize between layers. Weights are stored twice: transposed (in x out) so that the
// forward pass reads them coalesced, and row-major (out x in) for the backward pass.
// Writes memberEnergy[c*M + m] and, when computeGradient, memberGrad[c*M + m][k] =
// (1/M) d E_m(copy c) / d input k of copy c.

#if defined(__OPENCL_VERSION__) && defined(SCRATCH_IN_LOCAL)
#define SCRATCH_PTR __local
#elif defined(__OPENCL_VERSION__)
#define SCRATCH_PTR __global
#else
#define SCRATCH_PTR
#endif

DEVICE real pmfActivation(real x, int kind) {
    if (kind == 1) return tanh(x);
    if (kind == 2) return 1 / (1 + EXP(-x));
    if (kind == 3) return (x > 0 ? x + log(1 + EXP(-x)) : log(1 + EXP(x)));
    if (kind == 4) return x / (1 + EXP(-x));
    if (kind == 5) return (x > 0 ? x : 0);
    return x;
}

// Derivative from the pre-activation a and the activation h = act(a).
DEVICE real pmfActivationDerivative(real a, real h, int kind) {
    if (kind == 1) return 1 - h * h;
    if (kind == 2) return h * (1 - h);
    if (kind == 3) return 1 / (1 + EXP(-a));
    if (kind == 4) {
        real s = 1 / (1 + EXP(-a));
        return s * (1 + a * (1 - s));
    }
    if (kind == 5) return (a > 0 ? 1 : 0);
    return 1;
}

KERNEL void evaluatePMFEnsemble(GLOBAL const real* RESTRICT inputs, GLOBAL const real* RESTRICT weightsT,
        GLOBAL const real* RESTRICT weights, GLOBAL const real* RESTRICT biases,
        GLOBAL const int4* RESTRICT layerInfo, GLOBAL real* RESTRICT globalScratch,
        GLOBAL real* RESTRICT memberEnergy, GLOBAL real* RESTRICT memberGrad, int computeGradient) {
#ifdef SCRATCH_IN_LOCAL
    LOCAL real localScratch[SCRATCH_SIZE];  // OpenCL wants local arrays at kernel scope
#endif
    // OpenMM caps the number of work groups, so each group walks over the pairs.
    for (int pair = GROUP_ID; pair < NUM_COPIES * NUM_MEMBERS; pair += NUM_GROUPS) {  // copy * NUM_MEMBERS + member
        const int member = pair % NUM_MEMBERS;
        GLOBAL const real* copyInputs = inputs + (pair / NUM_MEMBERS) * NUM_INPUTS;
#ifdef SCRATCH_IN_LOCAL
        SCRATCH_PTR real* scratch = localScratch;
#else
        SCRATCH_PTR real* scratch = globalScratch + pair * SCRATCH_SIZE;
#endif
        // Activations of all layers back to back (pre-activations and values), then two
        // buffers of the widest layer for the backpropagated deltas.
        SCRATCH_PTR real* pre = scratch;
        SCRATCH_PTR real* post = scratch + TOTAL_WIDTH;
        SCRATCH_PTR real* deltaA = scratch + 2 * TOTAL_WIDTH;
        SCRATCH_PTR real* deltaB = deltaA + MAX_WIDTH;
        GLOBAL const real* memberWeightsT = weightsT + member * WEIGHTS_PER_MEMBER;
        GLOBAL const real* memberWeights = weights + member * WEIGHTS_PER_MEMBER;
        GLOBAL const real* memberBiases = biases + member * BIASES_PER_MEMBER;

        for (int i = LOCAL_ID; i < NUM_INPUTS; i += LOCAL_SIZE)
            post[i] = copyInputs[i];
        SYNC_THREADS;
        int inOffset = 0;
        for (int l = 0; l < NUM_LAYERS; l++) {
            int4 info = layerInfo[l];  // x: inputs, y: outputs, z: weight offset, w: bias offset
            int outOffset = inOffset + info.x;
            int kind = (l == NUM_LAYERS - 1 ? OUTPUT_ACTIVATION : HIDDEN_ACTIVATION);
            GLOBAL const real* wt = memberWeightsT + info.z;
            for (int j = LOCAL_ID; j < info.y; j += LOCAL_SIZE) {
                real sum = memberBiases[info.w + j];
                for (int k = 0; k < info.x; k++)
                    sum += wt[k * info.y + j] * post[inOffset + k];
                pre[outOffset + j] = sum;
                post[outOffset + j] = pmfActivation(sum, kind);
            }
            SYNC_THREADS;
            inOffset = outOffset;
        }
        if (LOCAL_ID == 0)
            memberEnergy[pair] = post[inOffset];
        // Backward: deltaA holds dE/d(pre-activation) of the current layer's outputs. Without a
        // gradient the layer loop runs zero times: every barrier stays in uniform, structured control
        // flow (no early exit from a loop with barriers, which PoCL cannot compile).
        const int lastBackwardLayer = (computeGradient != 0 ? 0 : NUM_LAYERS);
        if (LOCAL_ID == 0 && computeGradient != 0)
            deltaA[0] = pmfActivationDerivative(pre[inOffset], post[inOffset], OUTPUT_ACTIVATION) / NUM_MEMBERS;
        SYNC_THREADS;
        int outOffset = inOffset;
        for (int l = NUM_LAYERS - 1; l >= lastBackwardLayer; l--) {
            int4 info = layerInfo[l];
            int prevOffset = outOffset - info.x;
            GLOBAL const real* w = memberWeights + info.z;
            for (int k = LOCAL_ID; k < info.x; k += LOCAL_SIZE) {
                real sum = 0;
                for (int j = 0; j < info.y; j++)
                    sum += w[j * info.x + k] * deltaA[j];
                if (l > 0)
                    deltaB[k] = sum * pmfActivationDerivative(pre[prevOffset + k], post[prevOffset + k], HIDDEN_ACTIVATION);
                else
                    memberGrad[pair * NUM_INPUTS + k] = sum;
            }
            SYNC_THREADS;
            SCRATCH_PTR real* swap = deltaA;
            deltaA = deltaB;
            deltaB = swap;
            outOffset = prevOffset;
        }
        SYNC_THREADS;
    }
}
