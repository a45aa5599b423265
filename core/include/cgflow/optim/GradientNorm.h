#ifndef CGFLOW_OPTIM_GRADIENTNORM_H_
#define CGFLOW_OPTIM_GRADIENTNORM_H_

#include <cstddef>

namespace cgflow::optim {

/**
 * The Euclidean norm of grads[0 .. n) (0 for n = 0). Exact to rounding for any finite input:
 * the fast sum of squares is redone in a scaled form when it overflows or underflows. Returns
 * +Inf or NaN when an entry is non-finite, so that callers can treat such an update as data
 * (GradientGuard skips it) rather than fail.
 */
double globalGradientNorm(const double* grads, size_t n);

/** grads[i] *= factor for i in [0, n). */
void scaleGradients(double* grads, size_t n, double factor);

/**
 * Global-norm clipping: if the norm exceeds maxNorm, all gradients are scaled by maxNorm / norm,
 * so the direction is kept and the norm becomes maxNorm. Returns the norm before clipping. A
 * non-finite norm cannot be scaled to anything meaningful, so the gradients are left untouched
 * and the non-finite norm is returned for the caller to act on. maxNorm must be > 0 and not NaN
 * (+Inf disables clipping), else Error.
 */
double clipGradientNorm(double* grads, size_t n, double maxNorm);

} // namespace cgflow::optim

#endif
