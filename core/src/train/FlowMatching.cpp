#include "cgflow/train/FlowMatching.h"

#include "cgflow/Error.h"
#include "cgflow/flows/RQSpline.h"

#include <cmath>
#include <limits>
#include <string>

namespace cgflow::train {

using flows::RQSpline;

void flowMatchingTargets(const Eigen::MatrixXd& x0, const Eigen::MatrixXd& x1, const Eigen::VectorXd& t,
                         const std::vector<bool>& circular, Eigen::MatrixXd& xt, Eigen::MatrixXd& u) {
    if (x0.rows() != x1.rows() || x0.cols() != x1.cols() || t.size() != x1.cols() ||
        static_cast<Eigen::Index>(circular.size()) != x1.rows())
        throw Error("flowMatchingTargets: x0 and x1 must have the same shape (dimension x n), t n entries and "
                    "circular one flag per dimension");
    const Eigen::Index d = x1.rows(), n = x1.cols();
    xt.resize(d, n);
    u.resize(d, n);
    for (Eigen::Index i = 0; i < n; i++)
        for (Eigen::Index j = 0; j < d; j++) {
            if (circular[j]) {
                const double delta = RQSpline::wrapAngle(x1(j, i) - x0(j, i));
                u(j, i) = delta;
                xt(j, i) = RQSpline::wrapAngle(x0(j, i) + t[i] * delta);
            } else {
                u(j, i) = x1(j, i) - x0(j, i);
                xt(j, i) = (1.0 - t[i]) * x0(j, i) + t[i] * x1(j, i);
            }
        }
}

Eigen::MatrixXd pairwiseSquaredDistances(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b,
                                         const std::vector<bool>& circular) {
    if (a.rows() != b.rows() || static_cast<Eigen::Index>(circular.size()) != a.rows())
        throw Error("pairwiseSquaredDistances: a and b must have the same number of rows, one circular flag each");
    Eigen::MatrixXd cost(a.cols(), b.cols());
    for (Eigen::Index i = 0; i < a.cols(); i++)
        for (Eigen::Index k = 0; k < b.cols(); k++) {
            double sum = 0;
            for (Eigen::Index j = 0; j < a.rows(); j++) {
                const double difference =
                    circular[j] ? RQSpline::wrapAngle(b(j, k) - a(j, i)) : b(j, k) - a(j, i);
                sum += difference * difference;
            }
            cost(i, k) = sum;
        }
    return cost;
}

std::vector<int> minimumCostAssignment(const Eigen::MatrixXd& cost) {
    const int n = static_cast<int>(cost.rows());
    if (cost.cols() != n)
        throw Error("minimumCostAssignment: the cost matrix must be square, got " + std::to_string(cost.rows()) +
                    " x " + std::to_string(cost.cols()));
    if (!cost.allFinite())
        throw Error("minimumCostAssignment: the cost matrix has non-finite entries");
    // Rows and columns 1-based, 0 a virtual column; u, v the dual potentials, match[j] the row of
    // column j, way[j] the previous column on the shortest augmenting path.
    const double infinity = std::numeric_limits<double>::infinity();
    std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0), minimum(n + 1);
    std::vector<int> match(n + 1, 0), way(n + 1, 0);
    std::vector<char> used(n + 1);
    for (int row = 1; row <= n; row++) {
        match[0] = row;
        int column = 0;
        std::fill(minimum.begin(), minimum.end(), infinity);
        std::fill(used.begin(), used.end(), 0);
        do {
            used[column] = 1;
            const int i0 = match[column];
            double delta = infinity;
            int next = 0;
            for (int j = 1; j <= n; j++) {
                if (used[j])
                    continue;
                const double reduced = cost(i0 - 1, j - 1) - u[i0] - v[j];
                if (reduced < minimum[j]) {
                    minimum[j] = reduced;
                    way[j] = column;
                }
                if (minimum[j] < delta) {
                    delta = minimum[j];
                    next = j;
                }
            }
            for (int j = 0; j <= n; j++) {
                if (used[j]) {
                    u[match[j]] += delta;
                    v[j] -= delta;
                } else {
                    minimum[j] -= delta;
                }
            }
            column = next;
        } while (match[column] != 0);
        do {
            const int previous = way[column];
            match[column] = match[previous];
            column = previous;
        } while (column != 0);
    }
    std::vector<int> result(n);
    for (int j = 1; j <= n; j++)
        result[match[j] - 1] = j - 1;
    return result;
}

} // namespace cgflow::train
