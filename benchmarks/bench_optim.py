"""One optimizer step on a 4096×4096 float32 weight, every variant, as a ratio to plain AdamW.

Run: python benchmarks/bench_optim.py
Median of 7 steps each (fresh random gradients drawn before timing), same process, same data.
Writes its table to docs/benchmarks.md.
"""
from __future__ import annotations

import numpy as np

from _common import median_time, write_section
import nmref
from nmref import AdamHyper, AdamState


def main():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((4096, 4096), dtype=np.float32)
    g = rng.standard_normal((4096, 4096), dtype=np.float32)
    st = AdamState(3, rng.standard_normal(p.shape, dtype=np.float32) * 0.1, np.abs(rng.standard_normal(p.shape, dtype=np.float32)) * 0.01)
    mask = nmref.nm_mask(p, 2, 4)
    h = AdamHyper(lr=1e-4, beta1=0.9, beta2=0.95, weight_decay=0.1)
    cases = {
        "adamw_step (baseline)": lambda: nmref.adamw_step(p, g, st, h),
        "adamw_decay_on_weights_step": lambda: nmref.adamw_decay_on_weights_step(p, g, st, h, mask=mask, lam=1e-4),
        "adamw_decay_in_grad_step": lambda: nmref.adamw_decay_in_grad_step(p, g, st, h, mask=mask, lam=1e-4),
        "ast_adamw_step (update)": lambda: nmref.ast_adamw_step(p, g, st, h, mask=mask, lam=1e-4),
        "ast_adamw_step (gradient)": lambda: nmref.ast_adamw_step(p, g, st, h, mask=mask, lam=1e-4, second_moment="gradient"),
        "adams_step": lambda: nmref.adams_step(p, g, st, h, mask=mask, lam=1e-4, ramp_steps=10),
        "adams_step (in_gradient)": lambda: nmref.adams_step(p, g, st, h, mask=mask, lam=1e-4, ramp_steps=10, placement="in_gradient"),
    }
    times = {k: median_time(f, repeat=7) for k, f in cases.items()}
    base = times["adamw_step (baseline)"]
    rows = ["| step | median (ms) | ratio to adamw_step |", "|---|---|---|"]
    rows += [f"| {k} | {v * 1e3:.1f} | {v / base:.2f} |" for k, v in times.items()]
    body = "\n".join(rows) + "\n\n4096×4096 float32 parameter, 2:4 mask, NumPy (one thread per ufunc)."
    print(body)
    write_section("CPU: optimizer steps (nmref variants vs nmref AdamW)", body, "python benchmarks/bench_optim.py")


if __name__ == "__main__":
    main()
