#ifndef CGFLOW_UTIL_RANDOM_H_
#define CGFLOW_UTIL_RANDOM_H_

#include <Random123/philox.h>

#include <cstdint>

namespace cgflow::util {

/**
 * Counter-based random numbers (Philox4x32-10, Random123): the draws of a sample depend only on
 * (seed, stream tag, sample index, block), never on how a batch is split across threads, and the
 * same generator runs in OpenCL/CUDA kernels, so Reference and GPU paths can draw identical numbers.
 * Each call yields two uniforms with 53 random bits each.
 */
struct PhiloxUniforms {
    double u[2];
};

/**
 * Two uniforms in the OPEN interval (0, 1): (k + 0.5) 2^-53 for a 53-bit integer k, so that
 * quantile functions never see 0 or 1, and 1 - u is exact for u > 0.5.
 */
inline PhiloxUniforms philoxOpenUniforms(uint64_t seed, uint32_t streamTag, uint64_t index, uint32_t block) {
    r123::Philox4x32 philox;
    r123::Philox4x32::key_type key = {{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
    r123::Philox4x32::ctr_type counter = {
        {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), streamTag, block}};
    r123::Philox4x32::ctr_type r = philox(counter, key);
    auto open = [](uint32_t high, uint32_t low) {
        const uint64_t k = (static_cast<uint64_t>(high >> 5) << 26) | (low >> 6);
        return (static_cast<double>(k) + 0.5) * (1.0 / 9007199254740992.0);
    };
    return {{open(r[0], r[1]), open(r[2], r[3])}};
}

} // namespace cgflow::util

#endif
