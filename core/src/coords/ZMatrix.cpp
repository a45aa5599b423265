#include "cgflow/coords/ZMatrix.h"

#include "cgflow/Error.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <initializer_list>
#include <set>

namespace cgflow::coords {

namespace {

std::string rowName(int row) {
    return "rows[" + std::to_string(row) + "]";
}

/** Edges that lie on no cycle (Tarjan's low-link), as (min, max) pairs. Iterative: deep chains are fine. */
std::set<std::pair<int, int>> findBridges(const std::vector<std::vector<int>>& neighbours) {
    int n = static_cast<int>(neighbours.size());
    std::vector<int> discovery(n, -1), low(n, 0), parent(n, -1);
    std::vector<size_t> nextEdge(n, 0);
    std::set<std::pair<int, int>> bridges;
    int time = 0;
    for (int root = 0; root < n; root++) {
        if (discovery[root] >= 0)
            continue;
        std::vector<int> stack{root};
        discovery[root] = low[root] = time++;
        while (!stack.empty()) {
            int v = stack.back();
            if (nextEdge[v] < neighbours[v].size()) {
                int w = neighbours[v][nextEdge[v]++];
                if (discovery[w] < 0) {
                    parent[w] = v;
                    discovery[w] = low[w] = time++;
                    stack.push_back(w);
                } else if (w != parent[v]) {
                    low[v] = std::min(low[v], discovery[w]);
                }
            } else {
                stack.pop_back();
                int p = parent[v];
                if (p >= 0) {
                    low[p] = std::min(low[p], low[v]);
                    if (low[v] > discovery[p])
                        bridges.insert({std::min(p, v), std::max(p, v)});
                }
            }
        }
    }
    return bridges;
}

/** BFS distances from start inside the atoms where member is true (-1 = unreachable). */
std::vector<int> bfsDistances(const std::vector<std::vector<int>>& neighbours, const std::vector<bool>& member,
                              int start) {
    std::vector<int> distance(neighbours.size(), -1);
    std::deque<int> queue{start};
    distance[start] = 0;
    while (!queue.empty()) {
        int v = queue.front();
        queue.pop_front();
        for (int w : neighbours[v])
            if (member[w] && distance[w] < 0) {
                distance[w] = distance[v] + 1;
                queue.push_back(w);
            }
    }
    return distance;
}

int farthest(const std::vector<int>& distance) {
    int best = -1;
    for (int i = 0; i < static_cast<int>(distance.size()); i++)
        if (distance[i] >= 0 && (best < 0 || distance[i] > distance[best]))
            best = i;
    return best;
}

} // namespace

ZMatrix::ZMatrix(std::vector<ZMatrixRow> rowsIn) : rows(std::move(rowsIn)) {
    if (rows.empty())
        throw Error("ZMatrix: rows is empty; a Z-matrix places at least one atom (one row per atom)");
    int n = static_cast<int>(rows.size());
    rowOfAtom.assign(n, -1);
    for (int r = 0; r < n; r++) {
        const ZMatrixRow& row = rows[r];
        if (row.atom < 0 || row.atom >= n)
            throw Error("ZMatrix: " + rowName(r) + ".atom = " + std::to_string(row.atom) + " is outside [0, " +
                        std::to_string(n) + ") (one row per atom)");
        if (rowOfAtom[row.atom] >= 0)
            throw Error("ZMatrix: atom " + std::to_string(row.atom) + " is placed twice, by " +
                        rowName(rowOfAtom[row.atom]) + " and " + rowName(r));
        rowOfAtom[row.atom] = r;
    }
    for (int r = 0; r < n; r++) {
        const ZMatrixRow& row = rows[r];
        const int partners[3] = {row.bondPartner, row.anglePartner, row.dihedralPartner};
        const char* names[3] = {"bondPartner", "anglePartner", "dihedralPartner"};
        int needed = std::min(r, 3);
        for (int k = 0; k < 3; k++) {
            std::string field = "ZMatrix: " + rowName(r) + "." + names[k];
            int p = partners[k];
            if (k >= needed) {
                if (p != -1)
                    throw Error(field + " = " + std::to_string(p) + " must be -1: row " + std::to_string(r) +
                                " has " + std::to_string(needed) + " partner(s) (rows 0, 1, 2 are the reference atoms)");
                continue;
            }
            if (p < 0 || p >= n)
                throw Error(field + " = " + std::to_string(p) + " is outside [0, " + std::to_string(n) + ")");
            if (rowOfAtom[p] >= r)
                throw Error(field + " = " + std::to_string(p) + " is not placed before atom " + std::to_string(row.atom) +
                            " (it is placed by " + rowName(rowOfAtom[p]) + ")");
            for (int j = 0; j < k; j++)
                if (partners[j] == p)
                    throw Error(field + " = " + std::to_string(p) + " repeats " + names[j]);
        }
        if (row.circular && r < 3)
            throw Error("ZMatrix: " + rowName(r) + ".circular is set but reference rows 0-2 have no dihedral");
    }
}

int ZMatrix::getNumInternal() const {
    int n = getNumAtoms();
    return n >= 3 ? 3 * n - 6 : std::max(n - 1, 0);
}

const ZMatrixRow& ZMatrix::getRow(int row) const {
    if (row < 0 || row >= getNumAtoms())
        throw Error("ZMatrix::getRow: row " + std::to_string(row) + " is outside [0, " + std::to_string(getNumAtoms()) + ")");
    return rows[row];
}

int ZMatrix::getRowOfAtom(int atom) const {
    if (atom < 0 || atom >= getNumAtoms())
        throw Error("ZMatrix::getRowOfAtom: atom " + std::to_string(atom) + " is outside [0, " +
                    std::to_string(getNumAtoms()) + ")");
    return rowOfAtom[atom];
}

std::vector<int> ZMatrix::getReferenceAtoms() const {
    std::vector<int> atoms;
    for (int r = 0; r < std::min(3, getNumAtoms()); r++)
        atoms.push_back(rows[r].atom);
    return atoms;
}

int ZMatrix::getBondColumn(int row) const {
    getRow(row);
    return row == 0 ? -1 : row == 1 ? 0 : row == 2 ? 1 : 3 * row - 6;
}

int ZMatrix::getAngleColumn(int row) const {
    getRow(row);
    return row < 2 ? -1 : row == 2 ? 2 : 3 * row - 5;
}

int ZMatrix::getDihedralColumn(int row) const {
    getRow(row);
    return row < 3 ? -1 : 3 * row - 4;
}

void ZMatrix::checkColumn(int column) const {
    if (column < 0 || column >= getNumInternal())
        throw Error("ZMatrix: column " + std::to_string(column) + " is outside [0, " + std::to_string(getNumInternal()) +
                    ")");
}

InternalCoordinateType ZMatrix::getColumnType(int column) const {
    checkColumn(column);
    if (column < 3)
        return column == 2 ? InternalCoordinateType::Angle : InternalCoordinateType::Bond;
    return static_cast<InternalCoordinateType>(column % 3);
}

int ZMatrix::getColumnRow(int column) const {
    checkColumn(column);
    return column == 0 ? 1 : column < 3 ? 2 : column / 3 + 2;
}

bool ZMatrix::isCircularColumn(int column) const {
    return getColumnType(column) == InternalCoordinateType::Dihedral && rows[getColumnRow(column)].circular;
}

std::vector<int> ZMatrix::getColumnAtoms(int column) const {
    const ZMatrixRow& row = rows[getColumnRow(column)];
    switch (getColumnType(column)) {
    case InternalCoordinateType::Bond: return {row.atom, row.bondPartner};
    case InternalCoordinateType::Angle: return {row.atom, row.bondPartner, row.anglePartner};
    case InternalCoordinateType::Dihedral: break;
    }
    return {row.atom, row.bondPartner, row.anglePartner, row.dihedralPartner};
}

std::string ZMatrix::describeColumn(int column) const {
    static const char* typeNames[3] = {"bond", "angle", "dihedral"};
    std::string text = typeNames[static_cast<int>(getColumnType(column))];
    std::vector<int> atoms = getColumnAtoms(column);
    for (size_t i = 0; i < atoms.size(); i++)
        text += (i == 0 ? "(" : ",") + std::to_string(atoms[i]);
    text += ")";
    if (getColumnType(column) == InternalCoordinateType::Dihedral)
        text += isCircularColumn(column) ? " circular" : " dependent";
    return text;
}

std::vector<int> ZMatrix::getCircularColumns() const {
    std::vector<int> columns;
    for (int r = 3; r < getNumAtoms(); r++)
        if (rows[r].circular)
            columns.push_back(getDihedralColumn(r));
    return columns;
}

int ZMatrix::getNumCircular() const {
    return static_cast<int>(getCircularColumns().size());
}

ZMatrix ZMatrix::fromBonds(int numAtoms, const std::vector<std::pair<int, int>>& bonds,
                           const std::vector<double>& masses) {
    if (numAtoms < 1)
        throw Error("ZMatrix::fromBonds: numAtoms = " + std::to_string(numAtoms) + " must be at least 1");
    if (!masses.empty() && static_cast<int>(masses.size()) != numAtoms)
        throw Error("ZMatrix::fromBonds: masses has " + std::to_string(masses.size()) +
                    " entries; expected none or numAtoms = " + std::to_string(numAtoms));
    for (size_t i = 0; i < masses.size(); i++)
        if (!std::isfinite(masses[i]) || masses[i] < 0)
            throw Error("ZMatrix::fromBonds: masses[" + std::to_string(i) + "] = " + std::to_string(masses[i]) +
                        " must be finite and non-negative");
    std::vector<std::vector<int>> neighbours(numAtoms);
    std::set<std::pair<int, int>> seen;
    for (size_t b = 0; b < bonds.size(); b++) {
        auto [i, j] = bonds[b];
        std::string name = "ZMatrix::fromBonds: bonds[" + std::to_string(b) + "] = (" + std::to_string(i) + ", " +
                           std::to_string(j) + ")";
        if (i < 0 || i >= numAtoms || j < 0 || j >= numAtoms)
            throw Error(name + " has an atom outside [0, " + std::to_string(numAtoms) + ")");
        if (i == j)
            throw Error(name + " bonds an atom to itself");
        if (!seen.insert({std::min(i, j), std::max(i, j)}).second)
            throw Error(name + " repeats an earlier bond");
        neighbours[i].push_back(j);
        neighbours[j].push_back(i);
    }
    for (auto& list : neighbours)
        std::sort(list.begin(), list.end());
    auto massOf = [&](int atom) { return masses.empty() ? 0.0 : masses[atom]; };
    // Heavier first, then lower index: the one tie-break used everywhere, so the result is deterministic.
    auto heavierFirst = [&](int a, int b) { return massOf(a) != massOf(b) ? massOf(a) > massOf(b) : a < b; };

    std::vector<bool> all(numAtoms, true);
    std::vector<int> reach = bfsDistances(neighbours, all, 0);
    for (int a = 0; a < numAtoms; a++)
        if (reach[a] < 0)
            throw Error("ZMatrix::fromBonds: the bond graph is not connected (atom " + std::to_string(a) +
                        " cannot be reached from atom 0); build one Z-matrix per molecule");

    std::vector<bool> backbone(numAtoms);
    int numBackbone = 0;
    for (int a = 0; a < numAtoms; a++)
        if (neighbours[a].size() >= 2) {
            backbone[a] = true;
            numBackbone++;
        }
    if (numBackbone == 0) {
        // One or two atoms: the heavier one plays the backbone.
        int root = 0;
        for (int a = 1; a < numAtoms; a++)
            if (heavierFirst(a, root))
                root = a;
        backbone[root] = true;
    }

    // The two ends of a longest backbone path (exact for trees, a good long path with rings).
    int firstBackbone = static_cast<int>(std::find(backbone.begin(), backbone.end(), true) - backbone.begin());
    int endA = farthest(bfsDistances(neighbours, backbone, firstBackbone));
    int endB = farthest(bfsDistances(neighbours, backbone, endA));
    int start = std::min(endA, endB);

    // BFS tree from the start; subtree heights let the walk follow the deepest branch first.
    std::vector<int> treeParent(numAtoms, -1), bfsOrder{start};
    std::vector<bool> inTree(numAtoms, false);
    inTree[start] = true;
    for (size_t k = 0; k < bfsOrder.size(); k++)
        for (int w : neighbours[bfsOrder[k]])
            if (backbone[w] && !inTree[w]) {
                inTree[w] = true;
                treeParent[w] = bfsOrder[k];
                bfsOrder.push_back(w);
            }
    std::vector<int> height(numAtoms, 0);
    std::vector<std::vector<int>> children(numAtoms);
    for (auto it = bfsOrder.rbegin(); it != bfsOrder.rend(); ++it)
        if (treeParent[*it] >= 0) {
            height[treeParent[*it]] = std::max(height[treeParent[*it]], height[*it] + 1);
            children[treeParent[*it]].push_back(*it);
        }
    std::vector<int> order;
    std::vector<int> stack{start};
    while (!stack.empty()) {
        int v = stack.back();
        stack.pop_back();
        order.push_back(v);
        std::vector<int> next = children[v];
        std::sort(next.begin(), next.end(), [&](int a, int b) {
            return height[a] != height[b] ? height[a] > height[b] : heavierFirst(a, b);
        });
        for (auto it = next.rbegin(); it != next.rend(); ++it)
            stack.push_back(*it);
    }
    size_t backboneCount = order.size();
    for (size_t k = 0; k < backboneCount; k++) {
        std::vector<int> terminals;
        for (int w : neighbours[order[k]])
            if (!backbone[w])
                terminals.push_back(w);
        std::sort(terminals.begin(), terminals.end(), heavierFirst);
        for (int t : terminals) {
            treeParent[t] = order[k];
            order.push_back(t);
        }
    }

    std::set<std::pair<int, int>> bridges = findBridges(neighbours);
    std::vector<int> placedAt(numAtoms, -1);
    // The placed neighbours of an atom, earliest placed first, leaving out the listed atoms.
    auto placedNeighbours = [&](int atom, std::initializer_list<int> exclude) {
        std::vector<int> result;
        for (int w : neighbours[atom])
            if (placedAt[w] >= 0 && std::find(exclude.begin(), exclude.end(), w) == exclude.end())
                result.push_back(w);
        std::sort(result.begin(), result.end(), [&](int a, int b) { return placedAt[a] < placedAt[b]; });
        return result;
    };

    std::vector<ZMatrixRow> rows;
    for (int k = 0; k < numAtoms; k++) {
        ZMatrixRow row;
        row.atom = order[k];
        if (k >= 1) {
            int p = treeParent[row.atom];
            row.bondPartner = p;
            int q = treeParent[p];
            if (q < 0)
                q = k >= 2 ? placedNeighbours(p, {})[0] : -1;
            if (k == 2)
                q = (p == order[0] ? order[1] : order[0]);
            row.anglePartner = q;
            if (k >= 3) {
                std::vector<int> siblings = placedNeighbours(p, {q});
                if (!siblings.empty()) {
                    int r = siblings[0];
                    if (!backbone[row.atom])
                        for (int s : siblings)
                            if (!backbone[s]) {
                                r = s;
                                break;
                            }
                    row.dihedralPartner = r;
                } else {
                    std::vector<int> beyond = placedNeighbours(q, {p});
                    if (!beyond.empty()) {
                        row.dihedralPartner = beyond[0];
                        row.circular = bridges.count({std::min(p, q), std::max(p, q)}) > 0;
                    } else {
                        // Unreachable for a connected graph, kept so odd inputs still give a valid Z-matrix.
                        for (int j = 0; j < k; j++)
                            if (order[j] != p && order[j] != q) {
                                row.dihedralPartner = order[j];
                                break;
                            }
                    }
                }
            }
        }
        placedAt[row.atom] = k;
        rows.push_back(row);
    }
    return ZMatrix(std::move(rows));
}

/*
 * Source: the "internal" transform of FAB (Midgley et al., ICLR 2023; github.com/lollcat/fab-torch,
 * fab/target_distributions/aldp.py), also used by Schopmans & Friederich. Its z_matrix lists
 * (atom, [bond, angle, dihedral]) rows, the reference (Cartesian) atoms are cart_indices = [8, 6, 14]
 * (CA, N, C), and the circular dihedrals are ind_circ_dih = [0, 1, 2, 3, 4, 5, 8, 9, 10, 13, 15, 16]
 * (experiments/make_flow/make_aldp_model.py). boltzgen (github.com/VincentStimper/boltzmann-generators,
 * boltzgen/internal.py) indexes ind_circ_dih in the order produced by its topological_sort of the
 * z_matrix, which is the row order below; so the k-th non-reference row here is circular exactly when
 * k is in FAB's list. Circular (12): the torsions that place C(ACE) [phi: 4-6-8-14], O(ACE), H(N),
 * HA, CB, HB1, N(NME) [psi: 16-14-8-6], C(NME) [omega'], H1(NME), CH3(ACE) [omega], H(NME), HH31.
 * Dependent (7): HB2, HB3, H2, H3, HH32, HH33 (sibling dihedrals) and O(ALA) (improper).
 *
 * Differences from FAB, none of which changes the coordinates a flow sees beyond a relabelling:
 *  - columns: FAB's 60-vector is [|N-CA|, |C-CA|, angle N-CA-C] followed by (bond, angle, dihedral)
 *    per atom in its z_matrix listing order (atoms 0,1,2,3,4,5,7,9,10,...,21); ours has the same three
 *    reference values in columns 0-2 and then the triples in the placement order below;
 *  - sign: boltzgen's dihedral is the negative of the IUPAC/OpenMM one used here;
 *  - the reference frame is the same (CA at the origin, N on +x, C in the xy-plane with y > 0);
 *    the log-det convention is InternalCoordinates::JacobianConvention (Frame reproduces boltzgen).
 * FAB's filter_chirality compares its columns 17 (phi, from atom 4) and 26 (atom 9, HA).
 */
ZMatrix ZMatrix::alanineDipeptide() {
    return ZMatrix({
        {8, -1, -1, -1, false},  // CA: origin
        {6, 8, -1, -1, false},   // N: on +x
        {14, 8, 6, -1, false},   // C: in the xy-plane
        {4, 6, 8, 14, true},     // C (ACE), phi
        {5, 4, 6, 8, true},      // O (ACE)
        {7, 6, 8, 4, true},      // H (ALA N)
        {9, 8, 6, 4, true},      // HA
        {10, 8, 6, 4, true},     // CB
        {11, 10, 8, 6, true},    // HB1
        {12, 10, 8, 11, false},  // HB2
        {13, 10, 8, 11, false},  // HB3
        {16, 14, 8, 6, true},    // N (NME), psi
        {18, 16, 14, 8, true},   // C (NME)
        {19, 18, 16, 14, true},  // H1 (NME)
        {20, 18, 16, 19, false}, // H2 (NME)
        {21, 18, 16, 19, false}, // H3 (NME)
        {1, 4, 6, 8, true},      // CH3 (ACE), omega
        {15, 14, 8, 16, false},  // O (ALA)
        {17, 16, 14, 15, true},  // H (NME N)
        {0, 1, 4, 6, true},      // HH31
        {2, 1, 4, 0, false},     // HH32
        {3, 1, 4, 0, false},     // HH33
    });
}

} // namespace cgflow::coords
