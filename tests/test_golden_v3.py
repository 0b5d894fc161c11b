"""The released golden set v3: pinned, verifies with this nmref, covers every registered operation."""
import json
from pathlib import Path

import numpy as np

import nmref
import nmref.testing as nt
from nmref import golden

V3 = Path(__file__).resolve().parents[1] / "golden" / "v3"


def test_v3_verifies_matches_its_pin_and_covers_every_operation():
    assert golden.set_digest(V3) == golden.PINNED_DIGESTS[3]
    manifest = json.loads((V3 / "manifest.json").read_text())
    assert manifest["version"] == 3
    assert {c["op"] for c in manifest["cases"]} == set(nt.op_names())
    results = nmref.verify_golden(V3)
    assert [r for r in results if r[1] is not None] == []


def test_v3_gemm_layout_cases_hold_valid_nibbles_and_round_trip():
    manifest = json.loads((V3 / "manifest.json").read_text())
    cases = [c for c in manifest["cases"] if c["op"] == "compress_24_gemm"]
    assert {c["name"] for c in cases} >= {"compress_24_gemm_float16", "compress_24_gemm_bfloat16", "compress_24_gemm_mask"}
    for c in cases:
        with np.load(V3 / c["file"], allow_pickle=False) as z:
            meta = z["out_meta"]
        nib = (meta[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
        assert set(np.unique(nib).tolist()) <= {0x4, 0x8, 0xC, 0x9, 0xD, 0xE}
        assert c["compare"] == {"values": "exact", "meta": "exact"}
