"""The exit-code contract of every command (docs/errors.md): bad invocations end with one line naming
the culprit and exit 2 — never a traceback, never a hang, never a silent pass; a hang in an
implementation is reported; Ctrl-C exits 130 with the command that resumes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import SWEEP_GRID

from nmref.cli import EXIT_CODES, main as cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def files(tmp_path, monkeypatch):
    """A work directory with every kind of bad input the cases below need."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file.txt").write_text("not a directory\n")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "impl_syntax.py").write_text("def nm_mask(w, n, m:\n    pass\n")
    (tmp_path / "impl_raises.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "impl_exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "impl_hangs.py").write_text("import time\ndef nm_mask(w, n, m, axis=-1):\n    time.sleep(60)\n")
    (tmp_path / "grid.toml").write_text('[base]\npreset = "test"\n[grid]\nd_model = [16]\n')
    (tmp_path / "bad.toml").write_text("[grid\n")
    (tmp_path / "results.csv").write_text("N,D,sparsity,loss\n1e4,1e6,0,3.1\n2e4,1e6,0,3.0\n4e4,1e6,0,2.9\n"
                                          "1e4,2e6,0,3.0\n2e4,2e6,0,2.9\n4e4,2e6,0,2.8\n1e4,4e6,0,2.95\n")
    (tmp_path / "nocols.csv").write_text("a,b\n1,2\n")
    w = np.zeros((8, 8), np.float32)
    save_file({"model.layers.0.mlp.up_proj.weight": w}, str(tmp_path / "model.safetensors"))
    save_file({"param/blocks.0.q": w}, str(tmp_path / "train.safetensors"),
              metadata={"format": "nmref-tiny-checkpoint/1", "recipe": "cast", "step": "5"})
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


LONG = "x" * 300
CASES = [  # (argv, substring of the one-line message)
    (["sweep", "grid.toml", "--workers", "-1"], "--workers must be an integer >= 1"),
    (["sweep", "grid.toml", "--workers", "0"], "--workers must be an integer >= 1"),
    (["sweep", "missing.toml"], "missing.toml"),
    (["sweep", "bad.toml"], "bad.toml"),
    (["sweep", "grid.toml", "--out", "a_file.txt"], "is a file"),
    (["scaling", "fit", "missing.csv"], "missing.csv"),
    (["scaling", "fit", "a_dir"], "is not a file"),
    (["scaling", "fit", "results.csv", "--boot", "0"], "--boot must be an integer >= 1"),
    (["scaling", "fit", "results.csv", "--out", "a_file.txt"], "is a file"),
    (["scaling", "fit", "results.csv", "--out", "a_file.txt/sub"], "is not a directory"),
    (["scaling", "fit", "nocols.csv"], "must be a CSV with columns"),
    (["scaling", "fit", "results.csv", "--holdout", "bogus"], "holdout must be"),
    (["scaling", "fit", "results.csv", "--form", "nope"], "invalid choice"),
    (["conform", "--impl", "impl_syntax:nm_mask", "--op", "nm_mask"], "syntax error"),
    (["conform", "--impl", "impl_raises:nm_mask", "--op", "nm_mask"], "boom at import"),
    (["conform", "--impl", "impl_exits:nm_mask", "--op", "nm_mask"], "sys.exit(3)"),
    (["conform", "--impl", "no_such_module_xyz:f", "--op", "nm_mask"], "cannot import module"),
    (["conform", "--impl", "impl_hangs:nm_mask", "--op", "nm_mask", "--examples", "0"], "--examples"),
    (["conform", "--impl", "impl_hangs:nm_mask", "--op", "nm_mask", "--timeout", "0"], "--timeout"),
    (["conform", "--impl", "impl_hangs:nm_mask"], "needs --impl"),
    (["conform", "--op", "nm_mask"], "needs --impl"),
    (["conform", "--list", "--op", "nm_mask"], "--list takes no"),
    (["conform", "--impl", "impl_hangs:nm_mask", "--op", "no_such_op"], "no_such_op"),
    (["experiment", "--out", "a_file.txt"], "is a file"),
    (["experiment", "--out", "a_file.txt/run"], "is not a directory"),
    (["experiment", "--out", LONG], "File name too long"),
    (["experiment", "--seeds", "0"], "--seeds must be an integer >= 1"),
    (["experiment", "--set", "noequals"], "KEY=VALUE"),
    (["experiment", "--set", "d_model=-3"], "d_model"),
    (["experiment", "--preset", "nosuch"], "invalid choice"),
    (["experiment", "--config", "missing.json"], "missing.json"),
    (["experiment", "--resume", "a_dir"], "a_dir"),
    (["experiment", "--text", "missing.txt"], "missing.txt"),
    (["experiment", "--resume", "a_dir", "--seeds", "2"], "--resume"),
    (["teal-study", "a_dir"], "is not a run directory with a finished dense stage"),
    (["teal-study", "--step", "0"], "--step must be a number in (0, 1]"),
    (["teal-study", "--step", "1.5"], "--step must be a number in (0, 1]"),
    (["report", "--layers", "-1"], "--layers must be an integer >= 1"),
    (["report", "--layers", "0"], "--layers must be an integer >= 1"),
    (["report", "--out", "a_dir"], "is a directory"),
    (["report", "--threads", "0"], "--threads must be an integer >= 1"),
    (["golden", "verify", "a_file.txt"], "not a golden set directory"),
    (["golden", "verify", "a_dir"], "no manifest.json"),
    (["golden", "verify", "v9"], "released"),
    (["golden", "verify", "--version", "3"], "--version goes with"),
    (["golden", "write"], "needs DIR"),
    (["golden", "write", "a_dir"], "exists"),
    (["golden", "write", "new_set", "--impl", "x"], "--impl goes with"),
    (["check-checkpoint", "model.safetensors", "--include", "no_such_tensor"], "matches none"),
    (["check-checkpoint", "model.safetensors", "--axis", "5"], "out of range"),
    (["check-checkpoint", "missing.safetensors"], "does not exist"),
    (["check-checkpoint", "a_dir"], "model.safetensors.index.json"),
    (["check-checkpoint", "a_file.txt"], "expected a .safetensors or .npz"),
    (["check-checkpoint", "model.safetensors", "--pattern", "2-4"], "N:M"),
    (["check-checkpoint", "train.safetensors"], "training checkpoint"),
    (["nosuchcommand"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_invocation_is_one_line_and_exit_2(files, capsys, argv, message):
    code = cli(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, code, out, err)
    assert "Traceback" not in err + out
    assert message in err, (argv, err)
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith(("usage:", " "))]
    assert len(lines) == 1, err  # one line (argparse adds its usage lines before it)


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


def test_include_with_no_match_fails_the_gate_in_json(files, capsys):
    assert cli(["check-checkpoint", "model.safetensors", "--include", "typo", "--json"]) == 2
    rep = json.loads(capsys.readouterr().out)
    assert rep["exit_code"] == 2 and "matches none" in rep["error"]


def test_sweep_without_dask_is_one_line(files, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    assert cli(["sweep", "grid.toml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'nmref[sweep]'" in err


def test_hang_is_reported_not_waited_for(files, capsys):
    t0 = time.perf_counter()
    assert cli(["conform", "--impl", "impl_hangs:nm_mask", "--op", "nm_mask", "--timeout", "0.3"]) == 1
    out = capsys.readouterr().out
    assert "did not return within 0.3 s (a hang)" in out and time.perf_counter() - t0 < 20


def test_debug_shows_the_traceback(files):
    from nmref import NMRefValueError
    with pytest.raises(NMRefValueError, match="does not exist"):  # raised, not turned into a line
        cli(["check-checkpoint", "missing.safetensors", "--debug"])
    with pytest.raises(NMRefValueError, match="does not exist"):  # before the command too
        cli(["--debug", "check-checkpoint", "missing.safetensors"])


def test_every_help_lists_the_exit_codes(capsys):
    for argv in (["--help"], ["experiment", "--help"], ["conform", "--help"], ["sweep", "--help"],
                 ["check-checkpoint", "--help"], ["golden", "--help"], ["report", "--help"], ["teal-study", "--help"],
                 ["scaling", "fit", "--help"]):
        assert cli(argv) == 0
        assert "exit codes: 0 success" in " ".join(capsys.readouterr().out.split()), argv
    assert cli(["--version"]) == 0
    assert capsys.readouterr().out.startswith("nmref ")
    assert "130 interrupted" in EXIT_CODES


def test_golden_write_then_verify_default_version(tmp_path, capsys):
    assert cli(["golden", "write", str(tmp_path / "g")]) == 0
    assert "(version 4)" in capsys.readouterr().out
    assert cli(["golden", "verify", str(tmp_path / "g")]) == 0


def test_result_files_are_readable_by_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        assert cli(["report", "--layers", "1", "--out", "table.md", "--no-progress"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------ Ctrl-C
def _sigint_after(cmd, cwd, ready, timeout=120):
    """Start ``nmref CMD`` in its own process group, send SIGINT to the whole group once ``ready()`` is
    true (as a terminal's Ctrl-C does: Dask's worker processes get it too), return (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "nmref.cli", *cmd], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + timeout
    while not ready() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the command finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_in_experiment_then_resume_is_bit_identical(tmp_path):
    from safetensors.numpy import load_file
    run = tmp_path / "run"
    code, err = _sigint_after(["experiment", "--preset", "test", "--out", str(run), "--no-progress"], tmp_path,
                              lambda: (run / "checkpoints" / "fixed_mask.safetensors").is_file())
    assert code == 130, err
    assert "Traceback" not in err and f"interrupted; resume with: nmref experiment --resume {run}" in err
    assert cli(["experiment", "--resume", str(run), "--no-progress"]) == 0
    ref = tmp_path / "ref"
    assert cli(["experiment", "--preset", "test", "--out", str(ref), "--no-progress"]) == 0
    for f in sorted((ref / "exports").glob("*.safetensors")):
        a, b = load_file(str(f)), load_file(str(run / "exports" / f.name))
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].tobytes() == b[k].tobytes(), (f.name, k)




def test_ctrl_c_in_sweep_then_rerun_completes_the_same(tmp_path):
    pytest.importorskip("dask.distributed")
    from threadpoolctl import threadpool_limits

    from nmref.sweep import grid_points, load_grid, run_point
    grid = tmp_path / "grid.toml"
    grid.write_text(SWEEP_GRID)
    out = tmp_path / "sweep"
    code, err = _sigint_after(["sweep", str(grid), "--out", str(out), "--workers", "1"], tmp_path,
                              lambda: any((out / "points").glob("*/results.json")))
    assert code == 130, err
    assert "Traceback" not in err and "interrupted; resume with: nmref sweep" in err
    assert err.count("\n") == 1, err  # the workers stay silent: one line in all
    assert cli(["sweep", str(grid), "--out", str(out), "--workers", "1"]) == 0
    rows = {r.split(",")[0]: r for r in (out / "results.csv").read_text().splitlines()[1:]}
    with threadpool_limits(limits=1, user_api="blas"):  # Dask's workers are single-threaded
        for p in grid_points(load_grid(grid)):
            ref = run_point(p, str(tmp_path / "ref"))
            assert float(rows[p["name"]].split(",")[8]) == ref["loss"], p["name"]
