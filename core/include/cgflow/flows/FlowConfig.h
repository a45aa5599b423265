#ifndef CGFLOW_FLOWS_FLOWCONFIG_H_
#define CGFLOW_FLOWS_FLOWCONFIG_H_

#include "cgflow/flows/Flow.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace cgflow::flows {

/**
 * While one is alive, flows built on this thread (buildFlow, Flow::fromConfig) may hold at most
 * maxParameters parameters in total: a coupling layer that would take the total past it throws Error
 * BEFORE allocating its conditioner. The model-file decoders open one sized by the file's
 * "parameters" tensor, so that an architecture claiming huge widths cannot make a small file allocate
 * gigabytes (which would end in std::bad_alloc or the OOM killer, not an Error). Scopes nest (the
 * innermost applies); without one there is no limit.
 */
class ParameterBudget {
public:
    explicit ParameterBudget(uint64_t maxParameters);
    ~ParameterBudget();
    ParameterBudget(const ParameterBudget&) = delete;
    ParameterBudget& operator=(const ParameterBudget&) = delete;
    /** Charges count parameters to the innermost budget of this thread (none: no-op); Error naming `what` if it is exceeded. */
    static void charge(double count, const std::string& what);

private:
    uint64_t maxParameters, used = 0;
    ParameterBudget* outer;
};

/**
 * Limits of the config readers, so that a few bytes of JSON (a model file's architecture) cannot ask
 * for billions of dimensions or layers, which would hang or exhaust memory before any other check.
 */
inline constexpr int MaxFlowDimension = 1 << 20;   // "dimension" and "context_dimension"
inline constexpr int MaxBuilderLayers = 10000;     // the builder form's "num_layers"

/**
 * Flow architectures as JSON (the same dicts from Python). Two forms:
 *
 * Explicit (what Flow::getConfig() writes into model files):
 *   {"dimension": D, "circular": [indices], "context_dimension": C, "context_circular": [indices],
 *    "base": {"kinds": [per-dimension kind], "truncation_bound": B}, "layers": [{"type": ..., ...}, ...],
 *    "precision": "float64" | "mixed"}
 *   Layer types: "spline_coupling", "affine_coupling", "permutation", "circular_shift",
 *   "right_stochastic_linear", "atom_permutation", "continuous_flow" (each class's fromConfig
 *   documents its fields).
 *   "circular" lists the base side's circular dimensions (the data side's too, unless permutation
 *   layers reorder them).
 *
 * Builder (no "layers"): the coupling stacks of the papers, expanded into the explicit form:
 *   "coupling": "spline" (default) | "affine" | "elementwise" (spline layers without a split, for D = 1),
 *   "num_layers" (default 12; coupling layers come in complementary pairs, so even unless elementwise),
 *   "masks": one list of D booleans per pair (layer 2i transforms mask i, layer 2i+1 its complement),
 *     or "mask_seed" (default 0): random masks transforming floor(D/2) dimensions (std::mt19937_64);
 *   "shifts": one list of D values per pair but the last, applied as a circular_shift after the pair
 *     (entries of real dimensions must be 0), or "shift_seed": pi * U(0.5, 1.5) for circular dimensions;
 *     no shifts when no dimension is circular or "circular_shift": false;
 *   "base": "normal" (default) | "truncated_normal" (with "base_bound", default 5) for real dimensions;
 *     circular dimensions always get "uniform_circle";
 *   spline: "num_bins" (8), "bound" (5), "min_bin_width", "min_bin_height", "min_derivative" (1e-3);
 *   conditioner: "hidden" (256), "num_blocks" (1), "activation" ("relu").
 * Builder, "coupling": "continuous": a continuous normalizing flow, one continuous_flow layer whose
 *   vector field has "num_layers" (default 3) hidden layers of width "hidden" (96), "activation"
 *   ("silu"), "time_embedding" (16), "atol" and "rtol" (1e-4); unconditional (no context); the
 *   coupling-only keys are refused.
 * Both forms: "seed" for initializeParameters (default 0), "precision" (default "float64"),
 * "num_threads" (default: hardware concurrency). Unknown keys -> Error naming them.
 */
std::unique_ptr<Flow> buildFlow(const nlohmann::json& config);
/** The builder form expanded into the explicit form (returned unchanged if already explicit, after validation). */
nlohmann::json expandFlowConfig(const nlohmann::json& config);

} // namespace cgflow::flows

#endif
