#ifndef CGFLOW_FLOWS_PERMUTATION_H_
#define CGFLOW_FLOWS_PERMUTATION_H_

#include "cgflow/flows/Bijection.h"

namespace cgflow::flows {

/**
 * A fixed reordering of the dimensions: output[i] = input[permutation[i]] (Forward). Volume
 * preserving (log|det| = 0); circular flags travel with their dimensions.
 */
class Permutation : public Bijection {
public:
    /** permutation must contain each of 0 .. dimension-1 exactly once (else Error naming the problem). */
    Permutation(std::vector<bool> inputCircular, std::vector<int> permutation);
    /** A uniformly random permutation from a seed (std::mt19937_64, Fisher-Yates). */
    static std::unique_ptr<Permutation> random(std::vector<bool> inputCircular, uint64_t seed);

    const std::vector<int>& getPermutation() const { return permutation; }
    std::vector<bool> getOutputCircular() const override;
    std::string getTypeName() const override { return "permutation"; }
    nlohmann::json getConfig() const override;
    static std::unique_ptr<Permutation> fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular);

    std::unique_ptr<BijectionWorkspace> createWorkspace() const override;
    void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context, double* logDet,
               BijectionWorkspace& ws, bool save) const override;
    void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                  double* paramGrad, BijectionWorkspace& ws) const override;

private:
    std::vector<int> permutation;
    std::vector<int> inversePermutation;
};

/**
 * A fixed shift of circular dimensions with wrapping into [-pi, pi): x_d = wrap(z_d + shift_d),
 * placed between coupling pairs (the conditional-flow paper, A.6.5: shifts pi * U(0.5, 1.5)) so that
 * the seam of the circular splines moves and no angle region is always next to it. Real
 * dimensions must have shift 0. Volume preserving.
 */
class CircularShift : public Bijection {
public:
    /** shifts: one finite value per dimension, 0 for every real dimension (else Error). */
    CircularShift(std::vector<bool> inputCircular, std::vector<double> shifts);
    /** Shifts pi * U(0.5, 1.5) for the circular dimensions (std::mt19937_64 from seed), 0 elsewhere. */
    static std::unique_ptr<CircularShift> random(std::vector<bool> inputCircular, uint64_t seed);

    const std::vector<double>& getShifts() const { return shifts; }
    std::string getTypeName() const override { return "circular_shift"; }
    nlohmann::json getConfig() const override;
    static std::unique_ptr<CircularShift> fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular);

    std::unique_ptr<BijectionWorkspace> createWorkspace() const override;
    void apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context, double* logDet,
               BijectionWorkspace& ws, bool save) const override;
    void backward(Eigen::Ref<Eigen::MatrixXd> grad, const double* gradLogDet, Eigen::MatrixXd* gradContext,
                  double* paramGrad, BijectionWorkspace& ws) const override;

private:
    std::vector<double> shifts;
};

} // namespace cgflow::flows

#endif
