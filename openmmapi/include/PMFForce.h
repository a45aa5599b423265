#ifndef CGFLOW_PMFFORCE_H_
#define CGFLOW_PMFFORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include <memory>
#include <string>
#include <vector>

namespace cgflow { namespace nn { class MLPEnsemble; } }

namespace CGFlow {

/**
 * A neural potential of mean force as an OpenMM Force.
 *
 * Geometric features of chosen particles (distances, angles, dihedrals encoded as
 * (cos, sin), raw or periodic Cartesian coordinates) are concatenated in the order they
 * were added and fed to an ensemble of MLPs read from a model file. The energy is the
 * ensemble mean (kJ/mol); forces come from backpropagation through the MLPs and the
 * feature derivatives. The ensemble spread at the current state is available through
 * getEnsembleStd(), which is what active learning thresholds.
 *
 * The model is a value: the bytes of an OpenMM-CGFlow model file (safetensors, kind
 * "mlp_ensemble"). It is embedded when a System is serialized to XML.
 */
class PMFForce : public OpenMM::Force {
public:
    enum FeatureType {
        Distance = 0,   ///< |r_j - r_i| (nm), one input
        Angle = 1,      ///< angle at the middle particle (rad), one input
        Dihedral = 2,   ///< torsion phi, two inputs (cos phi, sin phi)
        Coordinate = 3  ///< one Cartesian coordinate; one input, or (cos, sin)(2 pi x / period) when periodic
    };
    /** Create a PMFForce without a model; call setModelFile() or setModelBytes() before use. */
    PMFForce();
    /** Create a PMFForce reading its model from a file. */
    explicit PMFForce(const std::string& modelFile);
    ~PMFForce();

    /** Read the model from a file (validated now; errors name the file). */
    void setModelFile(const std::string& path);
    /** Set the model from the bytes of a model file (validated now). */
    void setModelBytes(const std::string& modelBytes);
    /** The bytes of the model file. */
    const std::string& getModelBytes() const;
    bool hasModel() const;
    /** Number of inputs the model expects (0 without a model). */
    int getModelInputSize() const;
    /** Number of ensemble members (0 without a model). */
    int getEnsembleSize() const;

    int addDistance(int particle1, int particle2);
    int addAngle(int particle1, int particle2, int particle3);
    int addDihedral(int particle1, int particle2, int particle3, int particle4);
    /** axis: 0, 1, 2 for x, y, z. period > 0 makes the coordinate periodic (extended variables). */
    int addCoordinate(int particle, int axis, double period = 0.0);
    int getNumFeatures() const;
    /** Total number of model inputs produced by the features (dihedrals and periodic coordinates count two). */
    int getNumFeatureInputs() const;
    FeatureType getFeatureType(int index) const;
    std::vector<int> getFeatureParticles(int index) const;
    int getFeatureAxis(int index) const;
    double getFeaturePeriod(int index) const;
    /** Replace a feature; the type must stay the same so the model's inputs keep their meaning. */
    void setFeatureParticles(int index, const std::vector<int>& particles);

    void setUsesPeriodicBoundaryConditions(bool periodic);
    bool usesPeriodicBoundaryConditions() const override;

    /**
     * Copy the model weights and feature particles into a Context. The architecture, the
     * number of features and their types must be unchanged (create a new Context otherwise).
     */
    void updateParametersInContext(OpenMM::Context& context);
    /** Energies of every ensemble member (kJ/mol) at the Context's current positions. */
    std::vector<double> getEnsembleEnergies(OpenMM::Context& context) const;
    /** Population standard deviation (ddof = 0) of the ensemble energies at the current positions (kJ/mol). */
    double getEnsembleStd(OpenMM::Context& context) const;

    /** Checks everything a Context needs; throws OpenMMException naming the problem. */
    void validate(int numParticles) const;

    /** The decoded model (internal; shared by the kernels). */
    const cgflow::nn::MLPEnsemble& getEnsemble() const;

    struct FeatureInfo {
        FeatureType type;
        std::vector<int> particles;
        int axis;
        double period;
    };
    const std::vector<FeatureInfo>& getFeatures() const { return features; }

protected:
    OpenMM::ForceImpl* createImpl() const override;

private:
    int addFeature(FeatureType type, const std::vector<int>& particles, int axis, double period);
    void checkIndex(int index) const;
    std::string modelBytes;
    std::shared_ptr<const cgflow::nn::MLPEnsemble> ensemble;
    std::vector<FeatureInfo> features;
    bool periodic;
};

} // namespace CGFlow

#endif
