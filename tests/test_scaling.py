"""Scaling-law fits: recovery of known parameters from synthetic data, bootstrap coverage, prediction
intervals, the report and the CLI; the Dask sweep (skipped without dask)."""
import csv
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from helpers import SWEEP_GRID

from nmref import NMRefValueError
from nmref.cli import main as cli
from nmref.scaling import fit_scaling_law, law, predict

TRUE = dict(E=1.7, A=400.0, alpha=0.34, B=410.0, beta=0.28, gamma=0.7)


def _synthetic(rng, noise=0.005):
    n, d, s = np.meshgrid(np.geomspace(1e4, 1e6, 5), np.geomspace(1e6, 1e8, 4), [0.0, 0.5, 0.75], indexing="ij")
    n, d, s = n.ravel(), d.ravel(), s.ravel()
    return n, d, s, law("sparse", TRUE, n, d, s) * np.exp(rng.normal(0, noise, n.size))


def test_noise_free_recovery_is_exact():
    n, d, s, loss = _synthetic(np.random.default_rng(0), noise=0.0)
    fit = fit_scaling_law(n, d, loss, s, form="sparse", n_boot=0)
    for k, v in TRUE.items():
        assert fit.params[k] == pytest.approx(v, rel=2e-3), k


def test_bootstrap_intervals_cover_the_true_parameters():
    """10 synthetic data sets (0.5% log-normal noise): the 95% intervals contain the true values in
    >= 90% of (repetition, parameter) cases, each parameter in >= 8 of 10; the held-out larger model's
    prediction interval contains its true loss in >= 8 of 10."""
    hits, pred_hits = [], 0
    for rep in range(10):
        rng = np.random.default_rng(100 + rep)
        n, d, s, loss = _synthetic(rng)
        fit = fit_scaling_law(n, d, loss, s, form="sparse", n_boot=50, rng=rng)
        hits.append([lo <= TRUE[k] <= hi for k, (lo, hi) in fit.intervals.items()])
        _, lo, hi = predict(fit, [3e6], [1e8], [0.5], rng=rng)
        true = law("sparse", TRUE, 3e6, 1e8, 0.5)
        pred_hits += bool(lo[0] <= true <= hi[0])
    hits = np.array(hits)
    assert hits.mean() >= 0.9 and hits.mean(axis=0).min() >= 0.8, hits.mean(axis=0)
    assert pred_hits >= 8


def test_errors():
    with pytest.raises(NMRefValueError, match="at least 7 points"):
        fit_scaling_law([1e4] * 3, [1e6] * 3, [2.0] * 3, form="sparse", n_boot=0)
    with pytest.raises(NMRefValueError, match="rng"):
        fit_scaling_law(*_synthetic(np.random.default_rng(0))[:2], _synthetic(np.random.default_rng(0))[3])
    with pytest.raises(NMRefValueError, match="finite and positive"):
        fit_scaling_law([1e4, -1] * 4, [1e6] * 8, [2.0] * 8, n_boot=0)
    with pytest.raises(NMRefValueError, match="form"):
        fit_scaling_law([1e4] * 8, [1e6] * 8, [2.0] * 8, form="kaplan", n_boot=0)


def test_cli_fit_with_holdout(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n, d, s, loss = _synthetic(rng)
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["N", "D", "sparsity", "loss"])
        w.writerows(zip(n, d, s, loss))
    assert cli(["scaling", "fit", str(path), "--form", "sparse", "--holdout", "largest", "--boot", "40",
                "--out", str(tmp_path / "fit")]) == 0
    rep = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert rep["n_fit"] == 48 and len(rep["held_out"]) == 12
    assert np.mean([h["inside"] for h in rep["held_out"]]) >= 0.75
    assert "Efficiency of 2:4" in (tmp_path / "fit" / "fit.md").read_text()
    assert cli(["scaling", "fit", str(path), "--holdout", "Q>=3"]) == 2


# ------------------------------------------------------------------------------------ the sweep


def test_sweep_survives_a_killed_worker(tmp_path):
    """A LocalCluster sweep whose worker process is killed mid-point finishes every point exactly once,
    with the same results, bit for bit, as an uninterrupted sweep of the same grid (both on Dask's
    single-threaded workers: the main process's BLAS threads would sum in another order)."""
    pytest.importorskip("dask.distributed")
    from nmref.sweep import grid_points, load_grid, run_point, run_sweep
    grid = tmp_path / "grid.toml"
    grid.write_text(SWEEP_GRID)
    points = grid_points(load_grid(grid))
    assert len(points) == 4
    ref = run_sweep(grid, tmp_path / "ref", workers=2, say=lambda *a: None)  # uninterrupted
    assert [run_point(p, str(tmp_path / "ref")) for p in points][0]["loss"] == ref[0]["loss"]  # finished: read back

    out = tmp_path / "sweep"
    killed = {}
    env_before = os.environ.get("OPENBLAS_NUM_THREADS")

    def killer():  # kill the first worker process seen running a point (a checkpoint written, no result yet)
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for ck in (out / "points").glob("*/checkpoints/*.safetensors"):
                run = ck.parent.parent
                pidfile = run.parent / f"{run.name}.pid"
                if not (run / "results.json").is_file() and pidfile.is_file():
                    pid = int(pidfile.read_text())
                    os.kill(pid, signal.SIGKILL)
                    killed[run.name] = pid
                    return
            time.sleep(0.05)
    t = threading.Thread(target=killer)
    t.start()
    rows = run_sweep(grid, out, workers=2, say=lambda *a: None)
    t.join()
    assert killed, "no worker was killed mid-point"
    assert sorted(r["name"] for r in rows) == sorted(p["name"] for p in points)
    strip = lambda rs: sorted((r["name"], r["loss"], r["N"], r["D"], r["sparsity"]) for r in rs)  # noqa: E731
    assert strip(rows) == strip(ref)
    for p in points:  # each step of each stage once in the resumed point's metrics
        recs = [json.loads(l) for l in (out / "points" / p["name"] / "metrics.jsonl").read_text().splitlines()]
        keys = [(r["recipe"], r["step"]) for r in recs if "train_loss" in r]
        assert len(keys) == len(set(keys))
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert "OPENBLAS_NUM_THREADS" not in os.environ or os.environ.get("OPENBLAS_NUM_THREADS") == env_before  # restored
