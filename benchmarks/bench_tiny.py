"""One training step (forward, backward, AdamW on every parameter) of the tiny transformer in
nmref (NumPy) and in PyTorch CPU — same shapes, same weights, same batch, same thread count —
for two model sizes (the ``tiny`` and ``small`` presets), as a ratio to PyTorch.

Run: python benchmarks/bench_tiny.py
Median of 7 steps after 2 warm-up steps. Writes its table to docs/benchmarks.md.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


from _common import median_time, tiny_training_step, write_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import torch  # noqa: E402

import peer_torch_tiny as P  # noqa: E402
from nmref.tiny import model as M  # noqa: E402


def bench(preset: str, vocab: int):
    cfg, p, tok, tgt, nm_step = tiny_training_step(preset, vocab)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    opt = torch.optim.AdamW(list(tp.values()), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    ttok, ttgt = torch.tensor(tok), torch.tensor(tgt)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        P.loss(tp, ttok, ttgt, cfg).backward()
        opt.step()

    t_np = median_time(nm_step, repeat=7, warmup=2)
    t_th = median_time(torch_step, repeat=7, warmup=2)
    n_params = M.count_params(p)
    return cfg, n_params, t_np, t_th


def main():
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    rows = ["| preset | params | batch × seq | nmref step (ms) | PyTorch step (ms) | ratio nmref / PyTorch |",
            "|---|---:|---|---:|---:|---:|"]
    for preset, vocab in (("tiny", 384), ("small", 768)):
        cfg, n, a, b = bench(preset, vocab)
        rows.append(f"| {preset} (d={cfg.d_model}, L={cfg.n_layers}, V={vocab}) | {n:,} | {cfg.batch_size} × {cfg.seq_len} "
                    f"| {a * 1e3:.1f} | {b * 1e3:.1f} | {a / b:.2f} |")
        print(rows[-1], flush=True)
    body = "\n".join(rows) + (f"\n\nfloat32, {threads} threads for both (OpenBLAS and torch.set_num_threads). "
                              "PyTorch: the same model written with autograd (`tests/peer_torch_tiny.py`, checked "
                              "against nmref's gradients to 1e-9 in float64) and `torch.optim.AdamW`. Target: ratio ≤ 1.5.")
    write_section("CPU: tiny transformer training step (nmref vs PyTorch)", body, "python benchmarks/bench_tiny.py")


if __name__ == "__main__":
    main()
