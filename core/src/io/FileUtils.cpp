#include "cgflow/io/FileUtils.h"

#include "cgflow/Error.h"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cgflow::io {

namespace {

std::string systemError() {
    return std::strerror(errno);
}

// Closes on scope exit so that every early throw releases the descriptor.
class FileDescriptor {
public:
    explicit FileDescriptor(int descriptor) : fd(descriptor) {}
    ~FileDescriptor() {
        if (fd >= 0)
            ::close(fd);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    int get() const { return fd; }
    // Closing can report a deferred write error, so the writer needs its result.
    int release() {
        int result = ::close(fd);
        fd = -1;
        return result;
    }

private:
    int fd;
};

std::string randomSuffix() {
    uint64_t value;
    try {
        std::random_device device;
        value = (static_cast<uint64_t>(device()) << 32) ^ device();
    } catch (const std::exception&) {
        // Uniqueness only needs to beat concurrent writers in this directory; O_EXCL catches the rest.
        value = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    }
    char text[17];
    std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
    return text;
}

std::string directoryOf(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos)
        return ".";
    if (slash == 0)
        return "/";
    return path.substr(0, slash);
}

} // namespace

std::string readFileBytes(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw Error("cannot open '" + path + "' for reading: " + systemError());
    FileDescriptor file(fd);
    struct stat info;
    if (::fstat(file.get(), &info) != 0)
        throw Error("cannot stat '" + path + "': " + systemError());
    if (S_ISDIR(info.st_mode))
        throw Error("cannot read '" + path + "': it is a directory");
    std::string bytes;
    if (S_ISREG(info.st_mode))
        bytes.reserve(static_cast<size_t>(info.st_size));
    char buffer[1 << 16];
    while (true) {
        ssize_t n = ::read(file.get(), buffer, sizeof(buffer));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw Error("error reading '" + path + "': " + systemError());
        }
        if (n == 0)
            break;
        bytes.append(buffer, static_cast<size_t>(n));
    }
    return bytes;
}

void writeFileAtomic(const std::string& path, const std::string& bytes) {
    if (path.empty())
        throw Error("writeFileAtomic: empty path");
    const std::string tempPath = path + ".tmp." + std::to_string(::getpid()) + "." + randomSuffix();
    // 0666 so that the umask decides the final permissions, as for an ordinary new file.
    int fd = ::open(tempPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        throw Error("cannot write '" + path + "': cannot create temporary file '" + tempPath + "': " + systemError());
    FileDescriptor file(fd);
    auto failAndRemove = [&](const std::string& what) {
        std::string reason = systemError();
        if (file.get() >= 0)
            file.release();
        ::unlink(tempPath.c_str());
        return Error("cannot write '" + path + "': " + what + ": " + reason);
    };
    size_t written = 0;
    while (written < bytes.size()) {
        ssize_t n = ::write(file.get(), bytes.data() + written, bytes.size() - written);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw failAndRemove("write to temporary file failed");
        }
        written += static_cast<size_t>(n);
    }
    if (::fsync(file.get()) != 0)
        throw failAndRemove("fsync of temporary file failed");
    if (file.release() != 0)
        throw failAndRemove("close of temporary file failed");
    if (::rename(tempPath.c_str(), path.c_str()) != 0)
        throw failAndRemove("rename of temporary file failed");
    // Make the rename itself durable. Best effort: some filesystems refuse to fsync directories.
    int dirFd = ::open(directoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirFd >= 0) {
        ::fsync(dirFd);
        ::close(dirFd);
    }
}

} // namespace cgflow::io
