"""Which copies of our libraries a Python process has mapped (for `scripts/sanitize.sh --python`).

Loaded as a pytest plugin (`-p loaded_libs`, from the staging directory) it writes, when the session
ends, every mapped file of this project (libOpenMMCGFlow*.so, openmmcgflow/_core*.so, _plugin*.so),
the sanitizer runtimes and OpenMM's plugin load failures to $SANITIZE_LOADED_LIBS, so that the script
can check that the test run used the sanitized build and never the installed copies.
`python -m loaded_libs FILE` does the same for a bare `import openmmcgflow` (the script's check
before the tests).
"""
import os
import sys


def write(path):
    mapped = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/"):
                name = fields[5].strip()
                base = os.path.basename(name)
                if "CGFlow" in base or "/openmmcgflow/" in name or base.startswith(("libasan", "libubsan")):
                    mapped.add(name)
    failures = []
    if "openmm" in sys.modules:
        failures = list(sys.modules["openmm"].Platform.getPluginLoadFailures())
    with open(path, "w") as out:
        for name in sorted(mapped):
            out.write("mapped " + name + "\n")
        for failure in failures:
            out.write("failure " + failure.replace("\n", " ") + "\n")


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("SANITIZE_LOADED_LIBS")
    if path:
        write(path)


if __name__ == "__main__":
    import openmmcgflow  # noqa: F401  (loads _core, _plugin and, through openmm, the kernel plugins)
    write(sys.argv[1])
