#include "PMFForce.h"
#include "internal/PMFForceImpl.h"
#include "cgflow/Error.h"
#include "cgflow/io/FileUtils.h"
#include "cgflow/io/models/MLPEnsembleFile.h"
#include "cgflow/nn/MLPEnsemble.h"
#include "cgflow/nn/Precision.h"
#include "cgflow/coords/Features.h"
#include "internal/PMFForceFeatures.h"
#include "cgflow/stats/Moments.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/AssertionUtilities.h"
#include <cmath>
#include <limits>
#include <set>
#include <sstream>

using namespace CGFlowPlugin;
using namespace OpenMM;

namespace {

std::string featureName(int index, PMFForce::FeatureType type) {
    static const char* names[] = {"distance", "angle", "dihedral", "coordinate"};
    std::stringstream s;
    s << "PMFForce feature " << index << " (" << names[type] << ")";
    return s.str();
}

} // namespace

PMFForce::PMFForce() : periodic(false), mixedPrecision(false) {
}

PMFForce::PMFForce(const std::string& modelFile) : periodic(false), mixedPrecision(false) {
    setModelFile(modelFile);
}

PMFForce::~PMFForce() = default;

void PMFForce::setModelFile(const std::string& path) {
    std::string bytes;
    try {
        bytes = cgflow::io::readFileBytes(path);
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("PMFForce: modelFile: ") + e.what());
    }
    try {
        ensemble = std::make_shared<const cgflow::nn::MLPEnsemble>(cgflow::io::decodeMLPEnsemble(bytes, path));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("PMFForce: modelFile: ") + e.what());
    }
    modelBytes = std::move(bytes);
}

void PMFForce::setModelBytes(const std::string& bytes) {
    try {
        ensemble = std::make_shared<const cgflow::nn::MLPEnsemble>(cgflow::io::decodeMLPEnsemble(bytes, "model bytes"));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("PMFForce: modelBytes: ") + e.what());
    }
    modelBytes = bytes;
}

const std::string& PMFForce::getModelBytes() const {
    return modelBytes;
}

bool PMFForce::hasModel() const {
    return ensemble != nullptr;
}

int PMFForce::getModelInputSize() const {
    return ensemble ? ensemble->getInputSize() : 0;
}

int PMFForce::getEnsembleSize() const {
    return ensemble ? ensemble->getNumMembers() : 0;
}

const cgflow::nn::MLPEnsemble& PMFForce::getEnsemble() const {
    if (!ensemble)
        throw OpenMMException("PMFForce: no model has been set (use setModelFile or setModelBytes)");
    return *ensemble;
}

int PMFForce::addFeature(FeatureType type, const std::vector<int>& particles, int axis, double period) {
    FeatureInfo f{type, particles, axis, period};
    for (int p : particles)
        if (p < 0)
            throw OpenMMException(featureName((int) features.size(), type) + ": particle index " + std::to_string(p) + " must be >= 0");
    // Validate everything that does not depend on the System now, so errors point at the call.
    try {
        cgflow::coords::validateFeature(coreFeature(f), std::numeric_limits<int>::max(), featureName((int) features.size(), type));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(e.what());
    }
    features.push_back(f);
    return (int) features.size() - 1;
}

int PMFForce::addDistance(int particle1, int particle2) {
    return addFeature(Distance, {particle1, particle2}, 0, 0.0);
}

int PMFForce::addAngle(int particle1, int particle2, int particle3) {
    return addFeature(Angle, {particle1, particle2, particle3}, 0, 0.0);
}

int PMFForce::addDihedral(int particle1, int particle2, int particle3, int particle4) {
    return addFeature(Dihedral, {particle1, particle2, particle3, particle4}, 0, 0.0);
}

int PMFForce::addCoordinate(int particle, int axis, double period) {
    return addFeature(Coordinate, {particle}, axis, period);
}

int PMFForce::getNumFeatures() const {
    return (int) features.size();
}

int PMFForce::getNumFeatureInputs() const {
    int width = 0;
    for (const FeatureInfo& f : features)
        width += coreFeature(f).getWidth();
    return width;
}

void PMFForce::checkIndex(int index) const {
    if (index < 0 || index >= (int) features.size()) {
        std::stringstream s;
        s << "PMFForce: feature index " << index << " out of range [0, " << features.size() << ")";
        throw OpenMMException(s.str());
    }
}

PMFForce::FeatureType PMFForce::getFeatureType(int index) const {
    checkIndex(index);
    return features[index].type;
}

std::vector<int> PMFForce::getFeatureParticles(int index) const {
    checkIndex(index);
    return features[index].particles;
}

int PMFForce::getFeatureAxis(int index) const {
    checkIndex(index);
    return features[index].axis;
}

double PMFForce::getFeaturePeriod(int index) const {
    checkIndex(index);
    return features[index].period;
}

void PMFForce::setFeatureParticles(int index, const std::vector<int>& particles) {
    checkIndex(index);
    FeatureInfo f = features[index];
    f.particles = particles;
    try {
        cgflow::coords::validateFeature(coreFeature(f), std::numeric_limits<int>::max(), featureName(index, f.type));
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(e.what());
    }
    features[index] = f;
}

int PMFForce::addParticleGroup(const std::vector<int>& particles) {
    const int index = (int) groups.size();
    const std::string name = "PMFForce particle group " + std::to_string(index);
    if (particles.empty())
        throw OpenMMException(name + ": particles must not be empty");
    std::set<int> seen;
    for (int p : particles) {
        if (p < 0)
            throw OpenMMException(name + ": particle index " + std::to_string(p) + " must be >= 0");
        if (!seen.insert(p).second)
            throw OpenMMException(name + ": particle " + std::to_string(p) + " appears twice");
    }
    for (int g = 0; g < index; g++) {
        if (groups[g].size() != particles.size())
            throw OpenMMException(name + " has " + std::to_string(particles.size()) + " particles but group " +
                                  std::to_string(g) + " has " + std::to_string(groups[g].size()) +
                                  "; every group is one copy of the same template");
        for (int p : groups[g])
            if (seen.count(p) != 0)
                throw OpenMMException(name + " overlaps group " + std::to_string(g) + " (particle " + std::to_string(p) +
                                      "); groups must be disjoint");
    }
    groups.push_back(particles);
    return index;
}

int PMFForce::getNumParticleGroups() const {
    return (int) groups.size();
}

std::vector<int> PMFForce::getParticleGroup(int index) const {
    if (index < 0 || index >= (int) groups.size())
        throw OpenMMException("PMFForce: particle group index " + std::to_string(index) + " out of range [0, " +
                              std::to_string(groups.size()) + ")");
    return groups[index];
}

int PMFForce::getNumCopies() const {
    return groups.empty() ? 1 : (int) groups.size();
}

void PMFForce::setUsesPeriodicBoundaryConditions(bool periodic) {
    this->periodic = periodic;
}

bool PMFForce::usesPeriodicBoundaryConditions() const {
    return periodic;
}

void PMFForce::setPrecision(const std::string& precision) {
    try {
        mixedPrecision = cgflow::nn::parsePrecision(precision) == cgflow::nn::Precision::Mixed;
    }
    catch (const cgflow::Error& e) {
        throw OpenMMException(std::string("PMFForce.setPrecision: precision: ") + e.what());
    }
}

std::string PMFForce::getPrecision() const {
    return cgflow::nn::precisionName(mixedPrecision ? cgflow::nn::Precision::Mixed : cgflow::nn::Precision::Float64);
}

void PMFForce::validate(int numParticles) const {
    if (!ensemble)
        throw OpenMMException("PMFForce: no model has been set (use setModelFile or setModelBytes)");
    if (features.empty())
        throw OpenMMException("PMFForce: no features have been added");
    // With groups, feature indices are positions within a group.
    const int templateSize = groups.empty() ? numParticles : (int) groups[0].size();
    for (int i = 0; i < (int) features.size(); i++) {
        try {
            cgflow::coords::validateFeature(coreFeature(features[i]), templateSize, featureName(i, features[i].type) +
                                            (groups.empty() ? "" : " (indices within a particle group)"));
        }
        catch (const cgflow::Error& e) {
            throw OpenMMException(e.what());
        }
    }
    for (int g = 0; g < (int) groups.size(); g++)
        for (int p : groups[g])
            if (p >= numParticles)
                throw OpenMMException("PMFForce particle group " + std::to_string(g) + ": particle " + std::to_string(p) +
                                      " is not in the System (" + std::to_string(numParticles) + " particles)");
    if (getNumFeatureInputs() != ensemble->getInputSize()) {
        std::stringstream s;
        s << "PMFForce: the " << features.size() << " features give " << getNumFeatureInputs()
          << " inputs (dihedrals and periodic coordinates count two: cos, sin) but the model expects "
          << ensemble->getInputSize();
        throw OpenMMException(s.str());
    }
}

ForceImpl* PMFForce::createImpl() const {
    return new PMFForceImpl(*this);
}

void PMFForce::updateParametersInContext(Context& context) {
    dynamic_cast<PMFForceImpl&>(getImplInContext(context)).updateParametersInContext(getContextImpl(context));
}

std::vector<double> PMFForce::getCopyMemberEnergies(Context& context) const {
    PMFForce& self = const_cast<PMFForce&>(*this);
    return dynamic_cast<PMFForceImpl&>(self.getImplInContext(context)).getCopyMemberEnergies(self.getContextImpl(context));
}

std::vector<double> PMFForce::getEnsembleEnergies(Context& context) const {
    const std::vector<double> all = getCopyMemberEnergies(context);
    const int members = getEnsembleSize();
    std::vector<double> sums(members, 0.0);
    for (size_t i = 0; i < all.size(); i++)
        sums[i % members] += all[i];
    return sums;
}

double PMFForce::getEnsembleStd(Context& context) const {
    const std::vector<double> e = getEnsembleEnergies(context);
    return cgflow::stats::meanAndStd(e.data(), (int) e.size()).second;
}

std::vector<double> PMFForce::getGroupEnergies(Context& context) const {
    const std::vector<double> all = getCopyMemberEnergies(context);
    const int members = getEnsembleSize();
    std::vector<double> result(all.size() / members);
    for (size_t c = 0; c < result.size(); c++)
        result[c] = cgflow::stats::meanAndStd(&all[c * members], members).first;
    return result;
}

std::vector<double> PMFForce::getGroupEnsembleStd(Context& context) const {
    const std::vector<double> all = getCopyMemberEnergies(context);
    const int members = getEnsembleSize();
    std::vector<double> result(all.size() / members);
    for (size_t c = 0; c < result.size(); c++)
        result[c] = cgflow::stats::meanAndStd(&all[c * members], members).second;
    return result;
}
