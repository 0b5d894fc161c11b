"""Golden set version 2: it covers every operation of the conformance registry, verifies against this
nmref and the pinned digests, rejects every kind of tampering with a clear message, runs foreign
implementations case by case, reads with NumPy alone, and ships inside the wheel."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nmref
import nmref.testing as nt
from nmref import golden
from nmref.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "golden" / "v2"


def manifest(d=V2):
    return json.loads((d / "manifest.json").read_text())


def test_committed_v2_verifies_and_matches_its_pinned_digest():
    assert golden.set_digest(V2) == golden.PINNED_DIGESTS[2]
    assert golden.set_digest(ROOT / "golden" / "v1") == golden.PINNED_DIGESTS[1]
    results = nmref.verify_golden(V2)
    assert [r for r in results if r[1] is not None] == []
    assert len(results) == len(manifest()["cases"]) >= 200


def test_every_operation_and_documented_mode_has_a_case():
    cases = manifest()["cases"]
    assert {c["op"] for c in cases} == {n for n in nt.op_names() if nt.get_op(n).since <= 2}
    by_op = {}
    for c in cases:
        by_op.setdefault(c["op"], []).append(c)
    params = lambda op, key: {c["params"].get(key) for c in by_op[op]}  # noqa: E731
    assert params("compression_ratio", "index_coding") == set(nmref.INDEX_CODINGS)
    assert params("ast_adamw_step", "second_moment") == {"update", "gradient"}
    assert params("adams_step", "placement") >= {"after_momentum", "in_gradient"}  # None: the default
    assert params("adams_step", "second_moment") >= {"update", "gradient"}
    assert params("distill_loss", "kind") == {"forward", "reverse"}
    assert params("slorb_backward", "ste") == {True, False}
    for op in ("adamw_decay_on_weights_step", "adamw_decay_in_grad_step", "sparsegpt_prune", "slorb_init",
               "weight_scale", "annealing_lambda", "flip_rate", "initial_flip_rate", "wanda_scores", "kl_reverse",
               "squarehead_loss", "sparsify_batched", "sparsify_prefill", "histogram_threshold",
               "greedy_block_allocation"):
        assert by_op[op], op
    # bfloat16 wherever the operation takes it: every op with a float-array input of any dtype
    for op in ("nm_mask", "transposable_nm_mask", "compress_nm", "compress_24_cutlass", "compress_24_packed",
               "compress_24_bitmask", "compress_24_mma", "masked_weight", "sr_ste_grad", "adamw_step", "adams_step",
               "soft_threshold_nm", "sparsify", "gemv_input_sparse", "slorb_forward", "wanda_scores"):
        assert any("bfloat16" in c["inputs"].values() for c in by_op[op]), op


def test_exact_rationals_are_integer_arrays():
    case = next(c for c in manifest()["cases"] if c["name"] == "compression_ratio_huffman_skewed_2_4")
    assert case["outputs"] == {"ratio": "fraction"}
    with np.load(V2 / case["file"], allow_pickle=False) as z:
        num, den = int(z["out_ratio.numerator"]), int(z["out_ratio.denominator"])
        assert z["out_ratio.numerator"].dtype == np.int64
    from fractions import Fraction
    assert Fraction(num, den) == nmref.compression_ratio(2, 4, 4, 16, "huffman", [Fraction(k + 1, 21) for k in range(6)])


def test_cases_read_with_numpy_alone_in_the_documented_call_order():
    """What golden/README.md tells another implementation to do, done with NumPy and json only."""
    m = manifest()
    for entry in m["cases"]:
        with np.load(V2 / entry["file"], allow_pickle=False) as z:
            names = set(z.files)
        for name in entry["call"]["args"] + entry["call"]["kwargs"]:
            assert name in entry["params"] or name in entry["inputs"], (entry["name"], name)
        assert set(entry["call"]["args"]) <= set(nt.get_op(entry["op"]).args)
        stored = {k.split(".")[0] for k in names}
        assert stored == {f"in_{k}" for k in entry["inputs"]} | {f"out_{k}" for k in entry["outputs"]}
        assert set(entry["compare"]) == set(entry["outputs"])
        for rule in entry["compare"].values():
            assert rule == "exact" or set(rule) == {"rtol", "atol"}


@pytest.fixture
def copy(tmp_path):
    d = tmp_path / "v2"
    shutil.copytree(V2, d)
    return d


def _npz_path(d, name):
    return d / "cases" / f"{name}.npz"


@pytest.mark.parametrize("tamper, message", [
    ("deleted", "digest differs"),
    ("extra_file", "unlisted file 'cases/extra.npz'"),
    ("edited_entry", "digest differs"),
    ("truncated", "SHA-256 differs"),
    ("flipped_byte", "SHA-256 differs"),
    ("missing_file", "listed file 'cases/nm_mask_2_4.npz' is missing"),
])
def test_tampering_is_rejected(copy, tamper, message, capsys):
    m = manifest(copy)
    if tamper == "deleted":  # from both the manifest and the folder: only the digest can tell
        m["cases"] = [c for c in m["cases"] if c["name"] != "nm_mask_2_4"]
        (copy / "manifest.json").write_text(json.dumps(m))
        _npz_path(copy, "nm_mask_2_4").unlink()
    elif tamper == "extra_file":
        shutil.copy(_npz_path(copy, "nm_mask_2_4"), copy / "cases" / "extra.npz")
    elif tamper == "edited_entry":
        next(c for c in m["cases"] if c["name"] == "exact_threshold_p50_float32")["params"]["p"] = 0.6
        (copy / "manifest.json").write_text(json.dumps(m))
    elif tamper == "truncated":
        f = _npz_path(copy, "adamw_step_float32_step5")
        f.write_bytes(f.read_bytes()[:-100])
    elif tamper == "flipped_byte":
        f = _npz_path(copy, "compress_24_packed_float16")
        b = bytearray(f.read_bytes())
        b[len(b) // 2] ^= 0x10
        f.write_bytes(bytes(b))
    elif tamper == "missing_file":
        _npz_path(copy, "nm_mask_2_4").unlink()
    results = nmref.verify_golden(copy)
    assert any(message in (r or "") for _, r in results), results[:3]
    assert cli(["golden", "verify", str(copy)]) == 1
    assert message in capsys.readouterr().out


def test_edited_expected_output_with_a_fixed_hash_is_still_caught(copy):
    """Editing a file *and* its recorded SHA-256 leaves the per-file checks happy; the pinned digest is not."""
    m = manifest(copy)
    e = next(c for c in m["cases"] if c["name"] == "nm_mask_2_4")
    with np.load(copy / e["file"]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["out_mask"] = ~arrays["out_mask"]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (copy / e["file"]).write_bytes(buf.getvalue())
    e["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(m))
    bad = dict(nmref.verify_golden(copy))
    assert "digest differs" in bad["(set)"] and "mask:" in bad["nm_mask_2_4"]


@pytest.mark.parametrize("content, message", [(b"{not json", "not valid JSON"), (b'{"format": "x"}', "not an nmref-golden")])
def test_malformed_manifest(copy, content, message, capsys):
    (copy / "manifest.json").write_bytes(content)
    assert cli(["golden", "verify", str(copy)]) == 2
    assert message in capsys.readouterr().err


def test_pickled_file_is_refused(copy):
    m = manifest(copy)
    e = next(c for c in m["cases"] if c["name"] == "nm_mask_2_4")
    buf = io.BytesIO()
    np.savez(buf, in_w=np.array([object()], dtype=object), out_mask=np.zeros(1, bool))
    (copy / e["file"]).write_bytes(buf.getvalue())
    e["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(m))
    assert "not a readable .npz" in dict(nmref.verify_golden(copy))["nm_mask_2_4"]


def test_released_sets_by_version_name(capsys):
    assert cli(["golden", "verify"]) == 0          # the newest released set
    assert "243/243 cases match" in capsys.readouterr().out
    assert cli(["golden", "verify", "v2"]) == 0
    assert "229/229 cases match" in capsys.readouterr().out
    assert cli(["golden", "verify", "v1"]) == 0
    assert "25/25 cases match" in capsys.readouterr().out
    assert cli(["golden", "verify", "v7"]) == 2
    assert "no released golden set 'v7'" in capsys.readouterr().err


# ------------------------------------------------------------------ foreign implementations over the set
def _torch():
    pytest.importorskip("torch")
    import torch_impls
    return torch_impls


def test_golden_verify_a_foreign_implementation(capsys):
    _torch()
    assert cli(["golden", "verify", "v2", "--impl", "torch_impls:correct"]) == 0
    out = capsys.readouterr().out
    for op in ("nm_mask", "compress_24_cutlass", "adamw_step", "kl_forward", "exact_threshold"):
        assert any(line.startswith(op + " ") and " ok (" in line for line in out.splitlines()), op
    assert "sparsify " in out and "not implemented" in out
    assert cli(["golden", "verify", "v2", "--impl", "torch_impls:wrong"]) == 1
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("nm_mask "))
    assert " FAIL in " in line and "; first nm_mask_" in line and len(line) < 300  # one line per operation
    assert 'want = reference(' not in out and max(map(len, out.splitlines())) < 300  # no case in full unless asked
    assert "0 operations pass, 5 fail" in out  # the golden cases catch every one of them
    case = out.rsplit("--show ", 1)[1].split()[0]
    assert cli(["golden", "verify", "v2", "--impl", "torch_impls:wrong", "--show", case]) == 1
    assert f'want = reference("' in capsys.readouterr().out  # that case, as a reproduction
    assert cli(["golden", "verify", "v2", "--impl", "torch_impls:wrong", "--show", "no_such_case"]) == 2
    assert cli(["golden", "verify", "v1", "--impl", "torch_impls:correct"]) == 2  # v1 has no call convention
    assert "version 2" in capsys.readouterr().err


def test_golden_verify_api_reports_not_implemented():
    results = dict(nmref.verify_golden(V2, impl={"nm_mask": nmref.nm_mask}))
    assert results["nm_mask_2_4"] is None
    assert results["sparsify_float32"] == "not implemented"


# ------------------------------------------------------------------ shipped with the package
@pytest.mark.slow
def test_wheel_ships_the_golden_sets_and_verifies_outside_the_repository(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                          "-w", str(tmp_path / "whl")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = next((tmp_path / "whl").glob("nmref-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    for v in golden.RELEASED:
        assert f"nmref/_golden/v{v}/manifest.json" in names
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-m", "nmref.cli", "golden", "verify"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert str(tmp_path / "site") in run.stdout and "243/243 cases match" in run.stdout


def test_readme_loader_runs_every_case_with_numpy_alone():
    """golden/README.md's loader, as printed there, loads every case; with nmref's functions as the
    implementation under test every expected output is reproduced."""
    import re
    text = (ROOT / "golden" / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    ns = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(code, ns)
    finally:
        os.chdir(cwd)
    assert ns["expected"]["mask"].dtype == np.bool_
    from nmref.testing.values import Tol, compare
    for case in manifest()["cases"]:
        args, kwargs, expected = ns["load"](str(V2), case)
        spec = nt.get_op(case["op"])
        a, k = spec.call_args(dict(zip(case["call"]["args"], args), **kwargs))
        got = spec.outputs_of(spec.ref(*a, **k))
        for name, want in expected.items():
            rule = case["compare"][name]
            assert compare(got[name], want, "exact" if rule == "exact" else Tol(rule["rtol"], rule["atol"])) is None, \
                (case["name"], name)
