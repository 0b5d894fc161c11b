"""``nmref report``: mask, compress and account for a model-shaped set of weight matrices.

For every projection of a preset (random normal weights from a seeded generator), it computes the
2:4 magnitude mask, checks it, stores the weight in each format, checks every round trip, and
compares the measured bytes with :func:`nmref.compression_ratio`'s prediction.
"""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np

from ._checks import check_int
from .compress import (compress_24_bitmask, compress_24_cutlass, compress_nm, compression_ratio, decompress_24_bitmask,
                       decompress_24_cutlass, decompress_nm, decode_mask_enumerative, encode_mask_enumerative)
from .masks import is_nm_sparse, nm_mask, transposable_nm_mask
from .shapes import linear_shapes


def run_report(preset: str = "tiny", seed: int = 0, layers: int | None = None, *,
               progress: bool = False) -> tuple[str, bool]:
    """Return ``(markdown_table, all_checks_passed)``; ``layers`` (≥ 1) caps the layers counted per
    projection; ``progress`` shows a bar per projection shape on a terminal."""
    from tqdm import tqdm

    if layers is not None:
        layers = check_int("layers", layers, minimum=1)
    rng = np.random.default_rng(seed)
    rows, ok = [], True
    tot_dense = tot_cut = tot_bm = tot_enum = 0
    shapes = linear_shapes(preset)
    for name, (out_f, in_f), count in tqdm(shapes, desc=f"report {preset}", unit="shape",
                                           disable=None if progress else True):
        count = min(count, layers) if layers else count
        w = rng.standard_normal((out_f, in_f), dtype=np.float32).astype(np.float16)
        t0 = time.perf_counter()
        mask = nm_mask(w, 2, 4)
        t_mask = time.perf_counter() - t0
        ws = np.where(mask, w, np.float16(0))
        checks = [is_nm_sparse(ws, 2, 4)]
        cv, meta = compress_24_cutlass(ws, mask=mask)
        checks.append(np.array_equal(decompress_24_cutlass(cv, meta).view(np.uint16), ws.view(np.uint16)))
        bv, bm = compress_24_bitmask(w, mask=mask)
        checks.append(np.array_equal(decompress_24_bitmask(bv, bm, w.shape).view(np.uint16), ws.view(np.uint16)))
        gv, gi = compress_nm(w, 2, 4, mask=mask)
        checks.append(np.array_equal(decompress_nm(gv, gi, 2, 4).view(np.uint16), ws.view(np.uint16)))
        enum = encode_mask_enumerative(mask, 2, 4)
        checks.append(np.array_equal(decode_mask_enumerative(enum, mask.shape, 2, 4), mask))
        tmask = transposable_nm_mask(w[:256, :256])
        kept_t = float(np.abs(w[:256, :256].astype(np.float64))[tmask].sum() / np.abs(w[:256, :256].astype(np.float64))[mask[:256, :256]].sum())
        dense = w.size * 16
        cut, bmb, enb = (cv.nbytes + meta.nbytes) * 8, (bv.nbytes + bm.nbytes) * 8, (bv.nbytes + len(enum)) * 8
        checks.append(Fraction(cut, dense) == compression_ratio(2, 4, 16, 16, "index"))
        checks.append(Fraction(enb, dense) == compression_ratio(2, 4, 16, 16, "enumerative"))
        ok &= all(checks)
        tot_dense += dense * count
        tot_cut += cut * count
        tot_bm += bmb * count
        tot_enum += enb * count
        kept_mag = float(np.abs(w.astype(np.float64))[mask].sum() / np.abs(w.astype(np.float64)).sum())
        rows.append(f"| {name} | {out_f}×{in_f} | {count} | {t_mask * 1e3:.1f} | {kept_mag:.4f} | {kept_t:.4f} | "
                    f"{cut / dense:.4f} | {bmb / dense:.4f} | {enb / dense:.4f} | {'ok' if all(checks) else 'FAIL'} |")
    head = [
        f"nmref report — preset {preset}, seed {seed}, fp16 weights ~ N(0,1), 2:4 magnitude masks",
        "",
        "| layer | out×in | count | mask ms | kept Σ|w| share | transposable/plain Σ|w| (256² tile) | CUTLASS | bitmask | enumerative | checks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    foot = [
        "",
        f"Whole model, bits relative to dense fp16: CUTLASS values+metadata {tot_cut / tot_dense:.6f} "
        f"(formula {float(compression_ratio(2, 4, 16, 16, 'index')):.6f}), bitmask {tot_bm / tot_dense:.6f} "
        f"(formula {float(compression_ratio(2, 4, 16, 16, 'bitmask')):.6f}), enumerative {tot_enum / tot_dense:.6f} "
        f"(formula {float(compression_ratio(2, 4, 16, 16, 'enumerative')):.6f}).",
        f"All checks {'passed' if ok else 'FAILED'}: N:M validity, bitwise round trip of every format, measured = formula.",
    ]
    return "\n".join(head + rows + foot), ok
