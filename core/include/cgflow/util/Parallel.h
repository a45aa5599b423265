#ifndef CGFLOW_UTIL_PARALLEL_H_
#define CGFLOW_UTIL_PARALLEL_H_

#include <algorithm>
#include <exception>
#include <thread>
#include <vector>

namespace cgflow::util {

/** The first index of chunk c when [0, n) is split into numChunks contiguous, nearly equal chunks. */
inline int chunkBegin(int n, int numChunks, int c) {
    return static_cast<int>(static_cast<long long>(n) * c / numChunks);
}

/**
 * body(chunk, begin, end) for numChunks contiguous chunks of [0, n), each on its own thread; the
 * calling thread takes chunk 0. The chunking depends only on (n, numChunks), so callers that keep
 * per-chunk state (workspaces of a pass to be differentiated later) find it again. Exceptions are
 * carried back to the caller (the first one, by chunk order). numChunks is taken as at least 1.
 */
template <class Body>
void parallelChunks(int n, int numChunks, const Body& body) {
    numChunks = std::max(1, numChunks);
    if (numChunks == 1) {
        body(0, 0, n);
        return;
    }
    std::vector<std::exception_ptr> errors(numChunks);
    auto run = [&](int c) {
        try {
            body(c, chunkBegin(n, numChunks, c), chunkBegin(n, numChunks, c + 1));
        } catch (...) {
            errors[c] = std::current_exception();
        }
    };
    std::vector<std::thread> workers;
    for (int c = 1; c < numChunks; c++)
        workers.emplace_back(run, c);
    run(0);
    for (std::thread& w : workers)
        w.join();
    for (const std::exception_ptr& e : errors)
        if (e)
            std::rethrow_exception(e);
}

/** body(begin, end) over at most numThreads contiguous blocks of [0, n) (none if n <= 0). */
template <class Body>
void parallelFor(int n, int numThreads, const Body& body) {
    if (n <= 0)
        return;
    parallelChunks(n, std::min(numThreads, n), [&](int, int begin, int end) { body(begin, end); });
}

} // namespace cgflow::util

#endif
