#ifndef CGFLOW_FLOWS_SPLINECOUPLING_H_
#define CGFLOW_FLOWS_SPLINECOUPLING_H_

#include "cgflow/flows/CouplingLayer.h"
#include "cgflow/flows/RQSpline.h"

namespace cgflow::flows {

/** The spline of a spline coupling layer. */
struct SplineOptions {
    int numBins = 8;
    double bound = 5.0; ///< B: real dimensions are splined on [-B, B], identity outside
    double minBinWidth = RQSpline::DefaultMinBinWidth;
    double minBinHeight = RQSpline::DefaultMinBinHeight;
    double minDerivative = RQSpline::DefaultMinDerivative;
};

/**
 * Rational-quadratic spline coupling (Durkan et al. 2019): transformed real dimensions go through
 * the monotonic spline on [-B, B] with identity tails, transformed circular dimensions through the
 * circular spline on [-pi, pi] (Rezende et al. 2020), both from RQSpline with the conditioner's
 * output as raw parameters (3K - 1 per real, 3K per circular dimension).
 *
 * With every dimension transformed and no context, the layer is an elementwise spline with free
 * parameters (elementwise()), the flow for 1-D problems such as the double well.
 */
class SplineCoupling : public CouplingLayer {
public:
    SplineCoupling(std::vector<bool> inputCircular, const CouplingOptions& coupling, const SplineOptions& spline);
    /** Every dimension transformed; conditional on contextFeatureSize features when > 0, else free parameters. */
    static std::unique_ptr<SplineCoupling> elementwise(std::vector<bool> inputCircular, const SplineOptions& spline,
                                                       int contextFeatureSize = 0, int hiddenSize = 64,
                                                       int numBlocks = 1,
                                                       nn::Activation activation = nn::Activation::ReLU);

    const SplineOptions& getSplineOptions() const { return options; }
    std::string getTypeName() const override { return "spline_coupling"; }
    nlohmann::json getConfig() const override;
    static std::unique_ptr<SplineCoupling> fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular);

protected:
    void transform(Direction direction, CouplingWorkspace& ws, double* logDet) const override;
    void transformBackward(CouplingWorkspace& ws, const double* gradLogDet) const override;
    void identityRawParameters(double* raw) const override;

private:
    SplineOptions options;
    RQSpline monotonic;
    RQSpline circular;
};

} // namespace cgflow::flows

#endif
