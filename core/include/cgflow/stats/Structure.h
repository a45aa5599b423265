#ifndef CGFLOW_STATS_STRUCTURE_H_
#define CGFLOW_STATS_STRUCTURE_H_

#include <array>
#include <vector>

namespace cgflow::stats {

/**
 * Structure metrics of the papers for batches of configurations. Batches are sample-major flat
 * arrays (sample s holds 3N values x0, y0, z0, x1, ... in nm), as in coords::InternalCoordinates.
 */

/**
 * Radius of gyration of each sample: sqrt(sum m_i |x_i - x_com|^2 / sum m_i) (data-free CG paper,
 * Eq. 29). masses: N values > 0, or empty for equal masses.
 */
std::vector<double> radiusOfGyration(int numAtoms, const std::vector<double>& positions,
                                     const std::vector<double>& masses = {});

/**
 * RMSD of each sample to a reference configuration after optimal superposition (translation and
 * proper rotation, Kabsch: a reflection is never used, so a mirror image keeps a non-zero RMSD).
 */
std::vector<double> rmsd(int numAtoms, const std::vector<double>& positions, const std::vector<double>& reference);
/** The same for one pair of configurations. */
double rmsdPair(int numAtoms, const double* a, const double* b);

/**
 * Bond score (data-free CG paper, section 3.3, after Jing et al.): the fraction of bonded distances,
 * over all samples and bonds, within `tolerance` (relative, 0.1 = 10 %) of the reference bond
 * length. referenceLengths: one per bond (nm), e.g. the mean over a reference trajectory.
 */
double bondScore(int numAtoms, const std::vector<double>& positions, const std::vector<std::array<int, 2>>& bonds,
                 const std::vector<double>& referenceLengths, double tolerance = 0.1);

/**
 * Diversity score (data-free CG paper, section 3.3, the definition of Arts et al. 2023 it cites):
 *   DIV = 1 - (mean RMSD(gen, gen') + mean RMSD(ref, ref')) / (2 mean RMSD(gen, ref)),
 * over distinct pairs within each set and all cross pairs, RMSD after Kabsch superposition. Close
 * to 0 when the generated set is as diverse as the reference and overlaps it; not clamped (finite
 * samples can make it slightly negative). Cost O((n_gen + n_ref)^2) RMSDs. Each set needs >= 2 samples.
 */
double diversityScore(int numAtoms, const std::vector<double>& generated, const std::vector<double>& reference);

} // namespace cgflow::stats

#endif
