#include "cgflow/nn/Gemm.h"

#include "cgflow/Error.h"

#ifdef CGFLOW_HAVE_OPENBLAS
#include <cblas.h>
#include <mutex>
#endif

namespace cgflow::nn {

namespace {

template <class S>
void checkShapes(const Eigen::Ref<const ColumnMatrix<S>>& A, bool transposeA, const Eigen::Ref<const ColumnMatrix<S>>& B,
                 bool transposeB, const Eigen::Ref<ColumnMatrix<S>>& C) {
    const Eigen::Index m = transposeA ? A.cols() : A.rows(), k = transposeA ? A.rows() : A.cols();
    const Eigen::Index kb = transposeB ? B.cols() : B.rows(), n = transposeB ? B.rows() : B.cols();
    if (k != kb || C.rows() != m || C.cols() != n)
        throw Error("gemm: shapes do not match: op(A) is " + std::to_string(m) + "x" + std::to_string(k) + ", op(B) " +
                    std::to_string(kb) + "x" + std::to_string(n) + ", C " + std::to_string(C.rows()) + "x" +
                    std::to_string(C.cols()));
}

#ifdef CGFLOW_HAVE_OPENBLAS
// Every call comes from a thread that already owns a chunk of the batch, so OpenBLAS's own
// thread pool would only oversubscribe the cores (and serialize concurrent callers).
void singleThreadedBlas() {
    static std::once_flag once;
    std::call_once(once, [] { scipy_openblas_set_num_threads(1); });
}

inline int ld(Eigen::Index outerStride, Eigen::Index rows) {
    return static_cast<int>(std::max<Eigen::Index>(1, std::max(outerStride, rows)));
}
#endif

} // namespace

template <class S>
void gemm(S alpha, const Eigen::Ref<const ColumnMatrix<S>>& A, bool transposeA, const Eigen::Ref<const ColumnMatrix<S>>& B,
          bool transposeB, S beta, Eigen::Ref<ColumnMatrix<S>> C) {
    checkShapes<S>(A, transposeA, B, transposeB, C);
    if (C.size() == 0)
        return;
    const Eigen::Index k = transposeA ? A.rows() : A.cols();
#ifdef CGFLOW_HAVE_OPENBLAS
    singleThreadedBlas();
    const CBLAS_TRANSPOSE ta = transposeA ? CblasTrans : CblasNoTrans, tb = transposeB ? CblasTrans : CblasNoTrans;
    const int m = static_cast<int>(C.rows()), n = static_cast<int>(C.cols()), kk = static_cast<int>(k);
    const int lda = ld(A.outerStride(), A.rows()), ldb = ld(B.outerStride(), B.rows()), ldc = ld(C.outerStride(), C.rows());
    if constexpr (std::is_same_v<S, double>)
        scipy_cblas_dgemm(CblasColMajor, ta, tb, m, n, kk, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
    else
        scipy_cblas_sgemm(CblasColMajor, ta, tb, m, n, kk, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
#else
    if (k == 0) {
        if (beta == S(0))
            C.setZero();
        else
            C *= beta;
        return;
    }
    if (beta == S(0))
        C.setZero();
    else if (beta != S(1))
        C *= beta;
    if (transposeA && transposeB)
        C.noalias() += alpha * A.transpose() * B.transpose();
    else if (transposeA)
        C.noalias() += alpha * A.transpose() * B;
    else if (transposeB)
        C.noalias() += alpha * A * B.transpose();
    else
        C.noalias() += alpha * A * B;
#endif
}

template void gemm<double>(double, const Eigen::Ref<const ColumnMatrix<double>>&, bool,
                           const Eigen::Ref<const ColumnMatrix<double>>&, bool, double, Eigen::Ref<ColumnMatrix<double>>);
template void gemm<float>(float, const Eigen::Ref<const ColumnMatrix<float>>&, bool,
                          const Eigen::Ref<const ColumnMatrix<float>>&, bool, float, Eigen::Ref<ColumnMatrix<float>>);

std::string gemmBackend() {
#ifdef CGFLOW_HAVE_OPENBLAS
    return "openblas";
#else
    return "eigen";
#endif
}

} // namespace cgflow::nn
