"""Several seeds of one experiment, and what their spread allows a reader to conclude.

``run_seeds(cfg, out, k)`` runs :func:`~nmref.tiny.experiment.run_experiment` for ``cfg.seed + i``,
``i = 0..k−1``, each in ``out/seed-<seed>`` (an ordinary, resumable run directory: a new seed draws
its own corpus sample, initialisation and batches), then :func:`aggregate` writes ``out/seeds.md``
and ``out/seeds.json``:

* per recipe, the mean validation loss (nats/token) and perplexity over the seeds, with a 95%
  confidence interval for the mean, ``mean ± t₀.₉₇₅,ₖ₋₁ · sd / √k`` (Student's t; ``sd`` with ``k − 1``);
* the recipes ranked by mean loss, and for each adjacent pair whether the difference is significant:
  a paired t-test over seeds (``scipy.stats.ttest_rel``: the same seed gives both recipes the same
  data and dense model), two-sided, at 5%. With one seed there is no interval and no test.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .._checks import NMRefValueError, check_int
from ..io import atomic_write_json, atomic_write_text

__all__ = ["run_seeds", "aggregate", "seeds_table"]


def run_seeds(cfg, out_dir, k: int, *, resume: bool = False, progress: bool = True, say=print,
              blas_threads: int | None = None) -> dict:
    """Run ``k`` seeds of ``cfg`` (``cfg`` None with ``resume``: the config saved in ``out_dir``)."""
    from .config import ExperimentConfig
    from .experiment import run_experiment

    out = Path(out_dir)
    meta_path = out / "seeds.json"
    if resume:
        if not meta_path.is_file():
            raise NMRefValueError(f"{str(out)!r} is not a multi-seed run directory (no seeds.json)")
        meta = json.loads(meta_path.read_text())
        cfg, k = ExperimentConfig(**{**meta["config"], "recipes": tuple(meta["config"]["recipes"])}), meta["seeds"]
    else:
        k = check_int("seeds", k, minimum=1)
        if out.exists() and any(out.iterdir()):
            raise NMRefValueError(f"run directory {str(out)!r} exists and is not empty; use --resume to continue it")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(meta_path, {"config": cfg.to_dict(), "seeds": k})
        if blas_threads is not None:
            atomic_write_json(out / "blas.json", {"threads": int(blas_threads)})
    results = []
    for i in range(k):
        seed = cfg.seed + i
        run = out / f"seed-{seed}"
        say(f"seed {seed} ({i + 1} of {k}): {run}")
        again = resume and (run / "config.json").is_file()
        c = None if again else ExperimentConfig(**{**cfg.to_dict(), "recipes": cfg.recipes, "seed": seed})
        results.append(run_experiment(c, run, resume=again, progress=progress, say=say, blas_threads=blas_threads))
    agg = aggregate(results)
    atomic_write_json(out / "seeds_results.json", agg)
    table = seeds_table(agg)
    atomic_write_text(out / "seeds.md", table + "\n")
    from .plots import plot_seeds
    plot_seeds(out / "seeds.png", agg)
    say(table)
    return agg


def _interval(xs: np.ndarray) -> float | None:
    from scipy import stats

    if xs.size < 2:
        return None
    return float(stats.t.ppf(0.975, xs.size - 1) * xs.std(ddof=1) / math.sqrt(xs.size))


def aggregate(results: list) -> dict:
    """Means, 95% intervals and the adjacent-pair paired tests of ``results`` (one dict per seed, as
    :func:`run_experiment` returns them; the recipes each seed ran must be the same)."""
    from scipy import stats

    if not results:
        raise NMRefValueError("aggregate needs the results of at least one seed")
    names = list(results[0]["recipes"])
    if any(list(r["recipes"]) != names for r in results):
        raise NMRefValueError("every seed must have run the same recipes")
    loss = {n: np.array([r["recipes"][n]["val_loss"] for r in results]) for n in names}
    rows = {}
    for n in names:
        h = _interval(loss[n])
        m = float(loss[n].mean())
        rows[n] = {"val_loss_mean": m, "val_loss_ci95": h, "val_ppl_mean": float(np.exp(loss[n]).mean()),
                   "val_ppl_ci95": _interval(np.exp(loss[n])), "val_loss_per_seed": loss[n].tolist()}
    ranking = sorted(names, key=lambda n: rows[n]["val_loss_mean"])
    pairs = []
    for a, b in zip(ranking, ranking[1:]):
        d = loss[b] - loss[a]
        p = float(stats.ttest_rel(loss[b], loss[a]).pvalue) if d.size >= 2 and np.any(d != d[0]) else None
        if d.size >= 2 and p is None:  # identical differences on every seed: no spread, the sign decides
            p = 0.0 if d[0] != 0 else 1.0
        pairs.append({"better": a, "worse": b, "mean_diff_nats": float(d.mean()), "p_value": p,
                      "significant": None if p is None else bool(p < 0.05)})
    return {"seeds": [r["config"]["seed"] for r in results], "recipes": rows, "ranking": ranking, "pairs": pairs}


def seeds_table(agg: dict) -> str:
    k = len(agg["seeds"])
    ci = lambda h: "" if h is None else f" ± {h:.3f}"  # noqa: E731
    lines = [f"Seeds: {', '.join(map(str, agg['seeds']))} (k = {k}); mean ± 95% interval (Student's t).", "",
             "| rank | recipe | val loss (nats) | val ppl | vs next in rank: Δ nats, paired p | significant at 5% |",
             "|---|---|---|---|---|---|"]
    pairs = {p["better"]: p for p in agg["pairs"]}
    for i, n in enumerate(agg["ranking"], 1):
        r = agg["recipes"][n]
        p = pairs.get(n)
        cmp = "—" if p is None else (f"{p['mean_diff_nats']:+.4f}, " + ("n/a" if p["p_value"] is None else f"{p['p_value']:.3g}"))
        sig = "—" if p is None or p["significant"] is None else ("yes" if p["significant"] else "no")
        lines.append(f"| {i} | {n} | {r['val_loss_mean']:.4f}{ci(r['val_loss_ci95'])} "
                     f"| {r['val_ppl_mean']:.3f}{ci(r['val_ppl_ci95'])} | {cmp} | {sig} |")
    return "\n".join(lines)
