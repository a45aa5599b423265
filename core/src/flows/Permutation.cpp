#include "cgflow/flows/Permutation.h"

#include "cgflow/Error.h"
#include "cgflow/io/JsonFields.h"
#include "cgflow/flows/RQSpline.h"

#include <cmath>
#include <random>
#include <sstream>

namespace cgflow::flows {

namespace {

/** What a fixed map keeps for backward(): only the batch size, to check the call. */
struct FixedMapWorkspace : BijectionWorkspace {
    Eigen::Index savedBatch = -1;
    Direction direction = Direction::Forward;
};

FixedMapWorkspace& checkedWorkspace(BijectionWorkspace& ws, const Eigen::Ref<Eigen::MatrixXd>& grad, int dimension,
                                    const char* name) {
    FixedMapWorkspace& fixed = workspaceAs<FixedMapWorkspace>(ws, name);
    if (fixed.savedBatch < 0)
        throw Error(std::string(name) + ": backward() needs a preceding apply(..., save = true) with this workspace");
    if (grad.rows() != dimension || grad.cols() != fixed.savedBatch)
        throw Error(std::string(name) + ": grad must be " + std::to_string(dimension) + "x" +
                    std::to_string(fixed.savedBatch));
    return fixed;
}

void remember(BijectionWorkspace& ws, const char* name, Direction direction, Eigen::Index n, bool save) {
    FixedMapWorkspace& fixed = workspaceAs<FixedMapWorkspace>(ws, name);
    fixed.savedBatch = save ? n : -1;
    fixed.direction = direction;
}

// data.col(j) <- data.col(j)[order] for every column, through a one-column buffer.
void permuteRows(Eigen::Ref<Eigen::MatrixXd> data, const std::vector<int>& order) {
    Eigen::VectorXd column(data.rows());
    for (Eigen::Index j = 0; j < data.cols(); j++) {
        column = data.col(j);
        for (size_t i = 0; i < order.size(); i++)
            data(static_cast<Eigen::Index>(i), j) = column[order[i]];
    }
}

} // namespace

Permutation::Permutation(std::vector<bool> inputCircular, std::vector<int> permutationIn)
    : Bijection(std::move(inputCircular)), permutation(std::move(permutationIn)) {
    const int dim = getDimension();
    if (static_cast<int>(permutation.size()) != dim)
        throw Error("Permutation: the permutation has " + std::to_string(permutation.size()) +
                    " entries, expected the dimension " + std::to_string(dim));
    inversePermutation.assign(dim, -1);
    for (int i = 0; i < dim; i++) {
        const int p = permutation[i];
        if (p < 0 || p >= dim)
            throw Error("Permutation: entry " + std::to_string(i) + " = " + std::to_string(p) + " is outside [0, " +
                        std::to_string(dim) + ")");
        if (inversePermutation[p] >= 0)
            throw Error("Permutation: " + std::to_string(p) + " appears more than once");
        inversePermutation[p] = i;
    }
}

std::unique_ptr<Permutation> Permutation::random(std::vector<bool> inputCircular, uint64_t seed) {
    std::vector<int> order(inputCircular.size());
    for (size_t i = 0; i < order.size(); i++)
        order[i] = static_cast<int>(i);
    std::mt19937_64 engine(seed);
    for (size_t i = order.size(); i > 1; i--)
        std::swap(order[i - 1], order[engine() % i]);
    return std::make_unique<Permutation>(std::move(inputCircular), std::move(order));
}

std::vector<bool> Permutation::getOutputCircular() const {
    std::vector<bool> out(permutation.size());
    for (size_t i = 0; i < permutation.size(); i++)
        out[i] = getInputCircular()[permutation[i]];
    return out;
}

nlohmann::json Permutation::getConfig() const {
    return {{"type", getTypeName()}, {"permutation", permutation}};
}

std::unique_ptr<Permutation> Permutation::fromConfig(const nlohmann::json& config, std::vector<bool> inputCircular) {
    std::vector<int> order = io::readIntArray(config, "permutation", "permutation config");
    return std::make_unique<Permutation>(std::move(inputCircular), std::move(order));
}

std::unique_ptr<BijectionWorkspace> Permutation::createWorkspace() const {
    return std::make_unique<FixedMapWorkspace>();
}

void Permutation::apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                        double* logDet, BijectionWorkspace& ws, bool save) const {
    checkApplyArguments(data, context, logDet);
    permuteRows(data, direction == Direction::Forward ? permutation : inversePermutation);
    remember(ws, "Permutation", direction, data.cols(), save);
}

void Permutation::backward(Eigen::Ref<Eigen::MatrixXd> grad, const double*, Eigen::MatrixXd*, double*,
                           BijectionWorkspace& ws) const {
    FixedMapWorkspace& fixed = checkedWorkspace(ws, grad, getDimension(), "Permutation");
    // The VJP of a permutation is the inverse permutation.
    permuteRows(grad, fixed.direction == Direction::Forward ? inversePermutation : permutation);
}

CircularShift::CircularShift(std::vector<bool> inputCircular, std::vector<double> shiftsIn)
    : Bijection(std::move(inputCircular)), shifts(std::move(shiftsIn)) {
    const int dim = getDimension();
    if (static_cast<int>(shifts.size()) != dim)
        throw Error("CircularShift: got " + std::to_string(shifts.size()) + " shifts, expected the dimension " +
                    std::to_string(dim));
    for (int d = 0; d < dim; d++) {
        std::ostringstream msg;
        msg.precision(17);
        if (!std::isfinite(shifts[d])) {
            msg << "CircularShift: shift of dimension " << d << " must be finite, got " << shifts[d];
            throw Error(msg.str());
        }
        if (!getInputCircular()[d] && shifts[d] != 0) {
            msg << "CircularShift: dimension " << d << " is not circular, so its shift must be 0, got " << shifts[d];
            throw Error(msg.str());
        }
    }
}

std::unique_ptr<CircularShift> CircularShift::random(std::vector<bool> inputCircular, uint64_t seed) {
    std::vector<double> shifts(inputCircular.size(), 0.0);
    std::mt19937_64 engine(seed);
    for (size_t d = 0; d < shifts.size(); d++) {
        const double u = static_cast<double>(engine() >> 11) * 0x1.0p-53;
        if (inputCircular[d])
            shifts[d] = 3.14159265358979323846 * (0.5 + u);
    }
    return std::make_unique<CircularShift>(std::move(inputCircular), std::move(shifts));
}

nlohmann::json CircularShift::getConfig() const {
    return {{"type", getTypeName()}, {"shifts", shifts}};
}

std::unique_ptr<CircularShift> CircularShift::fromConfig(const nlohmann::json& config,
                                                         std::vector<bool> inputCircular) {
    if (!config.contains("shifts") || !config["shifts"].is_array())
        throw Error("circular_shift config: \"shifts\" must be an array with one number per dimension");
    std::vector<double> shifts;
    for (const auto& v : config["shifts"]) {
        if (!v.is_number())
            throw Error("circular_shift config: \"shifts\" entries must be numbers");
        shifts.push_back(v.get<double>());
    }
    return std::make_unique<CircularShift>(std::move(inputCircular), std::move(shifts));
}

std::unique_ptr<BijectionWorkspace> CircularShift::createWorkspace() const {
    return std::make_unique<FixedMapWorkspace>();
}

void CircularShift::apply(Direction direction, Eigen::Ref<Eigen::MatrixXd> data, const Eigen::MatrixXd* context,
                          double* logDet, BijectionWorkspace& ws, bool save) const {
    checkApplyArguments(data, context, logDet);
    const double sign = direction == Direction::Forward ? 1.0 : -1.0;
    for (Eigen::Index j = 0; j < data.cols(); j++)
        for (int d = 0; d < getDimension(); d++)
            if (shifts[d] != 0)
                data(d, j) = RQSpline::wrapAngle(RQSpline::wrapAngle(data(d, j)) + sign * shifts[d]);
    remember(ws, "CircularShift", direction, data.cols(), save);
}

void CircularShift::backward(Eigen::Ref<Eigen::MatrixXd> grad, const double*, Eigen::MatrixXd*, double*,
                             BijectionWorkspace& ws) const {
    checkedWorkspace(ws, grad, getDimension(), "CircularShift"); // a shift has unit Jacobian
}

} // namespace cgflow::flows
