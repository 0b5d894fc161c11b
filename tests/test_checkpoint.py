"""nmref check-checkpoint: N:M per tensor, the violating groups, the storage bytes (equal to what the
compressors produce), exit codes, JSON, and clear errors for malformed or truncated files."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import nmref
from nmref.checkpoint import check_checkpoint, storage_bytes
from nmref.cli import main as cli


def _weights(rng):
    w = rng.standard_normal((64, 128)).astype(np.float16)
    bad = nmref.masked_weight(w, nmref.nm_mask(w, 2, 4)).copy()
    bad[3, 8:12] = 1.0      # group 2 of row 3 keeps 4
    bad[40, 124:128] = 1.0  # group 31 of row 40
    return {"model.layers.0.mlp.up_proj.weight": nmref.masked_weight(w, nmref.nm_mask(w, 2, 4)),
            "model.layers.0.mlp.down_proj.weight": bad,
            "model.embed_tokens.weight": rng.standard_normal((10, 128)).astype(np.float16),
            "model.layers.0.input_layernorm.weight": np.ones(128, np.float16),
            "lm_head.weight": rng.standard_normal((10, 128)).astype(np.float16)}


@pytest.fixture
def files(tmp_path):
    from safetensors.numpy import save_file
    tensors = _weights(np.random.default_rng(0))
    st = tmp_path / "model.safetensors"
    save_file(tensors, str(st))
    npz = tmp_path / "model.npz"
    np.savez(npz, **tensors)
    return st, npz, tensors


@pytest.mark.parametrize("kind", [0, 1])
def test_reports_each_tensor(files, kind):
    path, tensors = files[kind], files[2]
    reps = {r.name: r for r in check_checkpoint(path)}
    assert set(reps) == set(tensors)
    up, down = reps["model.layers.0.mlp.up_proj.weight"], reps["model.layers.0.mlp.down_proj.weight"]
    assert up.nm and not up.failed and up.expected_sparse
    assert down.nm is False and down.failed and down.violating_groups == 2
    assert down.first_violations == [[3, 8], [40, 124]]  # row, first column of the violating group
    assert not reps["model.embed_tokens.weight"].expected_sparse and not reps["lm_head.weight"].expected_sparse
    assert not reps["model.layers.0.input_layernorm.weight"].expected_sparse


def test_storage_bytes_equal_the_compressors_output(files):
    w = files[2]["model.layers.0.mlp.up_proj.weight"]
    b = storage_bytes(w.shape, w.dtype, 2, 4)
    size = lambda *arrs: sum(a.nbytes for a in arrs)  # noqa: E731
    assert b["dense"] == w.nbytes
    assert b["generic"] == size(*nmref.compress_nm(w, 2, 4))
    assert b["packed"] == size(*nmref.compress_24_packed(w))
    assert b["cutlass"] == size(*nmref.compress_24_cutlass(w))
    assert b["bitmask"] == size(*nmref.compress_24_bitmask(w))
    mask = nmref.nm_mask(w, 2, 4)
    assert b["enumerative"] == nmref.compress_nm(w, 2, 4)[0].nbytes + len(nmref.encode_mask_enumerative(mask, 2, 4))
    b48 = storage_bytes((8, 64), np.float32, 4, 8)
    assert set(b48) == {"dense", "generic", "enumerative"}
    assert b48["enumerative"] == nmref.compress_nm(np.ones((8, 64), np.float32), 4, 8)[0].nbytes + \
        len(nmref.encode_mask_enumerative(nmref.nm_mask(np.ones((8, 64), np.float32), 4, 8), 4, 8))


def test_cli_exit_codes_and_json(files, capsys):
    st = files[0]
    assert cli(["check-checkpoint", str(st)]) == 1
    out = capsys.readouterr().out
    assert "FAIL model.layers.0.mlp.down_proj.weight" in out and "2 groups, first at [3, 8:12], [40, 124:128]" in out
    assert cli(["check-checkpoint", str(st), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is False and {t["name"] for t in rep["tensors"] if t["failed"]} == {"model.layers.0.mlp.down_proj.weight"}
    assert cli(["check-checkpoint", str(st), "--include", "up_proj"]) == 0
    assert "all 1 tensor(s) that should be 2:4 are" in capsys.readouterr().out
    assert cli(["check-checkpoint", str(st), "--include", "up_proj", "--pattern", "1:4"]) == 1
    capsys.readouterr()
    assert cli(["check-checkpoint", str(st), "--include", "up_proj", "--axis", "0"]) == 1  # columns are not 2:4


@pytest.mark.parametrize("damage, message", [
    ("garbage_header", "malformed or truncated safetensors"),
    ("truncated", "malformed or truncated safetensors"),
    ("huge_header_length", "malformed or truncated safetensors"),
    ("bad_json", "malformed or truncated safetensors"),
    ("npz_garbage", "not a readable .npz"),
    ("npz_pickle", "no pickles"),
    ("suffix", "expected a .safetensors or .npz"),
    ("missing", "does not exist"),
])
def test_malformed_files_are_clear_errors(tmp_path, files, damage, message, capsys):
    st = files[0]
    data = st.read_bytes()
    path = tmp_path / "bad.safetensors"
    if damage == "garbage_header":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif damage == "huge_header_length":
        path.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
    elif damage == "bad_json":
        hdr = b'{"w": {"dtype": "F16", "shape": [2, 4], "data_offsets": [0, 99]}}'
        path.write_bytes(struct.pack("<Q", len(hdr)) + hdr + b"\0" * 16)
    elif damage == "npz_garbage":
        path = tmp_path / "bad.npz"
        path.write_bytes(b"PK\x03\x04 not really a zip")
    elif damage == "npz_pickle":
        path = tmp_path / "bad.npz"
        np.savez(path, w=np.array([{"a": 1}], dtype=object))
    elif damage == "suffix":
        path = tmp_path / "model.bin"
        path.write_bytes(data)
    else:
        path = tmp_path / "absent.safetensors"
    assert cli(["check-checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [(["--pattern", "2-4"], "N:M"), (["--pattern", "0:4"], "keeps nothing"),
                                           (["--pattern", "5:4"], "n <= m"), (["--include", "("], "regular expression")])
def test_bad_options(files, argv, message, capsys):
    assert cli(["check-checkpoint", str(files[0]), *argv]) == 2
    assert message in capsys.readouterr().err
