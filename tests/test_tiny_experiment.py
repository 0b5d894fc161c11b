"""The experiment pipeline: determinism, bit-identical resume after a kill, NaN handling, bad input."""
import hashlib
import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

import nmref
from nmref.cli import main as cli_main
from nmref.tiny import CheckpointError, TrainingDivergedError, load_config, run_experiment
from nmref.tiny import model as M
from nmref.tiny.data import generate_text, markov_source, split_text, tokenize
from nmref.tiny.recipes import gmp_fraction, gmp_mask, imp_fraction

from nmref.tiny.recipes import RECIPES  # noqa: E402


def _cfg(**kw):
    return load_config("test", overrides=kw)


def _quiet(*a, **k):
    pass


def _final_arrays(run):
    return {p.name: load_file(str(p)) for p in sorted((run / "checkpoints").glob("*.safetensors"))}


def _assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for f in a:
        assert a[f].keys() == b[f].keys(), f
        for k in a[f]:
            assert a[f][k].dtype == b[f][k].dtype and np.array_equal(a[f][k].view(np.uint8), b[f][k].view(np.uint8)), (f, k)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    res = run_experiment(_cfg(), run, progress=False, say=_quiet)
    return run, res


def test_pipeline_outputs(reference_run):
    run, res = reference_run
    assert tuple(res["recipes"]) == RECIPES
    for name, r in res["recipes"].items():
        assert np.isfinite(r["val_loss"])
        if name != "dense":
            assert r["nm_sparse"] is True, name
            assert r["nonzero_linear"] <= r["linear_params"] // 2
        # no model beats the entropy floor (the corpus's exact rate)
        assert r["gap_to_floor_nats"] > 0, name
    assert res["recipes"]["ast_boosted"]["extra_params"] > 0
    for f in ("config.json", "metrics.jsonl", "results.md", "results.json", "data.json", "data.safetensors"):
        assert (run / f).is_file(), f
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if r["recipe"] == "dense" and "train_loss" in r]
    assert steps == list(range(1, 31))
    assert "| ast_boosted |" in (run / "results.md").read_text()
    ckpts = _final_arrays(run)
    fixed = ckpts["fixed_mask.safetensors"]
    for nm in M.linear_names(_cfg()):
        mask = fixed[f"mask/{nm}"].astype(bool)
        assert np.array_equal(mask, fixed[f"mask0/{nm}"].astype(bool))   # the fixed mask never changed
        assert not fixed[f"param/{nm}"][~mask].any()                    # pruned weights stayed exactly zero


def test_same_seed_bit_identical(reference_run, tmp_path):
    run, res = reference_run
    res2 = run_experiment(_cfg(), tmp_path / "again", progress=False, say=_quiet)
    _assert_same_arrays(_final_arrays(run), _final_arrays(tmp_path / "again"))
    assert [r["val_loss"] for r in res["recipes"].values()] == [r["val_loss"] for r in res2["recipes"].values()]


class _Killed(BaseException):
    pass


@pytest.mark.parametrize("where", [("dense", 17), ("ast_boosted", 13), ("cast", 20)])
def test_resume_after_interruption_is_bit_identical(reference_run, tmp_path, where):
    run, _ = reference_run

    def stop(recipe, step):
        if (recipe, step) == where:
            raise _Killed

    with pytest.raises(_Killed):
        run_experiment(_cfg(), tmp_path / "r", progress=False, on_step=stop, say=_quiet)
    res = run_experiment(None, tmp_path / "r", resume=True, progress=False, say=_quiet)
    _assert_same_arrays(_final_arrays(run), _final_arrays(tmp_path / "r"))
    # stages finished before the interrupted one keep their throughput record
    order = [r for r in RECIPES if r not in ("magnitude", "wanda", "sparsegpt")]  # the trained stages
    assert all(res["recipes"][r]["tokens_per_s"] for r in order[:order.index(where[0])])
    # metrics: one record per (recipe, step) of training loss, none duplicated by the resume
    recs = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["recipe"], r["step"]) for r in recs if "train_loss" in r]
    assert len(keys) == len(set(keys)) == 30 + (len(order) - 1) * 20


def test_resume_after_sigkill_is_bit_identical(reference_run, tmp_path):
    run, _ = reference_run
    code = (
        "import os, signal, sys\n"
        "import numpy\n"
        "from threadpoolctl import threadpool_limits\n"
        "threadpool_limits(limits=1, user_api='blas')  # as the CLI and the tests' own process\n"
        "from nmref.tiny import load_config, run_experiment\n"
        "def kill(recipe, step):\n"
        "    if (recipe, step) == ('ast_naive', 7): os.kill(os.getpid(), signal.SIGKILL)\n"
        f"run_experiment(load_config('test'), {str(tmp_path / 'k')!r}, progress=False, on_step=kill)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "k" / "results.md").exists()
    assert cli_main(["experiment", "--resume", str(tmp_path / "k"), "--no-progress"]) == 0
    _assert_same_arrays(_final_arrays(run), _final_arrays(tmp_path / "k"))
    # byte for byte, although stages were written by two processes (safetensors' metadata order varies)
    for name in ("checkpoints/dense.safetensors", "checkpoints/ast_naive.safetensors", "data.safetensors"):
        assert hashlib.sha256((run / name).read_bytes()).digest() == \
            hashlib.sha256((tmp_path / "k" / name).read_bytes()).digest(), name


def test_nan_stops_cleanly_and_keeps_last_checkpoint(tmp_path):
    def poison(recipe, step):
        if (recipe, step) == ("ast_naive", 12):  # after the step-10 checkpoint
            import nmref.tiny.train as T
            T._poisoned = True

    import nmref.tiny.train as T
    orig = T._update

    def update(st, grads, cfg, t, steps, lr):
        orig(st, grads, cfg, t, steps, lr)
        if getattr(T, "_poisoned", False):
            st.params["final_norm"] = st.params["final_norm"] * np.float32("nan")

    T._update = update
    try:
        with pytest.raises(TrainingDivergedError, match=r"ast_naive.*step 14.*step 10\) is kept"):
            run_experiment(_cfg(), tmp_path / "n", progress=False, on_step=poison, say=_quiet)
    finally:
        T._update = orig
        T._poisoned = False
    ck = tmp_path / "n" / "checkpoints" / "ast_naive.safetensors"
    from safetensors import safe_open
    with safe_open(str(ck), framework="numpy") as f:
        meta = f.metadata()
        assert meta["step"] == "10" and meta["complete"] == "0"
        assert np.isfinite(f.get_tensor("param/final_norm")).all()


def test_bad_input_is_rejected_before_work(tmp_path):
    with pytest.raises(nmref.NMRefValueError, match="does not exist"):
        run_experiment(_cfg(text=str(tmp_path / "missing.txt")), tmp_path / "a", say=_quiet)
    assert not (tmp_path / "a").exists()
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(nmref.NMRefValueError, match="empty"):
        run_experiment(_cfg(text=str(tmp_path / "empty.txt")), tmp_path / "b", say=_quiet)
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe abc")
    with pytest.raises(nmref.NMRefValueError, match="UTF-8"):
        run_experiment(_cfg(text=str(tmp_path / "bad.txt")), tmp_path / "c", say=_quiet)
    with pytest.raises(nmref.NMRefValueError, match=r"unknown config key\(s\) \['d_modle'\]"):
        load_config("test", overrides={"d_modle": 3})
    with pytest.raises(nmref.NMRefValueError, match="not divisible by n_heads"):
        _cfg(d_model=30, n_heads=4)
    with pytest.raises(nmref.NMRefValueError, match="d_ff=66 is not divisible by m=4"):
        _cfg(d_ff=66, recipes=["dense", "magnitude"])
    with pytest.raises(nmref.NMRefTypeError, match="'lr' must be a number"):
        _cfg(lr="fast")
    with pytest.raises(nmref.NMRefValueError, match="unknown recipe"):
        _cfg(recipes=["dense", "ast"])
    cfgfile = tmp_path / "c.json"
    cfgfile.write_text('{"n_layer": 2}')
    assert cli_main(["experiment", "--config", str(cfgfile), "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("user data")
    with pytest.raises(nmref.NMRefValueError, match="not empty"):
        run_experiment(_cfg(), tmp_path / "e", say=_quiet)
    assert (tmp_path / "e" / "keep.txt").read_text() == "user data"


def test_short_text_is_rejected(tmp_path):
    (tmp_path / "t.txt").write_text("just a few words here")
    with pytest.raises(nmref.NMRefValueError, match="give a longer text"):
        run_experiment(_cfg(text=str(tmp_path / "t.txt"), tokenizer="byte"), tmp_path / "r", say=_quiet)


def test_incompatible_checkpoint_is_rejected_on_resume(reference_run, tmp_path):
    run, _ = reference_run
    other = tmp_path / "other"
    run_experiment(_cfg(seed=5, recipes=["dense"]), other, progress=False, say=_quiet)
    target = tmp_path / "t"
    shutil.copytree(run, target)
    shutil.copy(other / "checkpoints" / "dense.safetensors", target / "checkpoints" / "dense.safetensors")
    with pytest.raises(CheckpointError, match="does not belong to this run"):
        run_experiment(None, target, resume=True, progress=False, say=_quiet)
    (target / "checkpoints" / "dense.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        run_experiment(None, target, resume=True, progress=False, say=_quiet)
    with pytest.raises(nmref.NMRefValueError, match="not a run directory"):
        run_experiment(None, tmp_path / "nothing", resume=True, say=_quiet)


def test_markov_entropy_matches_empirical_conditional_entropy():
    rng = np.random.default_rng(0)
    src = markov_source(12, 3, rng)
    pi = src.stationary()
    dense = np.zeros((12, 12))
    for i in range(12):
        for j, p in zip(src.successors[i], src.probs[i]):
            dense[i, j] += p
    np.testing.assert_allclose(pi @ dense, pi, atol=1e-14)
    text = generate_text(src, 200_000, rng).split(" ")
    ids = np.array([src.words.index(w) for w in text])
    counts = np.zeros((12, 12))
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
    pij = counts / counts.sum()
    pi_emp = pij.sum(1, keepdims=True)
    nz = pij > 0
    h_emp = -np.sum(pij[nz] * np.log2((pij / pi_emp)[nz]))
    assert abs(h_emp - src.entropy_bits_per_word()) < 0.01


def test_split_and_tokenize_round_trip():
    rng = np.random.default_rng(1)
    text = generate_text(markov_source(30, 4, rng), 3000, rng)
    tr, va = split_text(text, 0.1)
    assert tr + va == text and va.startswith(" ")
    tok = tokenize(tr, va, "bpe", 300)
    from tokenizers import Tokenizer
    t = Tokenizer.from_str(tok.tokenizer_json)
    assert t.decode(tok.val.tolist()) == va and t.decode(tok.train.tolist()) == tr
    b = tokenize(tr, va, "byte", 0)
    assert b.vocab_size == 256 and bytes(b.val.astype(np.uint8)).decode() == va


def test_gmp_schedule_and_mask():
    assert gmp_fraction(0, 100, 0.75, 2, 4) == 0.0
    assert gmp_fraction(75, 100, 0.75, 2, 4) == gmp_fraction(99, 100, 0.75, 2, 4) == 0.5
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 16))
    for frac in (0.0, 0.1, 0.3, 0.5):
        m = gmp_mask(w, frac, 2, 4)
        assert np.count_nonzero(~m) == round(frac * w.size)
        assert (m | ~nmref.nm_mask(w, 2, 4)).all()          # the n:m magnitude mask is always kept
        kept_cand = np.abs(w[m & ~nmref.nm_mask(w, 2, 4)])
        if kept_cand.size and (~m).any():
            assert kept_cand.min() >= np.abs(w[~m]).max()   # the smallest candidates go first
    assert np.array_equal(gmp_mask(w, 0.5, 2, 4), nmref.nm_mask(w, 2, 4))


def test_slorb_gradient_mapping_matches_slorb_backward():
    """The training loop's ∂L/∂S = (∂L/∂W_eff) Xᵀ equals nmref.slorb_backward's grad_s."""
    rng = np.random.default_rng(3)
    w, x, gy = rng.standard_normal((6, 16)), rng.standard_normal((5, 16)), rng.standard_normal((5, 6))
    mask = nmref.nm_mask(w, 2, 4)
    s = nmref.slorb_init(w, mask, 4)
    _, _, gs = nmref.slorb_backward(x, w, mask, s, 4, gy)
    g_eff = gy.T @ x
    np.testing.assert_allclose(g_eff @ nmref.slorb_projection(16, 4, dtype=np.float64).T, gs, rtol=1e-12)


def test_safetensors_bytes_are_the_same_in_every_process(tmp_path):
    """safetensors writes its metadata in a hash map's order, different in each process; nmref's
    canonical header makes equal arrays and metadata equal bytes, and the file still loads."""
    code = ("import sys, numpy as np\n"
            "from nmref.io import safetensors_bytes\n"
            "b = safetensors_bytes({'w': np.arange(6.0).reshape(2, 3), 'm': np.ones(4, np.uint8)},\n"
            "                      {'format': 'x', 'recipe': 'r', 'step': '3', 'complete': '1', 'z': 'ü'})\n"
            "sys.stdout.buffer.write(b)\n")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout for _ in range(4)}
    assert len(outs) == 1
    from safetensors import safe_open
    (tmp_path / "f.safetensors").write_bytes(outs.pop())
    with safe_open(str(tmp_path / "f.safetensors"), framework="numpy") as f:
        assert f.metadata() == {"format": "x", "recipe": "r", "step": "3", "complete": "1", "z": "ü"}
        assert f.get_tensor("w").tolist() == [[0, 1, 2], [3, 4, 5]]



@pytest.mark.parametrize("steps, rounds", [(20, 4), (100, 3), (7, 5)])
def test_imp_staircase(steps, rounds):
    """IMP prunes in `rounds` equal steps of sparsity, the last reaching n:m's 1 − n/m by T_g."""
    fr = [imp_fraction(t, steps, 0.75, rounds, 2, 4) for t in range(steps)]
    assert fr[0] == pytest.approx(0.5 / rounds)
    assert all(b >= a for a, b in zip(fr, fr[1:]))
    assert sorted(set(fr)) == pytest.approx([0.5 * (r + 1) / rounds for r in range(len(set(fr)))])
    assert fr[-1] == pytest.approx(0.5)


def test_recipe_objects_and_the_distilled_baselines(reference_run):
    """Every name is one registered object; the *_kd baselines differ from theirs only by the loss."""
    from nmref.tiny.recipes import REGISTRY
    assert tuple(REGISTRY) == RECIPES and all(r.name == n for n, r in REGISTRY.items())
    for base in ("fixed_mask", "gmp", "imp"):
        a, b = REGISTRY[base], REGISTRY[base + "_kd"]
        assert type(a) is type(b) and not a.distils and b.distils
    _, res = reference_run
    for base in ("fixed_mask", "gmp", "imp"):  # the same masks and budget, another loss: another model
        assert res["recipes"][base]["val_loss"] != res["recipes"][base + "_kd"]["val_loss"]
    run, _ = reference_run
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    imp_refresh = [r["step"] for r in recs if r.get("recipe") == "imp" and "flip_rate" in r]
    cfg = _cfg()
    starts = [t for t in range(1, cfg.retrain_steps)
              if imp_fraction(t, cfg.retrain_steps, cfg.gmp_end_fraction, cfg.imp_rounds, cfg.n, cfg.m)
              != imp_fraction(t - 1, cfg.retrain_steps, cfg.gmp_end_fraction, cfg.imp_rounds, cfg.n, cfg.m)]
    assert imp_refresh == starts and len(starts) == cfg.imp_rounds - 1  # masks change at round starts only


def test_int4_report(reference_run):
    """2:4 + int4: bytes counted independently from the shapes, the quantized model still 2:4, and the
    report present for magnitude pruning and the best trained recipe."""
    import math
    import nmref
    from nmref.tiny.int4 import int4_model
    _, res = reference_run
    rows = {r["recipe"]: r for r in res["int4"]}
    assert "magnitude" in rows and len(rows) == 2
    cfg = _cfg()
    rng = np.random.default_rng(0)
    weights = {}
    expect = 0
    for nm in M.linear_names(cfg):
        out_f, in_f = M.param_shapes(cfg, 160)[nm]
        w = rng.standard_normal((out_f, in_f)).astype(np.float32)
        weights[nm] = np.where(nmref.nm_mask(w, 2, 4), w, 0).astype(np.float32)
        expect += out_f * in_f // 4 + out_f * in_f // 8 + out_f * math.ceil(in_f / 2 / 128) * 4  # codes, nibbles, scales
    wq, measured = int4_model(weights, cfg)
    assert measured == expect
    for nm, w in weights.items():
        assert nmref.is_nm_sparse(wq[nm], 2, 4) and np.all((wq[nm] != 0) <= (w != 0))
        assert np.abs(wq[nm] - w).max() <= np.abs(w).max() / 7 / 2 * (1 + 1e-6)
    for r in rows.values():
        assert r["measured_ratio"] > r["predicted_ratio_index"] > r["predicted_ratio_enumerative"]
        assert r["predicted_ratio_index"] == 12 / 128 and r["predicted_ratio_enumerative"] == 11 / 128


def test_teal_study(reference_run):
    """At sparsity 0 the study reproduces the run's own validation losses; thresholds rise with p (so
    does the achieved sparsity); the 2:4 model is the best trained exactly-2:4 recipe."""
    from nmref.tiny.teal_study import LEVELS, run_teal_study
    run, res = reference_run
    out = run_teal_study(run, say=_quiet)
    rows = out["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    assert len(rows) == len(models) * len(LEVELS) * 2 and models[0] == "dense"
    sparse = models[1][len("2:4 ("):-1]
    assert res["recipes"][sparse]["extra_params"] == 0 and sparse not in ("magnitude", "wanda", "sparsegpt")
    for m, ref in (("dense", res["recipes"]["dense"]["val_loss"]), (models[1], res["recipes"][sparse]["val_loss"])):
        for method in ("uniform", "greedy"):
            r0 = next(r for r in rows if r["model"] == m and r["method"] == method and r["target"] == 0)
            assert r0["val_loss"] == pytest.approx(ref, rel=1e-12) and r0["achieved"] == 0
        uni = [r["achieved"] for r in rows if r["model"] == m and r["method"] == "uniform"]
        assert all(b >= a for a, b in zip(uni, uni[1:])) and uni[-1] > 0.5
    assert (run / "teal" / "teal.md").is_file() and (run / "teal" / "teal.json").is_file()


def test_exports_are_the_evaluated_models_and_pass_the_checker(reference_run, capsys):
    """exports/<recipe>.safetensors: HF-style names; evaluating an export reproduces the recipe's
    validation loss; check-checkpoint passes on every exactly-2:4 export with its defaults and fails on
    the dense one; a training checkpoint is refused with a pointer to the exports (exit 2)."""
    from safetensors import safe_open

    from nmref.tiny.experiment import _load_data
    from nmref.tiny.train import evaluate

    run, res = reference_run
    cfg = _cfg()
    _, val, _ = _load_data(run)
    for name, r in res["recipes"].items():
        path = run / "exports" / f"{name}.safetensors"
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            names = json.loads(meta["names"])
            params = {names[k]: f.get_tensor(k) for k in f.keys()}
        assert "model.layers.0.self_attn.q_proj.weight" in names and meta["recipe"] == name
        assert evaluate(params, {}, val, cfg) == pytest.approx(r["val_loss"], rel=1e-6), name
        exact = name != "dense" and r["nm_sparse"] and not r["extra_params"]
        assert cli_main(["check-checkpoint", str(path)]) == (0 if exact else 1), name
        out = capsys.readouterr().out
        assert ("that should be 2:4 are" in out) and (("are not" in out) != exact), (name, out)
    assert cli_main(["check-checkpoint", str(run / "checkpoints" / "cast.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "training checkpoint" in err and str(run / "exports" / "cast.safetensors") in err
