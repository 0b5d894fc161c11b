"""Multi-seed runs: the statistics against independent computations, and a small end-to-end run."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from nmref import NMRefValueError
from nmref.cli import main as cli
from nmref.tiny import load_config
from nmref.tiny.seeds import aggregate, run_seeds


def _res(seed, losses):
    return {"config": {"seed": seed}, "recipes": {n: {"val_loss": v} for n, v in losses.items()}}


def test_interval_and_paired_tests_match_textbook_formulas():
    a = [1.00, 1.10, 0.95, 1.05]
    b = [1.20, 1.22, 1.18, 1.30]   # worse than a on every seed
    c = [1.21, 1.20, 1.20, 1.29]   # within noise of b
    res = [_res(s, {"a": x, "b": y, "c": z}) for s, x, y, z in zip(range(4), a, b, c)]
    agg = aggregate(res)
    assert agg["ranking"] == sorted("abc", key=lambda n: np.mean({"a": a, "b": b, "c": c}[n]))
    sd = np.std(a, ddof=1)
    assert agg["recipes"]["a"]["val_loss_ci95"] == pytest.approx(3.182446305284263 * sd / 2)  # t_0.975,3
    assert agg["recipes"]["a"]["val_loss_mean"] == pytest.approx(np.mean(a))
    assert agg["recipes"]["a"]["val_ppl_mean"] == pytest.approx(np.mean(np.exp(a)))
    first, second = agg["pairs"]
    assert first["better"] == "a" and first["significant"] is True
    d = np.array([r["recipes"][first["worse"]]["val_loss"] - r["recipes"]["a"]["val_loss"] for r in res])
    t = d.mean() / (d.std(ddof=1) / 2)
    assert first["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 3))
    assert second["significant"] is False
    assert second["p_value"] == pytest.approx(stats.ttest_rel(*(np.array(v) for v in (
        [r["recipes"][second["worse"]]["val_loss"] for r in res], [r["recipes"][second["better"]]["val_loss"] for r in res]
    ))).pvalue)


def test_one_seed_has_no_interval_and_no_test():
    agg = aggregate([_res(0, {"a": 1.0, "b": 2.0})])
    assert agg["recipes"]["a"]["val_loss_ci95"] is None and agg["pairs"][0]["p_value"] is None
    with pytest.raises(NMRefValueError, match="same recipes"):
        aggregate([_res(0, {"a": 1.0}), _res(1, {"b": 1.0})])


def test_two_seeds_end_to_end(tmp_path):
    cfg = load_config("test", overrides={"recipes": ["dense", "magnitude", "fixed_mask"]})
    agg = run_seeds(cfg, tmp_path / "s", 2, progress=False, say=lambda *a: None)
    assert agg["seeds"] == [cfg.seed, cfg.seed + 1]
    for s in agg["seeds"]:
        single = json.loads((tmp_path / "s" / f"seed-{s}" / "results.json").read_text())
        for n in ("dense", "magnitude", "fixed_mask"):
            assert single["recipes"][n]["val_loss"] in agg["recipes"][n]["val_loss_per_seed"]
    assert agg["recipes"]["dense"]["val_loss_per_seed"][0] != agg["recipes"]["dense"]["val_loss_per_seed"][1]
    assert (tmp_path / "s" / "seeds.md").read_text().count("\n") >= 5
    # resuming a finished multi-seed run recomputes the same table
    again = run_seeds(None, tmp_path / "s", 0, resume=True, progress=False, say=lambda *a: None)
    assert again == agg
    assert cli(["experiment", "--seeds", "0", "--preset", "test"]) == 2
    assert math.isfinite(agg["recipes"]["magnitude"]["val_loss_mean"])
