#ifndef CGFLOW_PMFFORCE_H_
#define CGFLOW_PMFFORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include <memory>
#include <string>
#include <vector>

namespace cgflow { namespace nn { class MLPEnsemble; } }

namespace CGFlowPlugin {

/**
 * A neural potential of mean force as an OpenMM Force.
 *
 * Geometric features of chosen particles (distances in nm, angles in radians, dihedrals encoded
 * as (cos, sin), raw or periodic Cartesian coordinates in nm) are concatenated in the order they
 * were added and fed to an ensemble of MLPs read from a model file. The energy is the
 * ensemble mean (kJ/mol); forces come from backpropagation through the MLPs and the
 * feature derivatives. The ensemble spread at the current state is available through
 * getEnsembleStd(), which is what active learning thresholds.
 *
 * The model is a value: the bytes of an OpenMM-CGFlow model file (safetensors, kind
 * "mlp_ensemble"). It is embedded when a System is serialized to XML.
 *
 * Particle groups (addParticleGroup()) make one force price many copies of a system at once, for
 * example the walkers of a CGMonteCarloIntegrator: the features are then a template whose
 * particle indices are positions within a group, applied to every group; the energy is the sum
 * over groups of each group's ensemble mean, and getGroupEnergies() / getGroupEnsembleStd() give
 * the groups apart. Without groups the features name the System's particles directly.
 *
 * Arguments are checked when they are given (a bad model file, a negative or repeated particle
 * index, a bad axis or period throw an OpenMMException naming the argument or the feature);
 * what depends on the System is checked when a Context is created: a model must be set, at least
 * one feature added, every particle index must be below the System's particle count, and the
 * features' inputs (getNumFeatureInputs()) must match the model's (getModelInputSize()).
 */
class PMFForce : public OpenMM::Force {
public:
    /**
     * The kinds of feature (getFeatureType()). Each gives one model input, except Dihedral and a
     * periodic Coordinate, which give two.
     */
    enum FeatureType {
        Distance = 0,   ///< |r_j - r_i| (nm), one input
        Angle = 1,      ///< angle at the middle particle (rad), one input
        Dihedral = 2,   ///< torsion phi, two inputs (cos phi, sin phi)
        Coordinate = 3  ///< one Cartesian coordinate; one input, or (cos, sin)(2 pi x / period) when periodic
    };
    /**
     * Create a PMFForce without a model and without features. Set the model with setModelFile() or
     * setModelBytes() and add features before creating a Context (a Context created without them
     * throws an OpenMMException).
     */
    PMFForce();
    /**
     * Create a PMFForce whose model is read from a file, as by setModelFile(). Features still have
     * to be added.
     *
     * @param modelFile  the path of an OpenMM-CGFlow model file of kind "mlp_ensemble". It is read
     *                   and validated now: a missing, unreadable or invalid file throws an
     *                   OpenMMException whose message starts "PMFForce: modelFile:" and names the file.
     */
    explicit PMFForce(const std::string& modelFile);
    ~PMFForce();

    /**
     * Set the model by reading an OpenMM-CGFlow model file (safetensors, kind "mlp_ensemble"). The
     * file is read and decoded now, so errors point at this call. The force keeps the file's bytes
     * (getModelBytes()), not its path. A Context that already exists keeps its model until
     * updateParametersInContext() is called.
     *
     * @param path  the path of the model file. If it cannot be read or is not a valid MLP-ensemble
     *              model, an OpenMMException is thrown (its message starts "PMFForce: modelFile:" and
     *              names the file) and the previous model is kept.
     */
    void setModelFile(const std::string& path);
    /**
     * Set the model from the contents of a model file held in memory (for example
     * MLPEnsemble.to_bytes() in Python). The bytes are decoded and validated now. A Context that
     * already exists keeps its model until updateParametersInContext() is called.
     *
     * @param modelBytes  the bytes of an OpenMM-CGFlow model file of kind "mlp_ensemble" (in Python a
     *                    bytes object; any other type raises TypeError). Invalid contents throw an
     *                    OpenMMException whose message starts "PMFForce: modelBytes:", and the
     *                    previous model is kept.
     */
    void setModelBytes(const std::string& modelBytes);
    /**
     * Get the model as the bytes of a model file: what setModelFile() read or setModelBytes() was
     * given. These bytes are what XML serialization embeds.
     *
     * @return the model file's bytes (in Python a bytes object); empty if no model has been set
     */
    const std::string& getModelBytes() const;
    /**
     * Get whether a model has been set.
     *
     * @return true once the file constructor, setModelFile() or setModelBytes() has succeeded
     */
    bool hasModel() const;
    /**
     * Get the number of inputs the model expects. A Context can only be created when this equals
     * getNumFeatureInputs().
     *
     * @return the model's input width, or 0 if no model has been set
     */
    int getModelInputSize() const;
    /**
     * Get the number of MLPs in the model's ensemble: the number of values getEnsembleEnergies()
     * returns.
     *
     * @return the number of ensemble members, or 0 if no model has been set
     */
    int getEnsembleSize() const;

    /**
     * Add a distance feature: the distance |r2 - r1| between two particles in nm, one model input.
     * With periodic boundary conditions (setUsesPeriodicBoundaryConditions()) it is the
     * minimum-image distance.
     *
     * @param particle1  the index of the first particle (>= 0; a negative index throws an
     *                   OpenMMException, an index beyond the System's particles is reported when a
     *                   Context is created)
     * @param particle2  the index of the second particle (>= 0 and different from particle1,
     *                   otherwise an OpenMMException is thrown)
     * @return the index of the feature that was added. Features are numbered from 0 in the order
     *         they are added, which is the order of the model's inputs.
     */
    int addDistance(int particle1, int particle2);
    /**
     * Add an angle feature: the angle at particle2 between the vectors to particle1 and particle3,
     * in radians in [0, pi], one model input.
     *
     * @param particle1  the index of the first particle (>= 0)
     * @param particle2  the index of the middle particle, the vertex of the angle (>= 0)
     * @param particle3  the index of the third particle (>= 0). A negative index, or a particle
     *                   given twice, throws an OpenMMException.
     * @return the index of the feature that was added
     */
    int addAngle(int particle1, int particle2, int particle3);
    /**
     * Add a dihedral feature: the torsion angle phi of particle1-particle2-particle3-particle4
     * about the particle2-particle3 bond, given to the model as two inputs, (cos phi, sin phi), so
     * that it is continuous across phi = +-pi.
     *
     * @param particle1  the index of the first particle (>= 0)
     * @param particle2  the index of the second particle (>= 0)
     * @param particle3  the index of the third particle (>= 0)
     * @param particle4  the index of the fourth particle (>= 0). A negative index, or a particle
     *                   given twice, throws an OpenMMException.
     * @return the index of the feature that was added
     */
    int addDihedral(int particle1, int particle2, int particle3, int particle4);
    /**
     * Add a Cartesian-coordinate feature: one coordinate of one particle, in nm. With period 0 it is
     * one input, the raw coordinate (never wrapped into the periodic box). With period > 0 it is
     * two inputs, (cos, sin)(2 pi x / period), so the energy is periodic in x with that period
     * (for example for extended variables).
     *
     * @param particle  the index of the particle (>= 0; a negative index throws an OpenMMException)
     * @param axis      which coordinate: 0, 1 or 2 for x, y, z (any other value throws an
     *                  OpenMMException)
     * @param period    the period in nm: 0 (the default) for a raw coordinate, or a finite positive
     *                  length for a periodic one (a negative or non-finite value throws an
     *                  OpenMMException)
     * @return the index of the feature that was added
     */
    int addCoordinate(int particle, int axis, double period = 0.0);
    /**
     * Get the number of features that have been added.
     *
     * @return the number of features
     */
    int getNumFeatures() const;
    /**
     * Get the number of model inputs the features produce: one per distance, angle and raw
     * coordinate, two per dihedral and periodic coordinate. It must equal getModelInputSize()
     * when a Context is created.
     *
     * @return the total input width of the features
     */
    int getNumFeatureInputs() const;
    /**
     * Get the type of a feature.
     *
     * @param index  the index of the feature, in [0, getNumFeatures()) (out of range throws an
     *               OpenMMException)
     * @return the feature's type: Distance, Angle, Dihedral or Coordinate
     */
    FeatureType getFeatureType(int index) const;
    /**
     * Get the particles of a feature.
     *
     * @param index  the index of the feature, in [0, getNumFeatures()) (out of range throws an
     *               OpenMMException)
     * @return the particle indices in the order they were given: two for a distance, three for an
     *         angle, four for a dihedral, one for a coordinate (in Python a tuple)
     */
    std::vector<int> getFeatureParticles(int index) const;
    /**
     * Get the axis of a Coordinate feature.
     *
     * @param index  the index of the feature, in [0, getNumFeatures()) (out of range throws an
     *               OpenMMException)
     * @return 0, 1 or 2 for x, y, z; 0 for features of other types
     */
    int getFeatureAxis(int index) const;
    /**
     * Get the period of a Coordinate feature.
     *
     * @param index  the index of the feature, in [0, getNumFeatures()) (out of range throws an
     *               OpenMMException)
     * @return the period in nm, 0 for a raw coordinate and for features of other types
     */
    double getFeaturePeriod(int index) const;
    /**
     * Change the particles of an existing feature. Its type (and a coordinate's axis and period)
     * stay the same, so the model's inputs keep their meaning. A Context that already exists sees
     * the change after updateParametersInContext().
     *
     * @param index      the index of the feature, in [0, getNumFeatures()) (out of range throws an
     *                   OpenMMException)
     * @param particles  the new particle indices (in Python any sequence of ints): as many as the
     *                   feature's type needs (2, 3, 4 or 1), each >= 0, all distinct. Otherwise an
     *                   OpenMMException naming the feature is thrown and the feature is unchanged.
     */
    void setFeatureParticles(int index, const std::vector<int>& particles);

    /**
     * Add a particle group: one copy of the system the features describe. Once groups exist, the
     * features' particle indices are positions within a group (0 is the group's first particle),
     * and every group is priced by the same ensemble; the force's energy is the sum over groups.
     * Groups must all have the same size, at least the largest particle index the features use plus
     * one, and no particle may belong to two groups (checked here for groups already added, and when
     * a Context is created).
     *
     * @param particles  the System's particle indices of the group, in template order (in Python any
     *                   sequence of ints), each >= 0 and distinct. A group that overlaps an earlier
     *                   one or differs from it in size throws an OpenMMException naming both groups.
     * @return the index of the new group
     */
    int addParticleGroup(const std::vector<int>& particles);
    /**
     * Get the number of particle groups added with addParticleGroup().
     *
     * @return 0 when the features name the System's particles directly, else the number of groups
     */
    int getNumParticleGroups() const;
    /**
     * Get the particles of a group.
     *
     * @param index  the index of the group, in [0, getNumParticleGroups()) (out of range throws an
     *               OpenMMException)
     * @return the group's particle indices, in template order
     */
    std::vector<int> getParticleGroup(int index) const;
    /**
     * Get the number of copies of the features the force evaluates: getNumParticleGroups(), or 1
     * when no group has been added.
     *
     * @return the number of independently priced copies (at least 1)
     */
    int getNumCopies() const;

    /**
     * Set whether the features use periodic boundary conditions. When they do, the vectors between
     * particles (for distances, angles and dihedrals) follow the minimum-image convention in the
     * Context's periodic box; coordinate features are never wrapped. The default is false.
     *
     * @param periodic  true to apply periodic boundary conditions
     */
    void setUsesPeriodicBoundaryConditions(bool periodic);
    /**
     * Get whether the features use periodic boundary conditions (set with
     * setUsesPeriodicBoundaryConditions(); default false).
     *
     * @return true if distances, angles and dihedrals use the minimum-image convention
     */
    bool usesPeriodicBoundaryConditions() const override;

    /**
     * Set the arithmetic the Reference and CPU platforms evaluate the model in.
     *
     * "float64" (the default): everything in double. "mixed": a float32 copy of the weights, the
     * hidden layers' matrix products and activations in float32, and in double everything that
     * sums into the result (each member's output layer, the ensemble mean, the gradient summed over
     * members, the features and their derivatives, the energy and forces). A model evaluated for one
     * configuration streams all its weights from memory twice (forward and backward), so halving
     * their bytes is what makes it faster (about 2x for the 10 x [4, 256, 128, 32, 1] phi/psi
     * ensemble); the energy moves by float32 rounding, ~1e-7 relative per layer (measured in
     * docs/workflows/pmf-force.md). The ensemble queries (getEnsembleEnergies() and the others) use
     * the same arithmetic as the energy.
     *
     * On the OpenCL and CUDA platforms the platform's own Precision property ("single", "mixed",
     * "double") decides, and this setting is not used.
     *
     * A Context that already exists sees the change after updateParametersInContext().
     *
     * @param precision  "float64" (or "double") or "mixed", case-insensitive; anything else throws an
     *                   OpenMMException naming the argument, and the setting is unchanged
     */
    void setPrecision(const std::string& precision);
    /**
     * Get the arithmetic of the Reference and CPU platforms (set with setPrecision()).
     *
     * @return "float64" or "mixed"
     */
    std::string getPrecision() const;

    /**
     * Copy the model weights and the features' particles into a Context, so that a new model
     * (setModelFile(), setModelBytes()) or moved features (setFeatureParticles()) take effect
     * without creating a new Context. Only values may change: the ensemble's architecture (number
     * of members, layer widths, activations), the number of features and their types must be those
     * the Context was created with (create a new Context otherwise).
     *
     * @param context  a Context whose System contains this force. An OpenMMException is thrown if
     *                 the force is not in it, if the force fails the checks made at Context
     *                 creation (see the class description), or if the architecture, the number of
     *                 features or a feature's type changed.
     */
    void updateParametersInContext(OpenMM::Context& context);
    /**
     * Compute the energy of every ensemble member at the Context's current positions (with particle
     * groups, each member's energy summed over the groups); forces are not touched. Their mean is
     * the energy this force contributes.
     *
     * @param context  a Context whose System contains this force (otherwise an OpenMMException is
     *                 thrown)
     * @return the energies in kJ/mol, one per ensemble member (getEnsembleSize() values; in Python
     *         a list)
     */
    std::vector<double> getEnsembleEnergies(OpenMM::Context& context) const;
    /**
     * Compute the spread of the ensemble at the Context's current positions: the population
     * standard deviation (ddof = 0) of getEnsembleEnergies(). This is the uncertainty active
     * learning thresholds.
     *
     * @param context  a Context whose System contains this force (otherwise an OpenMMException is
     *                 thrown)
     * @return the standard deviation of the ensemble energies in kJ/mol
     */
    double getEnsembleStd(OpenMM::Context& context) const;
    /**
     * Compute the energy of every copy (particle group) at the Context's current positions: the mean
     * over the ensemble of that group's energies; forces are not touched. Their sum is the energy
     * this force contributes.
     *
     * @param context  a Context whose System contains this force (otherwise an OpenMMException is
     *                 thrown)
     * @return getNumCopies() energies in kJ/mol (in Python a list)
     */
    std::vector<double> getGroupEnergies(OpenMM::Context& context) const;
    /**
     * Compute the ensemble spread of every copy (particle group) at the Context's current positions:
     * the population standard deviation of the members' energies of that group. This is what a
     * CGMonteCarloIntegrator thresholds for each walker.
     *
     * @param context  a Context whose System contains this force (otherwise an OpenMMException is
     *                 thrown)
     * @return getNumCopies() standard deviations in kJ/mol (in Python a list)
     */
    std::vector<double> getGroupEnsembleStd(OpenMM::Context& context) const;
    /**
     * Compute the energy of every ensemble member for every copy, copy-major: entry
     * c * getEnsembleSize() + m is member m's energy of copy c. The other ensemble queries are
     * reductions of this one; integrators read it directly.
     *
     * @param context  a Context whose System contains this force (otherwise an OpenMMException is
     *                 thrown)
     * @return getNumCopies() * getEnsembleSize() energies in kJ/mol
     */
    std::vector<double> getCopyMemberEnergies(OpenMM::Context& context) const;

    /**
     * Check everything a Context needs: a model is set, at least one feature has been added, every
     * feature's particles are valid indices for the System (with particle groups: for a group, and
     * the groups' particles for the System, disjoint), and the features' input width equals the
     * model's input size. Called when a Context is created and by updateParametersInContext();
     * not wrapped for Python.
     *
     * @param numParticles  the number of particles in the System
     * @throws OpenMMException naming the first problem found
     */
    void validate(int numParticles) const;

    /**
     * Get the decoded model (internal: read by the platform kernels; not wrapped for Python).
     *
     * @return the model's ensemble of MLPs
     * @throws OpenMMException if no model has been set
     */
    const cgflow::nn::MLPEnsemble& getEnsemble() const;

    /**
     * One feature as stored (internal: read by the kernels and the serialization proxy; not wrapped
     * for Python): its type, its particles, and for a Coordinate its axis (0, 1, 2) and period (nm,
     * 0 for raw); axis and period are 0 for other types.
     */
    struct FeatureInfo {
        FeatureType type;
        std::vector<int> particles;
        int axis;
        double period;
    };
    /**
     * Get all features (internal: for the kernels and the serialization proxy; not wrapped for
     * Python).
     *
     * @return the features in the order they were added
     */
    const std::vector<FeatureInfo>& getFeatures() const { return features; }

protected:
    /** Create the PMFForceImpl that OpenMM uses inside a Context. */
    OpenMM::ForceImpl* createImpl() const override;

private:
    int addFeature(FeatureType type, const std::vector<int>& particles, int axis, double period);
    void checkIndex(int index) const;
    std::string modelBytes;
    std::shared_ptr<const cgflow::nn::MLPEnsemble> ensemble;
    std::vector<FeatureInfo> features;
    std::vector<std::vector<int>> groups;
    bool periodic;
    bool mixedPrecision;
};

} // namespace CGFlowPlugin

#endif
