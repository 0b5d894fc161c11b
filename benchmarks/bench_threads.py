"""BLAS threads on a busy machine: one nmref training step (forward, backward, AdamW) of the tiny
transformer with 1 and with 2 OpenBLAS threads (threadpoolctl), on a quiet machine and beside one busy
process (a second Python process spinning on one core) — the case the CLI's thread choice is for.

Run: python benchmarks/bench_threads.py
Median of 9 steps after 2 warm-up steps, per (preset, threads, neighbour). Writes its table to
docs/benchmarks.md. The "before" row of each preset is the old default (as many threads as cores),
the "after" row the CLI's default (one thread, ``--threads`` to change it).
"""
from __future__ import annotations

import os
import subprocess
import sys

from threadpoolctl import threadpool_info, threadpool_limits

from _common import median_time, tiny_training_step, write_section


def busy_neighbour() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main():
    cores = os.cpu_count() or 1
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    lib = f"{blas[0].get('internal_api')} {blas[0].get('version')}" if blas else "no BLAS found"
    rows = ["| preset | BLAS threads | quiet step (ms) | beside one busy process (ms) | busy / quiet |",
            "|---|---:|---:|---:|---:|"]
    seen = {}
    for preset, vocab in (("tiny", 384), ("small", 768)):
        cfg, _, _, _, step = tiny_training_step(preset, vocab)
        for threads in sorted({cores, 1}, reverse=True):
            with threadpool_limits(limits=threads, user_api="blas"):
                quiet = median_time(step, repeat=9, warmup=2)
                nb = busy_neighbour()
                try:
                    busy = median_time(step, repeat=9, warmup=2)
                finally:
                    nb.kill()
                    nb.wait()
            seen[(preset, threads)] = (quiet, busy)
            label = "before (all cores)" if threads == cores and cores > 1 else "after (CLI default)"
            rows.append(f"| {preset} (d={cfg.d_model}, L={cfg.n_layers}) | {threads} — {label} | {quiet * 1e3:.1f} "
                        f"| {busy * 1e3:.1f} | {busy / quiet:.2f} |")
            print(rows[-1], flush=True)
    summary = ""
    if cores > 1:
        (q2, b2), (q1, b1) = seen[("small", cores)], seen[("small", 1)]
        summary = (f" On the `small` preset one thread costs {100 * (q1 / q2 - 1):.0f}% on a quiet machine and "
                   f"{100 * (b1 / q1 - 1):.0f}% beside the busy process, where {cores} threads cost "
                   f"{b2 / q2:.1f}×.")
    body = "\n".join(rows) + (f"\n\n{cores} cores, {lib}, float32.{summary} The neighbour is a second process spinning on one "
                              "core. `nmref experiment`, `teal-study` and `report` run with 1 BLAS thread by default "
                              "(`--threads N` overrides): a thread that has to share its core with the neighbour "
                              "stalls every OpenBLAS call that waits for it.")
    write_section("CPU: BLAS threads beside a busy process", body, "python benchmarks/bench_threads.py")


if __name__ == "__main__":
    main()
