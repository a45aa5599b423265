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
 * Bond score (data-free CG paper, Stupp & Koutsourelakis, section 3.3 and Table 7: "how many bonded
 * atom distances lie within 10 % of the bond distance in the reference trajectory", citing Jones et
 * al. 2023, DiAMoNDBack, whose `bond_fraction` it is): the fraction of all (sample, bond) pairs with
 * |d - d_ref| <= tolerance * d_ref. tolerance is relative (0.1 = 10 %); referenceLengths: one per
 * bond (nm), e.g. the mean over a reference trajectory. Per bond, not per sample: a sample with one
 * stretched bond out of 20 still contributes 19 good ones, as in the paper.
 */
double bondScore(int numAtoms, const std::vector<double>& positions, const std::vector<std::array<int, 2>>& bonds,
                 const std::vector<double>& referenceLengths, double tolerance = 0.1);

/**
 * Diversity score (data-free CG paper, section 3.3 and Table 7: it "compares the average RMSD
 * between generated structures themselves with the RMSD between generated structures and the
 * atomistic reference", citing Wang et al. 2022 and Jones et al. 2023, whose `sample_rmsd_percent`
 * is 1 - R_sam / R_ref):
 *   DIV = 1 - mean_{i<j} RMSD(gen_i, gen_j) / mean_{i,k} RMSD(gen_i, ref_k),
 * RMSD after Kabsch superposition, over distinct generated pairs and all generated-reference pairs
 * (the generators here are unconditional, so every reference structure is a partner, not one
 * paired frame). About 0 when the generated set is as spread out as its distance to the reference
 * (a generator that draws from the reference ensemble gives -1/(n_gen - 1) against itself); 1 for a
 * collapsed generator that repeats one structure. Not clamped to [0, 1]: a generator broader than
 * the reference gives a negative score. Cost O(n_gen^2 + n_gen n_ref) RMSDs. generated needs >= 2
 * samples, reference >= 1.
 */
double diversityScore(int numAtoms, const std::vector<double>& generated, const std::vector<double>& reference);

} // namespace cgflow::stats

#endif
