"""The peak resident set of the current process, as the benchmark scripts report it."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM of /proc/self/status) in MB.

    Not ``getrusage``'s ru_maxrss: on Linux that keeps the parent's peak
    across fork + exec, so a benchmark started from a large process (a test
    run, Snakemake) would report its caller's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
