#ifndef CGFLOW_PMFFORCEFEATURES_H_
#define CGFLOW_PMFFORCEFEATURES_H_

#include "PMFForce.h"
#include "cgflow/coords/Features.h"

#include <vector>

namespace CGFlowPlugin {

/**
 * A PMFForce feature as the core's description of it (cgflow::coords::Feature: type, particles,
 * axis, period). The one place where the OpenMM-facing feature list is translated: PMFForce
 * validates its features through it and every platform kernel reads them through it, so a new
 * feature type is added in the core and here, nowhere else.
 */
cgflow::coords::Feature coreFeature(const PMFForce::FeatureInfo& feature);

/**
 * Every feature a Context evaluates, as core features on the System's particle indices: without
 * particle groups, coreFeature() of each of the force's features in the order they were added;
 * with groups, that list once per group (copy-major), each feature's template indices replaced by
 * the group's particles. Model inputs follow the same order, so copy c's inputs are the c-th block
 * of getNumFeatureInputs() values.
 */
std::vector<cgflow::coords::Feature> coreFeatures(const PMFForce& force);

} // namespace CGFlowPlugin

#endif
