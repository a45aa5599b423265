#ifndef CGFLOW_NN_PRECISION_H_
#define CGFLOW_NN_PRECISION_H_

#include <string>

namespace cgflow::nn {

/**
 * Arithmetic of a network's matrix products. Float64: everything in double. Mixed: the dense
 * layers' GEMMs and activations in float32 (twice the GEMM rate, half the memory traffic), with
 * inputs, outputs and parameter gradients exchanged in double. A flow whose conditioners run
 * mixed is still an exact bijection with an exact log-density for the parameters it uses: only
 * the conditioner's output values change, and everything downstream of them (spline, log-det,
 * sums) stays in double.
 */
enum class Precision { Float64, Mixed };

/** "float64" or "mixed". */
std::string precisionName(Precision precision);
/** Parses "float64"/"double" and "mixed" (case-insensitive); anything else -> Error listing them. */
Precision parsePrecision(const std::string& name);

} // namespace cgflow::nn

#endif
