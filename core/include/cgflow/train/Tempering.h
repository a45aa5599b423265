#ifndef CGFLOW_STATS_TEMPERING_H_
#define CGFLOW_STATS_TEMPERING_H_

#include <vector>

namespace cgflow::train {

/**
 * Adaptive tempering of reverse-KL training (data-free CG: Stupp & Koutsourelakis, Eqs. 22-23 and
 * appendix A; embedded-physics CG: Schoeberl, Zabaras & Koutsourelakis, Eq. 36 and Algorithm 1).
 *
 * From samples x_i ~ q at the current inverse temperature beta, with energies U_i and model
 * log-densities logQ_i (used for the importance weights w_i = exp(-beta U_i) / q_i), the relative
 * KL increase of moving to beta + dBeta is
 *
 *   c(dBeta) = [log Z(beta + dBeta) - log Z(beta) + dBeta <U>_q] / KL_beta,
 *   log Z(beta + dBeta) - log Z(beta) = log sum_i W_i exp(-dBeta U_i)     (W: normalized weights),
 *   KL_beta = beta <U>_q + <objective log q>_q + log Z(beta),  log Z(beta) = log mean w,
 *
 * all with log-weights shifted by their maximum (appendix A). objectiveLogQ is the per-sample term of
 * the training objective: log q(x) itself for the slow/fast model and a flow, log q(z) + log q(x|z) -
 * log r(z|x) for the encoder-decoder model (the paper's denominator); pass an empty vector to use logQ.
 * A KL estimate near zero (a well-trained model) can come out ~0 or even negative from finite
 * samples, which would make c meaningless; the denominator is therefore max(KL_beta, klFloor), with
 * klFloor an explicit argument (1e-3 nats by default).
 *
 * Samples with a non-finite energy or log q (a clash, a failed evaluation) carry weight zero and are
 * counted, as BoltzmannGeneratorIntegrator counts them: log Z = log((1/n) sum w) and ESS / n over all n
 * samples. The averages <U>_q and <objective log q>_q, which such a sample would make infinite, are
 * taken over the finite ones.
 */
struct TemperingStatistics {
    double klEstimate = 0;     ///< KL_beta as above (before the floor)
    double logZ = 0;           ///< log Z(beta) = log mean w, zero weights counted
    double meanEnergy = 0;     ///< <U>_q over the finite samples
    double essFraction = 0;    ///< Kish ESS / n of the weights at beta, n = all samples
    int numFinite = 0;         ///< samples with a finite energy and log q
    int numSamples = 0;        ///< n: all samples, the weight-zero ones included
};
TemperingStatistics temperingStatistics(const std::vector<double>& energies, const std::vector<double>& logQ,
                                        double beta, const std::vector<double>& objectiveLogQ = {});

/** c(dBeta) as above. */
double relativeKLIncrease(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                          double deltaBeta, const std::vector<double>& objectiveLogQ = {}, double klFloor = 1e-3);

/**
 * Rule (a), Eq. 23: dBeta = min{dBeta : c(dBeta) = maxRelativeIncrease, maxStep, betaTarget - beta},
 * the root found by bisection to a relative tolerance of 1e-6 (c grows with dBeta). Errors name the
 * argument for beta >= betaTarget, non-positive limits or inconsistent array sizes.
 */
double adaptiveTemperatureStep(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                               double betaTarget, double maxRelativeIncrease, double maxStep,
                               const std::vector<double>& objectiveLogQ = {}, double klFloor = 1e-3);

/**
 * Rule (b), Algorithm 1 of the embedded-physics paper: propose f maxStep with f = 1, 0.6, 0.36, ...
 * until c <= maxRelativeIncrease (at most maxShrinks times; the last proposal is returned then),
 * never beyond betaTarget - beta.
 */
double shrinkingTemperatureStep(const std::vector<double>& energies, const std::vector<double>& logQ, double beta,
                                double betaTarget, double maxRelativeIncrease, double maxStep,
                                const std::vector<double>& objectiveLogQ = {}, double klFloor = 1e-3,
                                int maxShrinks = 60);

} // namespace cgflow::train

#endif
