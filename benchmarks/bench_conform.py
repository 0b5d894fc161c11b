"""Wall time of `nmref conform --op OP` at its defaults (200 examples, seed 0) for every operation, with
nmref's own reference as the implementation (`--impl nmref.testing:REFERENCE`): the kit's own cost, which
a foreign implementation adds its call time to. One process per operation, as a user runs it, so the
time includes starting Python and importing nmref (measured alone as the first row).

Run: python benchmarks/bench_conform.py   (writes its table to docs/benchmarks.md)
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _common import write_section

sys.path.insert(0, ".")
from nmref.testing import op_names  # noqa: E402


def wall(argv) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stdout}{out.stderr}")
    return dt


def main():
    base = [sys.executable, "-m", "nmref.cli", "conform", "--impl", "nmref.testing:REFERENCE"]
    startup = wall([sys.executable, "-m", "nmref.cli", "conform", "--list"])
    rows = [(op, wall(base + ["--op", op])) for op in op_names()]
    times = [t for _, t in rows]
    slowest = sorted(rows, key=lambda r: -r[1])[:8]
    body = (f"`nmref conform --op OP` with the defaults (200 examples), per operation, one process each "
            f"({len(rows)} operations). Start-up and import alone (`nmref conform --list`): {startup:.2f} s.\n\n"
            f"| | seconds |\n|---|---|\n| median over the operations | {statistics.median(times):.2f} |\n"
            f"| maximum | {max(times):.2f} |\n| target | 20 |\n\nThe slowest eight:\n\n| operation | seconds |\n|---|---|\n"
            + "\n".join(f"| `{op}` | {t:.2f} |" for op, t in slowest))
    write_section("CPU: conformance kit, time per operation", body, "python benchmarks/bench_conform.py")
    print(body)


if __name__ == "__main__":
    main()
