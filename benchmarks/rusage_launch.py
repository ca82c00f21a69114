"""Run a command and write its own rusage (CPU seconds, peak RSS) as JSON: a small, clean parent.

    python benchmarks/rusage_launch.py REPORT.json CMD [ARG...]

Why not wait4 straight from bench.py: on Linux a child started with fork/vfork + exec inherits its parent's
RSS high-water mark into ru_maxrss (exec records the old address space's peak). bench.py holds the emulator
and its hundreds of thousands of records, so every child would report bench.py's peak, not its own. This
launcher is a fresh interpreter of a few MB; its child's ru_maxrss is the child's own (or this launcher's few
MB, whichever is higher). stdin/stdout/stderr are passed through untouched.
"""

import json
import os
import sys


def main() -> int:
    report, cmd = sys.argv[1], sys.argv[2:]
    pid = os.posix_spawn(cmd[0], cmd, os.environ)
    _, status, usage = os.wait4(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    with open(report, "w", encoding="utf-8") as handle:
        json.dump({"rc": rc, "utime": usage.ru_utime, "stime": usage.ru_stime, "maxrss_kb": usage.ru_maxrss}, handle)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
