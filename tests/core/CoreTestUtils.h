#ifndef CGFLOW_CORE_TEST_UTILS_H_
#define CGFLOW_CORE_TEST_UTILS_H_

// Helpers shared by the core tests.
#include "cgflow/Error.h"
#include <functional>
#include <string>

namespace cgflowtest {

/** The message of the cgflow::Error that f throws, so tests can check it names the argument. */
inline std::string errorMessage(const std::function<void()>& f) {
    try {
        f();
    } catch (const cgflow::Error& e) {
        return e.what();
    }
    return "<no Error thrown>";
}

} // namespace cgflowtest

#endif
