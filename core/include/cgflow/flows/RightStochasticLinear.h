#ifndef CGFLOW_FLOWS_RIGHTSTOCHASTICLINEAR_H_
#define CGFLOW_FLOWS_RIGHTSTOCHASTICLINEAR_H_

#include "cgflow/flows/Bijection.h"

#include <Eigen/Core>
#include <Eigen/LU>

namespace cgflow::flows {

/** Construction options of RightStochasticLinear. */
struct RightStochasticOptions {
    /**
     * Cartesian components per atom (3 for molecules). The paper's synthetic examples (the double
     * well, Eq. 26, and the Gaussian mixture) mix scalar coordinates, which is componentsPerAtom = 1.
     */
    int componentsPerAtom = 3;
    /**
     * Initialization (initializeParameters) when no initial logits are given: diagonal logits
     * log(w (M - 1) / (1 - w)) and zero off-diagonal logits, so that A = (w - b) I + b 1 1^T with
     * A_ii = w and b = (1 - w) / (M - 1) off the diagonal. Its eigenvalues are 1 (the all-ones
     * vector) and w - b (M - 1 times), so for w in (1/M, 1) det A > 0 and the condition number is
     * 1 / (w - b). The default w = 0.9 starts close to the identity and well conditioned
     * (condition number < 1.12 for every M); w slightly above 1/M is the paper's "as uniform as
     * possible while det A > 0" start (Sec. 3.2). Must lie in (1/M, 1) when M > 1 (ignored for M = 1).
     */
    double initialDiagonalWeight = 0.9;
    /**
     * Half-width of a uniform perturbation U(-noise, +noise) added to every initial logit, drawn from
     * the raw output of std::mt19937_64(seed) (identical with every standard library); 0 = none.
     */
    double initialLogitNoise = 0.0;
    /** If non-empty, the M x M initial logits (initializeParameters sets exactly these, plus noise). */
    Eigen::MatrixXd initialLogits;
};

/**
 * The learnable linear map of the data-free coarse-graining paper (Stupp & Koutsourelakis, Eqs. 10-11):
 * with M atoms of k components each (k = 3: data ordered atom-major, x0, y0, z0, x1, ...), Forward maps
 * the latent atoms X_j (the pseudo-atoms [z; X]) to the data atoms
 *
 *     x_i = sum_j A_ij X_j          (the same M x M matrix A on every Cartesian component),
 *
 * where A is right-stochastic: row i is the softmax of row i of the free logits phi, so every row sums
 * to 1. Hence a common translation of all latent atoms translates every data atom the same way, and
 * since A acts on atoms, not components, the map commutes with rotations: it is equivariant to rigid
 * body motions. log|det J| = k log|det A| per sample (the same for every sample); Inverse solves with
 * the LU factorization of A and adds -k log|det A|.
 *
 * Parameters: the M*M logits, row-major. A new layer holds the initial logits of its options without
 * noise (initializeParameters(seed) adds the seeded noise). A is refreshed (with its LU factorization and inverse) whenever
 * the parameters change; apply() and backward() throw Error while A is numerically singular.
 * Circular dimensions are not allowed (Error naming them).
 */
class RightStochasticLinear : public Bijection {
public:
    /** inputCircular: all false, of size k * M with M >= 1; options validated (Error naming the field). */
    RightStochasticLinear(std::vector<bool> inputCircular, const RightStochasticOptions& options = {});
    /** The same with numAtoms * options.componentsPerAtom real dimensions. */
    static std::unique_ptr<RightStochasticLinear> create(int numAtoms, const RightStochasticOptions& options = {});

    int getNumAtoms() const { return numAtoms; }
    int getComponentsPerAtom() const { return componentsPerAtom; }
    const RightStochasticOptions& getOptions() const { return options; }

    /** The current right-stochastic matrix A (M x M). */
    const Eigen::MatrixXd& getMatrix() const { return matrix; }
    /** A^{-1} (M x M), the map from data atoms to latent atoms (what the paper plots). Error if A is singular. */
    const Eigen::MatrixXd& getInverseMatrix() const;
    /** The current logits (M x M). */
    const Eigen::MatrixXd& getLogits() const { return logits; }
    /** log|det A| (-inf if A is singular); the Forward log-det of a sample is k times this. */
    double getLogAbsDeterminant() const { return logAbsDet; }
    /** The sign of det A: +1, -1, or 0 if singular (the paper keeps det A > 0). */
    int getDeterminantSign() const { return detSign; }
    /** Sets the logits (M x M, all finite, else Error). */
    void setLogits(const Eigen::MatrixXd& newLogits);

    std::string getTypeName() const override { return "right_stochastic_linear"; }
    /**
     * {"type": "right_stochastic_linear", "num_atoms": M, "components_per_atom": k,
     *  "initial_diagonal_weight": w, "initial_logit_noise": noise[, "initial_logits": [M*M, row-major]]}
     */
    nlohmann::json getConfig() const override;
    /**
     * Rebuilds from getConfig(). "num_atoms" is required; the other fields are optional with the
     * defaults of RightStochasticOptions. Unknown keys, wrong types, a "type" other than
     * "right_stochastic_linear", or num_atoms * components_per_atom != inputCircular.size() -> Error.
     */
    static std::unique_ptr<RightStochasticLinear> fromConfig(const nlohmann::json& config,
                                                             std::vector<bool> inputCircular);

    size_t getNumParameters() const override { return static_cast<size_t>(numAtoms) * numAtoms; }
    void getParameters(double* out) const override;
    /** Error (and nothing changed) if a logit is not finite. */
    void setParameters(const double* in) override;
    /** The initial logits of the options (see RightStochasticOptions), perturbed by the noise from seed. */
    void initializeParameters(uint64_t seed) override;

    std::unique_ptr<BijectionWorkspace> createWorkspace() const override;
    void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context, double* logDet,
               BijectionWorkspace& ws, bool save) const override;
    void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                  double* paramGrad, BijectionWorkspace& ws) const override;

private:
    Eigen::MatrixXd startLogits() const; // the initial logits without noise
    void refresh();
    void checkInvertible(const char* what) const;

    int componentsPerAtom;
    int numAtoms;
    RightStochasticOptions options;
    Eigen::MatrixXd logits;  // phi (M x M)
    Eigen::MatrixXd matrix;  // A = row-softmax(phi)
    Eigen::MatrixXd inverse; // A^{-1} (when invertible)
    Eigen::PartialPivLU<Eigen::MatrixXd> lu;
    double logAbsDet = 0.0;
    int detSign = 1;
};

} // namespace cgflow::flows

#endif
