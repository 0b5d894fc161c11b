"""Shared helpers for the benchmark scripts: timing medians, machine facts, and writing a
named section of docs/benchmarks.md (atomically, leaving the other sections untouched)."""
from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nmref.io import atomic_write_text  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def median_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    parts = [f"{cpu}", f"{os.cpu_count()} cores", f"Python {platform.python_version()}", f"NumPy {numpy.__version__}"]
    try:
        import torch
        parts.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    return ", ".join(parts)


def write_section(name: str, body: str, command: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md."""
    stamp = datetime.date.today().isoformat()
    block = (f"<!-- bench:{name}:start -->\n## {name}\n\nCommand: `{command}`  \nDate: {stamp}  \n"
             f"Machine: {machine()}\n\n{body.strip()}\n<!-- bench:{name}:end -->")
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nEach section is written by the script named in its command.\n"
    pat = re.compile(rf"<!-- bench:{re.escape(name)}:start -->.*?<!-- bench:{re.escape(name)}:end -->", re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(DOC, text)


def tiny_training_step(preset: str, vocab: int):
    """One nmref training step (forward, backward, AdamW on every parameter) of the tiny transformer of
    ``preset``: ``(cfg, params, tokens, targets, step)``, ``step()`` advancing the parameters in place."""
    import numpy as np

    from nmref import AdamHyper, adamw_step, init_adam_state
    from nmref.tiny import load_config
    from nmref.tiny import model as M

    cfg = load_config(preset)
    rng = np.random.default_rng(0)
    p = M.init_params(cfg, vocab, rng)
    tok = rng.integers(0, vocab, (cfg.batch_size, cfg.seq_len))
    tgt = rng.integers(0, vocab, (cfg.batch_size, cfg.seq_len))
    hyper = AdamHyper(lr=1e-3, beta1=0.9, beta2=0.95, weight_decay=0.0)
    state = {"p": dict(p), "s": {k: init_adam_state(v) for k, v in p.items()}}

    def step():
        _, g, _ = M.loss_and_grads(state["p"], tok, tgt, cfg)
        for k in state["p"]:
            state["p"][k], state["s"][k] = adamw_step(state["p"][k], g[k], state["s"][k], hyper)
    return cfg, p, tok, tgt, step
