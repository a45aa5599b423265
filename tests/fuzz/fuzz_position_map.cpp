// libFuzzer target: PositionMap JSON ("positions" in boltzmann_generator model files).
// Documented: fromJson throws cgflow::Error naming the field for anything malformed or unknown;
// toJson/fromJson round-trip exactly. Small accepted maps are also run forwards and backwards once.
#include "FuzzCommon.h"
#include "cgflow/Error.h"
#include "cgflow/coords/PositionMap.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

using cgflow::coords::PositionMap;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded())
        return 0;
    std::optional<PositionMap> map;
    try {
        map = PositionMap::fromJson(json);
    } catch (const cgflow::Error&) {
        return 0; // refused
    }
    const nlohmann::json written = map->toJson();
    const PositionMap back = PositionMap::fromJson(written);
    FUZZ_CHECK(back.toJson() == written, "fromJson(toJson()) does not round-trip");
    FUZZ_CHECK(back.getDimension() == map->getDimension(), "round trip changed the dimension");
    if (map->getNumParticles() > 2000)
        return 0;
    const int n = 1, dim = map->getDimension(), width = 3 * map->getNumParticles();
    std::vector<double> y(static_cast<size_t>(dim), 0.1), templatePositions(static_cast<size_t>(width));
    for (int i = 0; i < width; i++)
        templatePositions[i] = 0.1 * (i % 7) + 0.03 * i;
    std::vector<double> positions(static_cast<size_t>(width)), logDetJ(1), condition(map->getNumConditionValues(), 0.5);
    std::vector<double> yBack(static_cast<size_t>(dim)), conditionBack(map->getConditionColumns().size());
    try {
        map->toPositions(n, y.data(), templatePositions.data(), positions.data(), logDetJ.data(),
                         map->getConditionColumns().empty() ? nullptr : condition.data());
        map->fromPositions(n, positions.data(), yBack.data(), logDetJ.data(), conditionBack.data());
    } catch (const cgflow::Error&) {
    }
    return 0;
}
