#ifndef CGFLOW_ERROR_H_
#define CGFLOW_ERROR_H_

#include <stdexcept>
#include <string>

namespace cgflow {

/**
 * The one exception type thrown by the core for bad input, so that the OpenMM kernels and
 * the Python bindings can translate every user-facing problem in a single place. Messages
 * name the offending argument, tensor or field and say what was expected.
 */
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

} // namespace cgflow

#endif
