#include "CoreTestUtils.h"
#include "cgflow/Error.h"
#include "cgflow/coords/ZMatrix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

using cgflow::Error;
using cgflow::coords::InternalCoordinateType;
using cgflow::coords::ZMatrix;
using cgflow::coords::ZMatrixRow;

namespace {

using cgflowtest::errorMessage;

using Bonds = std::vector<std::pair<int, int>>;

// ACE-ALA-NME in the standard atom order (see ZMatrix::alanineDipeptide()).
const Bonds alanineBonds = {{0, 1},  {1, 2},   {1, 3},   {1, 4},   {4, 5},   {4, 6},   {6, 7},
                            {6, 8},  {8, 9},   {8, 10},  {10, 11}, {10, 12}, {10, 13}, {8, 14},
                            {14, 15}, {14, 16}, {16, 17}, {16, 18}, {18, 19}, {18, 20}, {18, 21}};
const std::vector<double> alanineMasses = {1.008, 12.01, 1.008, 1.008, 12.01, 16.00, 14.01, 1.008,
                                           12.01, 1.008, 12.01, 1.008, 1.008, 1.008, 12.01, 16.00,
                                           14.01, 1.008, 12.01, 1.008, 1.008, 1.008};

std::set<std::pair<int, int>> bondSet(const Bonds& bonds) {
    std::set<std::pair<int, int>> set;
    for (auto [i, j] : bonds)
        set.insert({std::min(i, j), std::max(i, j)});
    return set;
}

bool bonded(const std::set<std::pair<int, int>>& bonds, int i, int j) {
    return bonds.count({std::min(i, j), std::max(i, j)}) > 0;
}

std::vector<int> degrees(int n, const Bonds& bonds) {
    std::vector<int> degree(n, 0);
    for (auto [i, j] : bonds) {
        degree[i]++;
        degree[j]++;
    }
    return degree;
}

/**
 * Checks what every fromBonds result must satisfy: each atom once (the constructor validates the
 * rest), every partner relation a real bond (bond partner bonded to the atom, angle partner bonded to
 * the bond partner, dihedral partner bonded to the bond or the angle partner), and the backbone
 * (atoms with >= 2 bonds) placed before all terminal atoms.
 */
void expectWellFormed(const ZMatrix& z, int n, const Bonds& bonds) {
    ASSERT_EQ(z.getNumAtoms(), n);
    auto set = bondSet(bonds);
    std::vector<int> degree = degrees(n, bonds);
    std::vector<int> seen(n, 0);
    bool terminalSeen = false;
    for (int r = 0; r < n; r++) {
        const ZMatrixRow& row = z.getRow(r);
        seen[row.atom]++;
        if (n > 3 && degree[row.atom] < 2) {
            terminalSeen = true;
        } else if (n > 3) {
            EXPECT_FALSE(terminalSeen) << "backbone atom " << row.atom << " placed after a terminal atom";
        }
        if (r >= 1) {
            EXPECT_TRUE(bonded(set, row.atom, row.bondPartner)) << "row " << r;
        }
        if (r >= 2) {
            EXPECT_TRUE(bonded(set, row.bondPartner, row.anglePartner)) << "row " << r;
        }
        if (r >= 3) {
            EXPECT_TRUE(bonded(set, row.bondPartner, row.dihedralPartner) ||
                        bonded(set, row.anglePartner, row.dihedralPartner))
                << "row " << r;
        }
    }
    for (int a = 0; a < n; a++)
        EXPECT_EQ(seen[a], 1) << "atom " << a;
}

/** The central bond of a circular torsion a-b-c-d is b-c, as a sorted pair. */
std::set<std::pair<int, int>> circularBonds(const ZMatrix& z) {
    std::set<std::pair<int, int>> set;
    for (const ZMatrixRow& row : z.getRows())
        if (row.circular)
            set.insert({std::min(row.bondPartner, row.anglePartner), std::max(row.bondPartner, row.anglePartner)});
    return set;
}

} // namespace

TEST(ZMatrix, ExplicitRowsAndColumnLayout) {
    ZMatrix z({{2, -1, -1, -1}, {0, 2, -1, -1}, {1, 0, 2, -1}, {3, 1, 0, 2, true}, {4, 1, 0, 3}});
    EXPECT_EQ(z.getNumAtoms(), 5);
    EXPECT_EQ(z.getNumInternal(), 9);
    EXPECT_EQ(z.getReferenceAtoms(), (std::vector<int>{2, 0, 1}));
    EXPECT_EQ(z.getRowOfAtom(3), 3);
    EXPECT_EQ(z.getRowOfAtom(2), 0);
    EXPECT_EQ(z.getBondColumn(0), -1);
    EXPECT_EQ(z.getBondColumn(1), 0);
    EXPECT_EQ(z.getAngleColumn(1), -1);
    EXPECT_EQ(z.getBondColumn(2), 1);
    EXPECT_EQ(z.getAngleColumn(2), 2);
    EXPECT_EQ(z.getDihedralColumn(2), -1);
    EXPECT_EQ(z.getBondColumn(3), 3);
    EXPECT_EQ(z.getAngleColumn(3), 4);
    EXPECT_EQ(z.getDihedralColumn(3), 5);
    EXPECT_EQ(z.getDihedralColumn(4), 8);
    // Every column maps back to the row and type that own it.
    for (int c = 0; c < z.getNumInternal(); c++) {
        int r = z.getColumnRow(c);
        switch (z.getColumnType(c)) {
        case InternalCoordinateType::Bond: EXPECT_EQ(z.getBondColumn(r), c); break;
        case InternalCoordinateType::Angle: EXPECT_EQ(z.getAngleColumn(r), c); break;
        case InternalCoordinateType::Dihedral: EXPECT_EQ(z.getDihedralColumn(r), c); break;
        }
    }
    EXPECT_EQ(z.getCircularColumns(), (std::vector<int>{5}));
    EXPECT_EQ(z.getNumCircular(), 1);
    EXPECT_TRUE(z.isCircularColumn(5));
    EXPECT_FALSE(z.isCircularColumn(8));
    EXPECT_EQ(z.getColumnAtoms(5), (std::vector<int>{3, 1, 0, 2}));
    EXPECT_EQ(z.describeColumn(5), "dihedral(3,1,0,2) circular");
    EXPECT_EQ(z.describeColumn(8), "dihedral(4,1,0,3) dependent");
    EXPECT_EQ(z.describeColumn(2), "angle(1,0,2)");
    EXPECT_EQ(z.describeColumn(0), "bond(0,2)");
    EXPECT_NE(errorMessage([&] { z.getColumnType(9); }).find("column 9"), std::string::npos);
    EXPECT_NE(errorMessage([&] { z.getRow(5); }).find("row 5"), std::string::npos);

    // Degrees of freedom of tiny molecules: 0, 1, 3.
    EXPECT_EQ(ZMatrix(std::vector<ZMatrixRow>{{0}}).getNumInternal(), 0);
    EXPECT_EQ(ZMatrix(std::vector<ZMatrixRow>{{1}, {0, 1}}).getNumInternal(), 1);
    EXPECT_EQ(ZMatrix(std::vector<ZMatrixRow>{{1}, {0, 1}, {2, 1, 0}}).getNumInternal(), 3);
    EXPECT_EQ(ZMatrix().getNumInternal(), 0);
}

TEST(ZMatrix, ValidationNamesTheProblem) {
    auto message = [](std::vector<ZMatrixRow> rows) { return errorMessage([&] { ZMatrix z(rows); }); };
    EXPECT_NE(message({}).find("ZMatrix: rows is empty"), std::string::npos);
    EXPECT_NE(message({{0}, {0, 0}}).find("placed twice"), std::string::npos);
    EXPECT_NE(message({{0}, {5, 0}}).find("rows[1].atom = 5"), std::string::npos);
    EXPECT_NE(message({{0}, {1, 2}, {2, 0, 1}}).find("rows[1].bondPartner = 2 is not placed before"),
              std::string::npos);
    EXPECT_NE(message({{0}, {1, 0}, {2, 0, 0}}).find("rows[2].anglePartner = 0 repeats bondPartner"),
              std::string::npos);
    EXPECT_NE(message({{0}, {1, 0}, {2, 1, 0}, {3, 2, 1, 1}}).find("rows[3].dihedralPartner = 1 repeats anglePartner"),
              std::string::npos);
    EXPECT_NE(message({{0}, {1, 0}, {2, 1, 0}, {3, 2, 1, 3}}).find("rows[3].dihedralPartner = 3 is not placed before"),
              std::string::npos);
    EXPECT_NE(message({{0}, {1, 0}, {2, 1, 0}, {3, 2, 1, -1}}).find("rows[3].dihedralPartner = -1 is outside"),
              std::string::npos);
    EXPECT_NE(message({{0, 1}, {1, 0}}).find("rows[0].bondPartner = 1 must be -1"), std::string::npos);
    EXPECT_NE(message({{0}, {1, 0}, {2, 1, 0, 0}}).find("rows[2].dihedralPartner = 0 must be -1"), std::string::npos);
    EXPECT_NE(message({{0}, {1, 0}, {2, 1, 0, -1, true}}).find("rows[2].circular"), std::string::npos);
}

TEST(ZMatrix, FromBondsRejectsBadGraphs) {
    auto message = [](int n, Bonds bonds, std::vector<double> masses = {}) {
        return errorMessage([&] { ZMatrix::fromBonds(n, bonds, masses); });
    };
    EXPECT_NE(message(0, {}).find("numAtoms = 0"), std::string::npos);
    EXPECT_NE(message(3, {{0, 1}, {1, 3}}).find("bonds[1] = (1, 3) has an atom outside"), std::string::npos);
    EXPECT_NE(message(3, {{0, 1}, {1, 1}}).find("bonds an atom to itself"), std::string::npos);
    EXPECT_NE(message(3, {{0, 1}, {1, 2}, {1, 0}}).find("bonds[2] = (1, 0) repeats"), std::string::npos);
    EXPECT_NE(message(4, {{0, 1}, {2, 3}}).find("not connected (atom 2"), std::string::npos);
    EXPECT_NE(message(3, {{0, 1}, {1, 2}}, {1, 2}).find("masses has 2 entries"), std::string::npos);
    EXPECT_NE(message(3, {{0, 1}, {1, 2}}, {1, -2, 1}).find("masses[1]"), std::string::npos);
}

TEST(ZMatrix, FromBondsEthane) {
    // C0-C1, H2..H4 on C0, H5..H7 on C1.
    Bonds bonds = {{0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 5}, {1, 6}, {1, 7}};
    ZMatrix z = ZMatrix::fromBonds(8, bonds, {12, 12, 1, 1, 1, 1, 1, 1});
    expectWellFormed(z, 8, bonds);
    EXPECT_EQ(z.getNumInternal(), 18);
    EXPECT_EQ(z.getReferenceAtoms(), (std::vector<int>{0, 1, 2}));
    // The one free torsion is the rotation about C-C; every other hydrogen is placed from a sibling.
    EXPECT_EQ(z.getNumCircular(), 1);
    EXPECT_EQ(circularBonds(z), (std::set<std::pair<int, int>>{{0, 1}}));
    std::map<int, int> firstOfGroup; // carbon -> first hydrogen placed on it
    for (int r = 0; r < 8; r++) {
        const ZMatrixRow& row = z.getRow(r);
        if (row.atom < 2)
            continue;
        if (!firstOfGroup.count(row.bondPartner)) {
            firstOfGroup[row.bondPartner] = row.atom;
            continue;
        }
        EXPECT_EQ(row.dihedralPartner, firstOfGroup[row.bondPartner]) << "H " << row.atom << " is not placed from its sibling";
        EXPECT_FALSE(row.circular);
    }
    EXPECT_EQ(firstOfGroup.size(), 2u);
}

TEST(ZMatrix, FromBondsAlanineDipeptide) {
    ZMatrix z = ZMatrix::fromBonds(22, alanineBonds, alanineMasses);
    expectWellFormed(z, 22, alanineBonds);
    EXPECT_EQ(z.getNumInternal(), 60);
    // The main chain from the lower-index end (ACE's CH3) comes first, then the CB branch.
    std::vector<int> heavy;
    for (int r = 0; r < 8; r++)
        heavy.push_back(z.getRow(r).atom);
    EXPECT_EQ(heavy, (std::vector<int>{1, 4, 6, 8, 14, 16, 18, 10}));
    // Seven rotatable bonds, one circular torsion each: omega, phi, psi, omega' and three methyl rotors.
    EXPECT_EQ(z.getNumCircular(), 7);
    EXPECT_EQ(circularBonds(z), (std::set<std::pair<int, int>>{{1, 4}, {4, 6}, {6, 8}, {8, 14}, {14, 16}, {16, 18},
                                                                {8, 10}}));
    // phi and psi are circular dihedrals of the backbone atoms themselves.
    const ZMatrixRow& c = z.getRow(z.getRowOfAtom(14));
    EXPECT_EQ(std::vector<int>({c.atom, c.bondPartner, c.anglePartner, c.dihedralPartner}),
              (std::vector<int>{14, 8, 6, 4}));
    EXPECT_TRUE(c.circular);
    const ZMatrixRow& n = z.getRow(z.getRowOfAtom(16));
    EXPECT_EQ(std::vector<int>({n.atom, n.bondPartner, n.anglePartner, n.dihedralPartner}),
              (std::vector<int>{16, 14, 8, 6}));
    EXPECT_TRUE(n.circular);
    // CB is placed by the improper CB-CA-N-C, whose sign is the handedness: dependent.
    const ZMatrixRow& cb = z.getRow(z.getRowOfAtom(10));
    EXPECT_EQ(std::vector<int>({cb.bondPartner, cb.anglePartner, cb.dihedralPartner}), (std::vector<int>{8, 6, 14}));
    EXPECT_FALSE(cb.circular);
    // Methyl hydrogens after the first are placed from the first; the first is circular.
    for (int carbon : {1, 10, 18}) {
        std::vector<int> group;
        for (const ZMatrixRow& row : z.getRows())
            if (row.bondPartner == carbon && alanineMasses[row.atom] < 2)
                group.push_back(row.atom);
        ASSERT_EQ(group.size(), 3u) << "carbon " << carbon;
        EXPECT_TRUE(z.getRow(z.getRowOfAtom(group[0])).circular);
        for (int k = 1; k < 3; k++) {
            EXPECT_EQ(z.getRow(z.getRowOfAtom(group[k])).dihedralPartner, group[0]);
            EXPECT_FALSE(z.getRow(z.getRowOfAtom(group[k])).circular);
        }
    }
    // Without masses the graph alone decides, with the same torsions.
    EXPECT_EQ(circularBonds(ZMatrix::fromBonds(22, alanineBonds)), circularBonds(z));
}

TEST(ZMatrix, FromBondsRingTorsionsAreDependent) {
    // Toluene: ring C0..C5, methyl C6 on C0, ring H7..H11 on C1..C5, methyl H12..H14.
    Bonds bonds = {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 0}, {0, 6}, {1, 7},
                   {2, 8}, {3, 9}, {4, 10}, {5, 11}, {6, 12}, {6, 13}, {6, 14}};
    ZMatrix z = ZMatrix::fromBonds(15, bonds);
    expectWellFormed(z, 15, bonds);
    EXPECT_EQ(z.getNumInternal(), 39);
    EXPECT_EQ(z.getNumCircular(), 1);
    EXPECT_EQ(circularBonds(z), (std::set<std::pair<int, int>>{{0, 6}}));
}

TEST(ZMatrix, FromBondsTinyMolecules) {
    EXPECT_EQ(ZMatrix::fromBonds(1, {}).getNumInternal(), 0);
    ZMatrix diatomic = ZMatrix::fromBonds(2, {{0, 1}}, {1.0, 16.0});
    EXPECT_EQ(diatomic.getReferenceAtoms(), (std::vector<int>{1, 0})); // the heavier atom is the origin
    EXPECT_EQ(diatomic.getNumInternal(), 1);
    ZMatrix water = ZMatrix::fromBonds(3, {{0, 1}, {0, 2}});
    EXPECT_EQ(water.getReferenceAtoms(), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(water.getRow(2).bondPartner, 0);
    EXPECT_EQ(water.getRow(2).anglePartner, 1);
    // Methane: no torsion is free.
    Bonds methane = {{0, 1}, {0, 2}, {0, 3}, {0, 4}};
    ZMatrix z = ZMatrix::fromBonds(5, methane);
    expectWellFormed(z, 5, methane);
    EXPECT_EQ(z.getNumCircular(), 0);
}

/**
 * The published Z-matrix. FAB's z_matrix (fab/target_distributions/aldp.py, transform "internal") and
 * ind_circ_dih (experiments/make_flow/make_aldp_model.py) are copied here as data; boltzgen's topological_sort
 * (boltzgen/internal.py) is re-implemented to recover the order in which ind_circ_dih counts, so this
 * test checks our rows, their order and the circular flags against the source independently of the
 * table in ZMatrix.cpp.
 */
TEST(ZMatrix, AlanineDipeptideMatchesFab) {
    const std::vector<std::pair<int, std::vector<int>>> fabZMatrix = {
        {0, {1, 4, 6}},    {1, {4, 6, 8}},    {2, {1, 4, 0}},    {3, {1, 4, 0}},     {4, {6, 8, 14}},
        {5, {4, 6, 8}},    {7, {6, 8, 4}},    {9, {8, 6, 4}},    {10, {8, 6, 4}},    {11, {10, 8, 6}},
        {12, {10, 8, 11}}, {13, {10, 8, 11}}, {15, {14, 8, 16}}, {16, {14, 8, 6}},   {17, {16, 14, 15}},
        {18, {16, 14, 8}}, {19, {18, 16, 14}}, {20, {18, 16, 19}}, {21, {18, 16, 19}}};
    const std::vector<int> fabCartIndices = {8, 6, 14};
    const std::vector<int> fabCircular = {0, 1, 2, 3, 4, 5, 8, 9, 10, 13, 15, 16};

    // boltzgen's topological_sort: repeated passes over the remaining rows (in insertion order),
    // removing at once every row none of whose partners is still unsorted.
    std::vector<std::pair<int, std::vector<int>>> unsorted = fabZMatrix, sorted;
    while (!unsorted.empty()) {
        bool progress = false;
        for (size_t k = 0; k < unsorted.size();) {
            bool ready = true;
            for (int partner : unsorted[k].second)
                for (const auto& other : unsorted)
                    if (other.first == partner)
                        ready = false;
            if (ready) {
                sorted.push_back(unsorted[k]);
                unsorted.erase(unsorted.begin() + k);
                progress = true;
            } else {
                k++;
            }
        }
        ASSERT_TRUE(progress);
    }

    ZMatrix z = ZMatrix::alanineDipeptide();
    EXPECT_EQ(z.getNumAtoms(), 22);
    EXPECT_EQ(z.getNumInternal(), 60);
    EXPECT_EQ(z.getReferenceAtoms(), fabCartIndices);
    // boltzgen's reference frame: b1 = |N-CA|, b2 = |C-CA|, angle N-CA-C.
    EXPECT_EQ(z.getColumnAtoms(0), (std::vector<int>{6, 8}));
    EXPECT_EQ(z.getColumnAtoms(1), (std::vector<int>{14, 8}));
    EXPECT_EQ(z.getColumnAtoms(2), (std::vector<int>{14, 8, 6}));
    ASSERT_EQ(sorted.size(), 19u);
    for (int k = 0; k < 19; k++) {
        const ZMatrixRow& row = z.getRow(3 + k);
        EXPECT_EQ(row.atom, sorted[k].first) << "row " << 3 + k;
        EXPECT_EQ(std::vector<int>({row.bondPartner, row.anglePartner, row.dihedralPartner}), sorted[k].second)
            << "row " << 3 + k;
        bool circular = std::find(fabCircular.begin(), fabCircular.end(), k) != fabCircular.end();
        EXPECT_EQ(row.circular, circular) << "row " << 3 + k << " (atom " << row.atom << ")";
    }
    EXPECT_EQ(z.getNumCircular(), 12);
    std::set<int> circularAtoms;
    for (int c : z.getCircularColumns())
        circularAtoms.insert(z.getColumnAtoms(c)[0]);
    EXPECT_EQ(circularAtoms, (std::set<int>{0, 1, 4, 5, 7, 9, 10, 11, 16, 17, 18, 19}));
    // Every partner relation of the published Z-matrix follows a bond (or, for dihedrals, a bond
    // of the angle partner or, for the impropers/sibling rows, of the bond partner).
    auto set = bondSet(alanineBonds);
    for (int r = 1; r < 22; r++) {
        const ZMatrixRow& row = z.getRow(r);
        EXPECT_TRUE(bonded(set, row.atom, row.bondPartner)) << "row " << r;
        if (r >= 2) {
            EXPECT_TRUE(bonded(set, row.bondPartner, row.anglePartner)) << "row " << r;
        }
    }
}
