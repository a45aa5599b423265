#ifndef CGFLOW_NN_GEMM_H_
#define CGFLOW_NN_GEMM_H_

#include <Eigen/Core>

#include <string>

namespace cgflow::nn {

template <class S>
using ColumnMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;

/**
 * C = alpha op(A) op(B) + beta C on column-major operands (any outer stride, unit inner stride),
 * op = transpose where asked. The one entry point of the networks' matrix products, so that the
 * backend is chosen in one place: OpenBLAS (the scipy-openblas32 build from PyPI, single-threaded
 * per call: callers parallelize over the batch) when the build found it, which reaches about 1.5x
 * Eigen's DGEMM rate on AVX-512 machines, and Eigen's GEMM otherwise. With beta = 0, C's previous
 * contents are ignored (never read, so NaN in it cannot leak). Shape mismatch -> Error.
 */
template <class S>
void gemm(S alpha, const Eigen::Ref<const ColumnMatrix<S>>& A, bool transposeA,
          const Eigen::Ref<const ColumnMatrix<S>>& B, bool transposeB, S beta, Eigen::Ref<ColumnMatrix<S>> C);

/** "openblas" or "eigen": which backend gemm() uses in this build. */
std::string gemmBackend();

} // namespace cgflow::nn

#endif
