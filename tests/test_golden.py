"""The frozen golden set (golden/v1): it verifies against this nmref, tampering and wrong outputs are
caught, writing is all-or-nothing, regeneration reproduces it, and some cases are re-derived
independently (brute-force masks, PyTorch's AdamW)."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import nmref
from nmref import golden
from nmref.cli import main as cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1"


def manifest():
    return json.loads((GOLDEN / "manifest.json").read_text())


def test_committed_set_verifies():
    results = nmref.verify_golden(GOLDEN)
    assert [r for r in results if r[1] is not None] == []
    assert {n for n, _ in results} == {c.name for c in nmref.golden_cases()}


def test_set_is_readable_with_numpy_alone():
    m = manifest()
    assert m["format"] == "nmref-golden" and m["version"] == 1
    listed = {e["file"] for e in m["cases"]}
    assert listed == {f"cases/{p.name}" for p in (GOLDEN / "cases").iterdir()}
    for e in m["cases"]:
        data = (GOLDEN / e["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["sha256"]
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            assert sorted(z.files) == sorted(e["dtypes"])
            assert {k: str(z[k].dtype) for k in z.files} == e["dtypes"]
            assert sorted(k[3:] for k in z.files if k.startswith("in_")) == e["inputs"]
            assert sorted(k[4:] for k in z.files if k.startswith("out_")) == e["outputs"]
        assert e["compare"] == "exact" or set(e["compare"]) == {"rtol", "atol"}


@pytest.fixture
def copy(tmp_path):
    d = tmp_path / "v1"
    shutil.copytree(GOLDEN, d)
    return d


def test_tampered_file_is_reported(copy):
    f = copy / "cases" / "compress_24_packed.npz"
    b = bytearray(f.read_bytes())
    b[-40] ^= 1
    f.write_bytes(bytes(b))
    bad = dict(nmref.verify_golden(copy))
    assert "SHA-256" in bad["compress_24_packed"]
    assert sum(r is not None for r in bad.values()) == 1  # the manifest is intact: the set's digest still matches
    assert cli(["golden", "verify", str(copy)]) == 1


@pytest.mark.parametrize("case, key, change", [
    ("nm_mask_2_4", "out_mask", lambda a: ~a),
    ("adamw_3_steps", "out_params", lambda a: a * np.float32(1 + 1e-4)),
    ("compress_24_packed", "out_meta", lambda a: a ^ np.uint32(1)),
    ("distill_loss_forward", "out_loss", lambda a: a + 1e-9),
])
def test_wrong_expected_output_is_reported(copy, case, key, change):
    m = json.loads((copy / "manifest.json").read_text())
    e = next(e for e in m["cases"] if e["name"] == case)
    with np.load(copy / e["file"]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = change(arrays[key])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (copy / e["file"]).write_bytes(buf.getvalue())
    e["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(m))
    reason = dict(nmref.verify_golden(copy))[case]
    assert reason is not None and key[4:] in reason


def test_exact_compare_sees_signed_zero():
    assert golden.compare(np.float32(-0.0), np.asarray(np.float32(0.0)), "exact") is not None
    assert golden.compare(np.float32(0.0), np.asarray(np.float32(0.0)), "exact") is None


def test_write_refuses_an_existing_directory(tmp_path):
    (tmp_path / "v1").mkdir()
    with pytest.raises(nmref.NMRefValueError, match="frozen"):
        nmref.write_golden(tmp_path / "v1")


def test_write_is_all_or_nothing(tmp_path, monkeypatch):
    def boom(rng):
        raise RuntimeError("generator failed")
    bad = golden.GoldenCase("boom", "none", "", boom, lambda i: {})
    monkeypatch.setattr(golden, "golden_cases", lambda: tuple(golden._cases()) + (bad,))
    with pytest.raises(RuntimeError, match="generator failed"):
        nmref.write_golden(tmp_path / "v1", version=1)
    assert list(tmp_path.iterdir()) == []


def test_regeneration_reproduces_the_committed_set(tmp_path):
    d = nmref.write_golden(tmp_path / "v1", version=1)
    new = {e["name"]: e for e in json.loads((d / "manifest.json").read_text())["cases"]}
    for e in manifest()["cases"]:
        ins_old, outs_old = golden.load_case(GOLDEN, e)
        ins_new, outs_new = golden.load_case(d, new[e["name"]])
        for k in ins_old:  # seeded inputs: bitwise
            assert golden.compare(ins_new[k], ins_old[k], "exact") is None, (e["name"], k)
        for k in outs_old:
            assert golden.compare(outs_new[k], outs_old[k], e["compare"]) is None, (e["name"], k)


def _brute_nm_mask(w, n, m, axis):
    """Keep the n largest |w| per group, the lower index first on ties (one stable sort per group)."""
    wt = np.moveaxis(w, axis, -1)
    g = np.abs(wt.astype(np.float64)).reshape(-1, m)
    keep = np.zeros(g.shape, bool)
    for r in range(g.shape[0]):
        order = sorted(range(m), key=lambda j: (-g[r, j], j))
        keep[r, order[:n]] = True
    return np.moveaxis(keep.reshape(wt.shape), -1, axis)


def test_mask_cases_equal_a_brute_force_mask():
    for e in manifest()["cases"]:
        if e["op"] == "nm_mask":
            ins, outs = golden.load_case(GOLDEN, e)
            p = e["params"]
            assert np.array_equal(outs["mask"], _brute_nm_mask(ins["w"], p["n"], p["m"], p.get("axis", -1))), e["name"]


def test_adamw_case_equals_pytorch():
    torch = pytest.importorskip("torch")
    e = next(e for e in manifest()["cases"] if e["name"] == "adamw_3_steps")
    ins, outs = golden.load_case(GOLDEN, e)
    p = e["params"]
    w = torch.nn.Parameter(torch.from_numpy(ins["params"].copy()))
    opt = torch.optim.AdamW([w], lr=p["lr"], betas=(p["beta1"], p["beta2"]), eps=p["eps"],
                            weight_decay=p["weight_decay"], foreach=False)
    for g in ins["grads"]:
        w.grad = torch.from_numpy(g.copy())
        opt.step()
    st = opt.state[w]
    for name, got in (("params", w), ("exp_avg", st["exp_avg"]), ("exp_avg_sq", st["exp_avg_sq"])):
        assert golden.compare(got.detach().numpy(), outs[name], e["compare"]) is None, name


def test_gemv_case_equals_a_dense_float64_product():
    e = next(e for e in manifest()["cases"] if e["name"] == "gemv_24_packed")
    ins, outs = golden.load_case(GOLDEN, e)
    v, meta = ins["values"].astype(np.float64), ins["meta"]
    out_f, half = v.shape
    w = np.zeros((out_f, 2 * half))
    for r in range(out_f):  # unpack the nibbles independently: group q's nibble = bits 4q..4q+3 of the row
        bits = int(sum(int(word) << (32 * j) for j, word in enumerate(meta[r])))
        for q in range(half // 2):
            nib = (bits >> (4 * q)) & 0xF
            w[r, 4 * q + (nib & 3)] += v[r, 2 * q]
            w[r, 4 * q + (nib >> 2)] += v[r, 2 * q + 1]
    np.testing.assert_allclose(outs["y"], ins["x"].astype(np.float64) @ w.T, rtol=1e-12, atol=1e-12)
