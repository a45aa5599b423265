#include "cgflow/stats/Structure.h"

#include "cgflow/Error.h"

#include <Eigen/Dense>

#include <cmath>
#include <string>

namespace cgflow::stats {

namespace {

using Cloud = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 3, Eigen::RowMajor>>;

int batchSize(int numAtoms, const std::vector<double>& positions, const char* function, const char* name) {
    if (numAtoms < 1)
        throw Error(std::string(function) + ": numAtoms must be >= 1, got " + std::to_string(numAtoms));
    if (positions.size() % (3 * static_cast<size_t>(numAtoms)) != 0)
        throw Error(std::string(function) + ": " + name + " has " + std::to_string(positions.size()) +
                    " values, not a multiple of 3 * numAtoms = " + std::to_string(3 * numAtoms));
    return static_cast<int>(positions.size() / (3 * static_cast<size_t>(numAtoms)));
}

double meanPairRmsd(int numAtoms, const std::vector<double>& a, int na, const std::vector<double>& b, int nb, bool same) {
    double sum = 0;
    long count = 0;
    for (int i = 0; i < na; i++)
        for (int j = same ? i + 1 : 0; j < nb; j++) {
            sum += rmsdPair(numAtoms, &a[3 * numAtoms * static_cast<size_t>(i)], &b[3 * numAtoms * static_cast<size_t>(j)]);
            count++;
        }
    return sum / count;
}

} // namespace

std::vector<double> radiusOfGyration(int numAtoms, const std::vector<double>& positions, const std::vector<double>& masses) {
    const int n = batchSize(numAtoms, positions, "radiusOfGyration", "positions");
    if (!masses.empty() && masses.size() != static_cast<size_t>(numAtoms))
        throw Error("radiusOfGyration: masses has " + std::to_string(masses.size()) + " values, expected numAtoms = " +
                    std::to_string(numAtoms) + " (or none)");
    for (size_t i = 0; i < masses.size(); i++)
        if (!(masses[i] > 0) || !std::isfinite(masses[i]))
            throw Error("radiusOfGyration: masses[" + std::to_string(i) + "] must be finite and > 0");
    Eigen::VectorXd m = Eigen::VectorXd::Ones(numAtoms);
    if (!masses.empty())
        m = Eigen::Map<const Eigen::VectorXd>(masses.data(), numAtoms);
    std::vector<double> rg(n);
    for (int s = 0; s < n; s++) {
        Cloud x(&positions[3 * numAtoms * static_cast<size_t>(s)], numAtoms, 3);
        const Eigen::RowVector3d com = (m.transpose() * x) / m.sum();
        rg[s] = std::sqrt((m.array() * (x.rowwise() - com).rowwise().squaredNorm().array()).sum() / m.sum());
    }
    return rg;
}

double rmsdPair(int numAtoms, const double* a, const double* b) {
    Cloud x(a, numAtoms, 3), y(b, numAtoms, 3);
    const Eigen::MatrixX3d p = x.rowwise() - x.colwise().mean();
    const Eigen::MatrixX3d q = y.rowwise() - y.colwise().mean();
    const Eigen::Matrix3d h = p.transpose() * q;
    Eigen::JacobiSVD<Eigen::Matrix3d> svd(h, Eigen::ComputeFullU | Eigen::ComputeFullV);
    // A proper rotation only: flip the weakest axis when the best orthogonal map is a reflection.
    const double d = (svd.matrixV() * svd.matrixU().transpose()).determinant() < 0 ? -1.0 : 1.0;
    const Eigen::Matrix3d rotation = svd.matrixV() * Eigen::Vector3d(1, 1, d).asDiagonal() * svd.matrixU().transpose();
    const Eigen::MatrixX3d aligned = p * rotation.transpose();
    return std::sqrt((aligned - q).rowwise().squaredNorm().mean());
}

std::vector<double> rmsd(int numAtoms, const std::vector<double>& positions, const std::vector<double>& reference) {
    const int n = batchSize(numAtoms, positions, "rmsd", "positions");
    if (reference.size() != 3 * static_cast<size_t>(numAtoms))
        throw Error("rmsd: reference has " + std::to_string(reference.size()) + " values, expected 3 * numAtoms = " +
                    std::to_string(3 * numAtoms));
    std::vector<double> out(n);
    for (int s = 0; s < n; s++)
        out[s] = rmsdPair(numAtoms, &positions[3 * numAtoms * static_cast<size_t>(s)], reference.data());
    return out;
}

double bondScore(int numAtoms, const std::vector<double>& positions, const std::vector<std::array<int, 2>>& bonds,
                 const std::vector<double>& referenceLengths, double tolerance) {
    const int n = batchSize(numAtoms, positions, "bondScore", "positions");
    if (bonds.empty())
        throw Error("bondScore: bonds is empty");
    if (referenceLengths.size() != bonds.size())
        throw Error("bondScore: referenceLengths has " + std::to_string(referenceLengths.size()) + " values but there are " +
                    std::to_string(bonds.size()) + " bonds");
    if (!(tolerance > 0) || !std::isfinite(tolerance))
        throw Error("bondScore: tolerance must be finite and > 0, got " + std::to_string(tolerance));
    for (size_t k = 0; k < bonds.size(); k++) {
        for (int a : bonds[k])
            if (a < 0 || a >= numAtoms)
                throw Error("bondScore: bonds[" + std::to_string(k) + "] has atom " + std::to_string(a) + " out of range");
        if (!(referenceLengths[k] > 0))
            throw Error("bondScore: referenceLengths[" + std::to_string(k) + "] must be > 0");
    }
    if (n == 0)
        throw Error("bondScore: positions holds no samples");
    long within = 0;
    for (int s = 0; s < n; s++) {
        Cloud x(&positions[3 * numAtoms * static_cast<size_t>(s)], numAtoms, 3);
        for (size_t k = 0; k < bonds.size(); k++) {
            const double length = (x.row(bonds[k][0]) - x.row(bonds[k][1])).norm();
            within += std::fabs(length - referenceLengths[k]) <= tolerance * referenceLengths[k];
        }
    }
    return static_cast<double>(within) / (static_cast<double>(n) * bonds.size());
}

double diversityScore(int numAtoms, const std::vector<double>& generated, const std::vector<double>& reference) {
    const int ng = batchSize(numAtoms, generated, "diversityScore", "generated");
    const int nr = batchSize(numAtoms, reference, "diversityScore", "reference");
    if (ng < 2)
        throw Error("diversityScore: generated needs >= 2 samples (pairs among them), got " + std::to_string(ng));
    if (nr < 1)
        throw Error("diversityScore: reference holds no samples");
    const double genGen = meanPairRmsd(numAtoms, generated, ng, generated, ng, true);
    const double cross = meanPairRmsd(numAtoms, generated, ng, reference, nr, false);
    if (cross == 0)
        throw Error("diversityScore: every generated sample equals every reference sample (mean RMSD to the reference is 0)");
    return 1.0 - genGen / cross;
}

} // namespace cgflow::stats
