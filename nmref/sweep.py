"""Sweeps of small experiments for scaling-law studies, on a Dask cluster (``nmref sweep GRID.toml``).

A grid file (TOML) has a ``[base]`` table of config keys shared by every point (``preset`` names the
starting preset) and a ``[grid]`` table of lists:

* ``d_model`` — model width (``d_ff = ff_mult · d_model``, ``ff_mult`` 2 unless ``[base]`` says);
* ``tokens`` — the training-token budget of the point;
* ``pattern`` — ``"dense"`` or ``"n:m"`` (e.g. ``"2:4"``, ``"4:8"``, ``"1:4"``);
* ``recipe`` — the retraining recipe of sparse points (``nmref experiment``'s names);
* ``seed``.

Each point is one :func:`~nmref.tiny.experiment.run_experiment` in ``OUT/points/<name>``: a dense
point trains ``tokens`` tokens; a sparse point trains dense for ``1 − retrain_fraction`` of them
(``[base] retrain_fraction``, default 0.1) and then its recipe for the rest, with ``n, m`` from its
pattern, and reports that recipe's loss. ``N`` is the number of block-linear parameters (the ones a
pattern applies to), ``D`` the token budget, ``sparsity = 1 − n/m``. A finished point (``results.json``)
is skipped; an interrupted one (a crash, or its worker killed) is resumed from its checkpoints, bit
for bit as if it had not stopped, so running the command again completes the sweep, and Dask's own
retry of a lost task does the same inside one run. Every point is one task carrying its full config
(seed included), so results do not depend on scheduling. The gathered table: ``OUT/results.csv`` and
``OUT/results.md``.

Execution: Dask distributed (``pip install 'nmref[sweep]'``): a ``LocalCluster`` of ``workers``
single-threaded worker processes (default: one per core), or, with ``scheduler="tcp://host:port"``,
an existing cluster whose workers have nmref installed and see ``OUT`` at the same path.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
from pathlib import Path

from ._checks import NMRefTypeError, NMRefValueError
from .io import atomic_write_text

__all__ = ["load_grid", "grid_points", "run_point", "run_sweep"]

_GRID_KEYS = ("d_model", "tokens", "pattern", "recipe", "seed")
_COLUMNS = ("name", "d_model", "pattern", "recipe", "seed", "N", "D", "sparsity", "loss", "ppl", "nm_sparse", "seconds")


def _need_dask():
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise ImportError("nmref sweep runs on Dask distributed: pip install 'nmref[sweep]'") from e
    return Client, LocalCluster


def load_grid(path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise NMRefValueError("reading a TOML grid needs Python >= 3.11 (tomllib)") from None

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise NMRefValueError(f"cannot read grid file {str(p)!r}: {e}") from None
    grid, base = data.get("grid"), data.get("base", {})
    if not isinstance(grid, dict) or not isinstance(base, dict):
        raise NMRefValueError(f"{str(p)!r} needs a [grid] table (and optionally [base])")
    bad = sorted(set(grid) - set(_GRID_KEYS))
    if bad:
        raise NMRefValueError(f"[grid] has unknown keys {bad}; expected some of {list(_GRID_KEYS)}")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise NMRefTypeError(f"[grid] {k} must be a non-empty list, got {v!r}")
    return {"base": base, "grid": grid}


def _pattern(p: str):
    if p == "dense":
        return None
    try:
        n, m = (int(v) for v in p.split(":"))
    except ValueError:
        raise NMRefValueError(f"pattern must be 'dense' or 'n:m' such as '2:4', got {p!r}") from None
    if not 1 <= n < m:
        raise NMRefValueError(f"pattern {p!r} needs 1 <= n < m")
    return n, m


def grid_points(spec: dict) -> list[dict]:
    """Every point of the grid: its name and the full config dict (validated)."""
    from .tiny import load_config

    base = dict(spec["base"])
    preset = base.pop("preset", "tiny")
    ff_mult = base.pop("ff_mult", 2)
    retrain_fraction = float(base.pop("retrain_fraction", 0.1))
    if not 0 < retrain_fraction < 1:
        raise NMRefValueError(f"[base] retrain_fraction must lie in (0, 1), got {retrain_fraction}")
    g = spec["grid"]
    axes = [g.get(k, [None]) for k in _GRID_KEYS]
    points = []
    for d_model, tokens, pattern, recipe, seed in itertools.product(*axes):
        nm = _pattern(pattern or "dense")
        cfg0 = load_config(preset, None, dict(base))
        over = dict(base)
        if d_model is not None:
            over.update(d_model=int(d_model), d_ff=int(ff_mult * d_model))
        if seed is not None:
            over["seed"] = int(seed)
        tps = over.get("batch_size", cfg0.batch_size) * over.get("seq_len", cfg0.seq_len)
        budget = int(tokens) if tokens is not None else cfg0.dense_steps * tps
        if nm is None:
            over.update(recipes=["dense"], dense_steps=max(1, budget // tps))
            rec = "dense"
        else:
            rec = recipe or "fixed_mask"
            retrain = max(1, round(retrain_fraction * budget / tps))
            over.update(recipes=["dense", rec], n=nm[0], m=nm[1], retrain_steps=retrain,
                        dense_steps=max(1, budget // tps - retrain))
        cfg = load_config(preset, None, over)
        name = f"d{cfg.d_model}-t{budget}-{(pattern or 'dense').replace(':', '_')}-{rec}-s{cfg.seed}"
        points.append({"name": name, "config": cfg.to_dict(), "pattern": pattern or "dense", "recipe": rec,
                       "tokens": budget})
    names = [p["name"] for p in points]
    if len(set(names)) != len(names):
        raise NMRefValueError("the grid has duplicate points (repeated values in a [grid] list?)")
    return points


def run_point(point: dict, out_dir: str) -> dict:
    """Run (or resume, or just read) one point; returns its row of the results table."""
    import time

    from .tiny import ExperimentConfig, run_experiment
    from .tiny import model as M

    run = Path(out_dir) / "points" / point["name"]
    t0 = time.perf_counter()
    if not (run / "results.json").is_file():
        run.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.parent / f"{point['name']}.pid", f"{os.getpid()}\n")  # who runs it (operators, tests)
        cfg = ExperimentConfig(**point["config"])
        resume = (run / "config.json").is_file()
        run_experiment(None if resume else cfg, run, resume=resume, progress=False, say=lambda *a: None)
    res = json.loads((run / "results.json").read_text(encoding="utf-8"))
    cfg = ExperimentConfig(**res["config"])
    r = res["recipes"][point["recipe"]]
    n_lin = sum(int(v[0]) * int(v[1]) for k, v in M.param_shapes(cfg, res["data"]["vocab_size"]).items()
                if k in set(M.linear_names(cfg)))
    return {"name": point["name"], "d_model": cfg.d_model, "pattern": point["pattern"], "recipe": point["recipe"],
            "seed": cfg.seed, "N": n_lin, "D": point["tokens"],
            "sparsity": 0.0 if point["pattern"] == "dense" else 1 - cfg.n / cfg.m, "loss": r["val_loss"],
            "ppl": r["val_ppl"], "nm_sparse": r["nm_sparse"], "seconds": round(time.perf_counter() - t0, 2)}


def _write_tables(out: Path, rows: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in _COLUMNS})
    atomic_write_text(out / "results.csv", buf.getvalue())
    md = ["| point | N | D | sparsity | recipe | seed | val loss | val ppl |", "|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['name']} | {r['N']:,} | {r['D']:,} | {r['sparsity']:g} | {r['recipe']} | {r['seed']} "
           f"| {r['loss']:.4f} | {r['ppl']:.3f} |" for r in rows]
    atomic_write_text(out / "results.md", "\n".join(md) + "\n")


def run_sweep(grid_file, out_dir, *, scheduler: str | None = None, workers: int | None = None, say=print) -> list:
    """Run every point of ``grid_file`` on Dask; returns the rows (also in ``out_dir/results.csv``)."""
    from ._checks import check_int
    if workers is not None:
        workers = check_int("workers", workers, minimum=1)
    Client, LocalCluster = _need_dask()
    spec = load_grid(grid_file)
    points = grid_points(spec)
    out = Path(out_dir).resolve()
    (out / "points").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "grid.json", json.dumps(spec, indent=1, sort_keys=True) + "\n")
    todo = [p for p in points if not (out / "points" / p["name"] / "results.json").is_file()]
    say(f"sweep: {len(points)} points, {len(points) - len(todo)} already finished")
    cluster = None
    environ = dict(os.environ)  # Dask's LocalCluster sets OMP/OPENBLAS/MKL_NUM_THREADS=1 etc. in this process
    if scheduler:
        client = Client(scheduler)
    else:
        n = workers or os.cpu_count() or 1
        import logging
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL, preload=["nmref._dask_worker"])
        client = Client(cluster)
    try:
        from dask.distributed import as_completed
        futures = client.map(run_point, points, out_dir=str(out), pure=False, key=[f"point-{p['name']}" for p in points],
                             retries=2)
        index = {f.key: i for i, f in enumerate(futures)}
        rows = [None] * len(points)
        done = 0
        for fut in as_completed(futures):
            row = fut.result()
            rows[index[fut.key]] = row
            done += 1
            say(f"sweep: [{done}/{len(points)}] {row['name']}: val loss {row['loss']:.4f} ({row['seconds']:.0f} s)")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        os.environ.clear()  # a later subprocess of the caller must not inherit the workers' settings
        os.environ.update(environ)
    _write_tables(out, rows)
    say(f"sweep: results in {out / 'results.csv'}")
    return rows
