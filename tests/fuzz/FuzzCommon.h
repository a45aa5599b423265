#ifndef CGFLOW_FUZZ_COMMON_H_
#define CGFLOW_FUZZ_COMMON_H_

// Shared by the libFuzzer targets. A target "refuses" an input by catching the exception the API
// documents for bad input (cgflow::Error, OpenMM::OpenMMException for the XML proxies). Anything
// else (a sanitizer report, an abort, a hang, an uncaught exception of another type, or a broken
// documented invariant, reported through FUZZ_CHECK) is a finding.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, what)                                                                  \
    do {                                                                                             \
        if (!(condition)) {                                                                          \
            std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, what);     \
            std::abort();                                                                            \
        }                                                                                            \
    } while (0)

#endif
