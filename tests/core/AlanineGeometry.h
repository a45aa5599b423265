#ifndef CGFLOW_TEST_ALANINE_GEOMETRY_H_
#define CGFLOW_TEST_ALANINE_GEOMETRY_H_

// Alanine dipeptide fixtures shared by the core and plugin tests.
#include <utility>
#include <vector>

namespace cgflowtest {

/** The 21 bonds of alanine dipeptide in the atom order of ZMatrix::alanineDipeptide(). */
inline const std::vector<std::pair<int, int>> alanineBonds = {
    {0, 1},  {1, 2},   {1, 3},   {1, 4},   {4, 5},   {4, 6},   {6, 7},   {6, 8},   {8, 9},   {8, 10}, {10, 11},
    {10, 12}, {10, 13}, {8, 14}, {14, 15}, {14, 16}, {16, 17}, {16, 18}, {18, 19}, {18, 20}, {18, 21}};

/**
 * L-alanine dipeptide as built by AmberTools' tleap (the geometry of OpenMM's alanine-dipeptide test
 * files), nm: an external reference for which sign is L.
 */
inline const std::vector<double> alanineTleap = {
    0.2000, 0.1000, 0.0000,  0.2000, 0.2090, 0.0000,  0.1486, 0.2454, 0.0890,  0.1486, 0.2454, -0.0890,
    0.3427, 0.2641, 0.0000,  0.4391, 0.1877, 0.0000,  0.3555, 0.3970, 0.0000,  0.2733, 0.4556, 0.0000,
    0.4853, 0.4614, 0.0000,  0.5408, 0.4316, 0.0890,  0.5661, 0.4221, -0.1232, 0.5123, 0.4521, -0.2131,
    0.6630, 0.4719, -0.1206, 0.5809, 0.3141, -0.1241, 0.4713, 0.6129, 0.0000,  0.3601, 0.6653, 0.0000,
    0.5846, 0.6835, 0.0000,  0.6737, 0.6359, 0.0000,  0.5846, 0.8284, 0.0000,  0.4819, 0.8648, 0.0000,
    0.6360, 0.8648, 0.0890,  0.6360, 0.8648, -0.0890};

} // namespace cgflowtest

#endif
