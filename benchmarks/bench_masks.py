"""2:4 magnitude masks on the CPU: nmref.nm_mask vs a PyTorch topk mask, side by side.

Run: python benchmarks/bench_masks.py [--quick]
Times (median of 5) the 2:4 mask of a 4096×11008 float32 matrix, then masks every linear layer of a
LLaMA-7B-shaped model (32 × q,k,v,o,gate,up,down; random N(0,1) weights, one buffer per shape
reused for its 32 layers so that only masking is timed). Baseline: PyTorch CPU
``topk(|w|.view(-1,4), 2)`` + ``scatter`` with all cores. Writes its table to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from _common import median_time, write_section
import nmref
from nmref.shapes import linear_shapes


def torch_mask(torch):
    def f(tw):
        idx = tw.abs().view(-1, 4).topk(2, dim=1).indices
        return torch.zeros(tw.numel() // 4, 4, dtype=torch.bool).scatter_(1, idx, True).view(tw.shape)
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="mask 2 layers of the 7B model instead of 32")
    args = ap.parse_args()
    try:
        import torch
        torch.set_num_threads(__import__("os").cpu_count())
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    rows = ["| workload | nmref (s) | PyTorch topk (s) | nmref / PyTorch |", "|---|---|---|---|"]
    w = rng.standard_normal((4096, 11008), dtype=np.float32)
    t_nm = median_time(lambda: nmref.nm_mask(w, 2, 4))
    t_pt = median_time(lambda: torch_mask(torch)(torch.from_numpy(w))) if torch else float("nan")
    if torch:
        assert np.array_equal(nmref.nm_mask(w, 2, 4), torch_mask(torch)(torch.from_numpy(w)).numpy())
    rows.append(f"| nm_mask 2:4, 4096×11008 fp32 | {t_nm:.3f} | {t_pt:.3f} | {t_nm / t_pt:.2f} |")
    layers = 2 if args.quick else 32
    tot_nm = tot_pt = 0.0
    n_el = 0
    for name, shape, _ in linear_shapes("llama-7b"):
        wl = rng.standard_normal(shape, dtype=np.float32)
        for _ in range(layers):
            t0 = time.perf_counter(); nmref.nm_mask(wl, 2, 4); tot_nm += time.perf_counter() - t0
            if torch:
                t0 = time.perf_counter(); torch_mask(torch)(torch.from_numpy(wl)); tot_pt += time.perf_counter() - t0
            n_el += wl.size
    rows.append(f"| LLaMA-7B linear layers ({layers} layers, {n_el / 1e9:.2f} G weights), whole model | {tot_nm:.1f} | "
                f"{tot_pt:.1f} | {tot_nm / tot_pt:.2f} |")
    body = "\n".join(rows) + (
        "\n\nThe masks are checked equal before timing (continuous random data: no ties). nmref's pairwise-rank mask runs "
        "on one thread (NumPy ufuncs); PyTorch uses all cores.")
    print(body)
    write_section("CPU: 2:4 masks (nmref vs PyTorch)", body, "python benchmarks/bench_masks.py" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
