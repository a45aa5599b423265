#ifndef CGFLOW_FLOWS_AFFINECOUPLING_H_
#define CGFLOW_FLOWS_AFFINECOUPLING_H_

#include "cgflow/flows/CouplingLayer.h"

namespace cgflow::flows {

/**
 * Affine (RealNVP, Dinh et al. 2017) coupling: x_T = z_T * exp(s) + t with (s, t) from the
 * conditioner (raw layout per sample: s for every transformed dimension, then t), so
 * log|det J| = sum(s). Real dimensions only: an affine map does not respect the circle, so
 * transforming a circular dimension is an Error. The log-scale is used as the network emits it
 * (no tanh squashing), so the layer is exactly the textbook one; the identity initialization and
 * the optimizer's gradient guard keep early steps tame.
 */
class AffineCoupling : public CouplingLayer {
public:
    AffineCoupling(std::vector<bool> inputCircular, const CouplingOptions& coupling);

    std::string getTypeName() const override { return "affine_coupling"; }
    nlohmann::json getConfig() const override { return couplingConfig(); }
    static std::unique_ptr<AffineCoupling> fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular);

protected:
    void transform(Direction direction, CouplingWorkspace& ws, double* logDet) const override;
    void transformBackward(CouplingWorkspace& ws, const double* gradLogDet) const override;
    void identityRawParameters(double* raw) const override;
};

} // namespace cgflow::flows

#endif
