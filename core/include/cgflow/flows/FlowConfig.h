#ifndef CGFLOW_FLOWS_FLOWCONFIG_H_
#define CGFLOW_FLOWS_FLOWCONFIG_H_

#include "cgflow/flows/Flow.h"

#include <nlohmann/json.hpp>

namespace cgflow::flows {

/**
 * Flow architectures as JSON (the same dicts from Python). Two forms:
 *
 * Explicit (what Flow::getConfig() writes into model files):
 *   {"dimension": D, "circular": [indices], "context_dimension": C, "context_circular": [indices],
 *    "base": {"kinds": [per-dimension kind], "truncation_bound": B}, "layers": [{"type": ..., ...}, ...],
 *    "precision": "float64" | "mixed"}
 *   Layer types: "spline_coupling", "affine_coupling", "permutation", "circular_shift",
 *   "right_stochastic_linear", "atom_permutation" (each class's fromConfig documents its fields).
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
 * Both forms: "seed" for initializeParameters (default 0), "precision" (default "float64"),
 * "num_threads" (default: hardware concurrency). Unknown keys -> Error naming them.
 */
std::unique_ptr<Flow> buildFlow(const nlohmann::json& config);
/** The builder form expanded into the explicit form (returned unchanged if already explicit, after validation). */
nlohmann::json expandFlowConfig(const nlohmann::json& config);

} // namespace cgflow::flows

#endif
