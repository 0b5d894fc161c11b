"""N:M masks: magnitude / score masks, validity check, Wanda scores, transposable 2:4, flip rates.

Grouping convention (used by every function here): a *group* is ``m`` consecutive
elements along ``axis`` (default: the last axis, i.e. the input dimension of a
weight ``W[out, in]``). Groups never straddle rows: the length of ``axis`` must be
divisible by ``m``. See ``docs/masks.md`` for the semantic choices and where peers differ.
"""
from __future__ import annotations

import itertools

import numpy as np

from ._checks import (
    NMRefValueError,
    as_array,
    as_bool_array,
    as_float_array,
    as_real_array,
    check_axis,
    check_divisible,
    check_int,
    check_bool,
    check_nm,
    check_real_scalar,
    check_shape,
    grouped,
    is_float_dtype,
    tokens_2d,
    ungrouped,
)

__all__ = [
    "nm_mask",
    "is_nm_sparse",
    "wanda_scores",
    "transposable_nm_mask",
    "TRANSPOSABLE_24_PATTERNS",
    "flip_rate",
    "initial_flip_rate",
    "pad_to_multiple",
]

# Above this group size the O(m^2) pairwise rank is slower than a stable sort.
_PAIRWISE_MAX_M = 16


def _comparable(s: np.ndarray) -> np.ndarray:
    # 2-byte floats (float16, bfloat16) compare exactly after widening to float32,
    # and numpy compares float32 natively (float16 is emulated, bfloat16 is a user dtype).
    return s.astype(np.float32) if is_float_dtype(s.dtype) and s.dtype.itemsize == 2 else s


def _keep_top_n(g: np.ndarray, n: int) -> np.ndarray:
    """``g``: scores shaped (..., G, m). Keep the n largest of each group; ties keep the lower index.

    Equivalently: element i is kept iff its rank  r_i = #{j < i : s_j >= s_i} + #{j > i : s_j > s_i}
    is < n, i.e. the order is the total order on (-score, index).
    """
    m = g.shape[-1]
    if n == 0:
        return np.zeros(g.shape, dtype=bool)
    if n == m:
        return np.ones(g.shape, dtype=bool)
    if m <= _PAIRWISE_MAX_M:
        cols = [np.ascontiguousarray(g[..., i]) for i in range(m)]
        rank = [np.zeros(cols[0].shape, dtype=np.uint8) for _ in range(m)]
        for j in range(m):
            for i in range(j + 1, m):
                j_beats_i = cols[j] >= cols[i]  # j < i: a tie goes to the lower index j
                rank[i] += j_beats_i
                rank[j] += ~j_beats_i
        out = np.empty(g.shape, dtype=bool)
        for i in range(m):
            np.less(rank[i], n, out=out[..., i])
        return out
    # Stable ascending sort of the reversed group: among equal scores the higher original
    # index comes first, so the last n positions are the n largest with ties to the lower index.
    order = np.argsort(g[..., ::-1], axis=-1, kind="stable")[..., m - n:]
    out = np.zeros(g.shape, dtype=bool)
    np.put_along_axis(out, m - 1 - order, True, axis=-1)
    return out


def nm_mask(w: np.ndarray, n: int, m: int, *, axis: int = -1, scores: np.ndarray | None = None) -> np.ndarray:
    """Boolean N:M mask keeping the ``n`` largest scores in every group of ``m``.

    Definition: split ``axis`` into groups ``g`` of ``m`` consecutive elements; with
    ``s = |w|`` (or ``scores``), ``mask[i] = True`` iff ``rank_g(i) < n`` where
    ``rank_g(i) = #{j in g : s_j > s_i or (s_j == s_i and j < i)}``.

    * Exactly ``n`` entries are True in every group (also when the group holds zeros:
      ``w ⊙ mask`` then has ``min(n, nnz(group))`` nonzeros).
    * Ties keep the lower index (stable order on ``(-score, index)``); ``-0.0 == +0.0``.
    * ``+inf`` scores rank first, ``-inf`` last; NaN in ``w`` (when ``scores`` is None) or in
      ``scores`` raises :class:`NMRefValueError`.
    * ``n == 0`` gives all False, ``n == m`` all True. Empty arrays give an empty mask.

    Args:
        w: float16 / bfloat16 / float32 / float64 array, any number of dimensions.
        n, m: integers with ``0 <= n <= m``, ``m >= 1``.
        axis: grouped axis; ``w.shape[axis] % m`` must be 0.
        scores: optional real array of ``w``'s shape, used instead of ``|w|``.

    Returns:
        bool array of ``w``'s shape.
    """
    n, m = check_nm(n, m)
    w = as_float_array("w", w)
    axis = check_axis(axis, w.ndim)
    check_divisible("w", w.shape, axis, m)
    if scores is None:
        s, sname = np.abs(w), "w"
    else:
        s, sname = as_real_array("scores", scores), "scores"
        check_shape("scores", s, w.shape)
    s = _comparable(s)
    if is_float_dtype(s.dtype) and s.size and np.isnan(s).any():
        raise NMRefValueError(f"{sname} contains NaN; N:M ranking of NaN is undefined (expected no NaN)")
    if s.size == 0:
        return np.zeros(w.shape, dtype=bool)
    return ungrouped(_keep_top_n(grouped(s, axis, m), n), axis)


def is_nm_sparse(w: np.ndarray, n: int, m: int, *, axis: int = -1) -> bool:
    """True iff every group of ``m`` along ``axis`` has at most ``n`` nonzeros (NaN counts as nonzero).

    Accepts any numeric or bool array. Empty arrays are N:M sparse.
    """
    n, m = check_nm(n, m)
    w = as_array("w", w)
    axis = check_axis(axis, w.ndim)
    check_divisible("w", w.shape, axis, m)
    if w.size == 0:
        return True
    nz = grouped(w != 0, axis, m).sum(axis=-1)
    return bool((nz <= n).all())


def wanda_scores(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Wanda importance ``S_ij = |W_ij| · ‖X_{:, j}‖₂`` (Sun et al. 2023).

    ``w``: weight ``[out, in]``; ``x``: calibration inputs ``[..., in]`` (all leading axes are
    tokens). Norms and products are computed in float64; the result is float64 ``[out, in]``.
    Use with ``nm_mask(w, n, m, scores=wanda_scores(w, x))`` (groups along ``in``).
    """
    w = as_float_array("w", w)
    x = as_float_array("x", x)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D [out, in], got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise NMRefValueError(f"x must have shape [..., in] with in = w.shape[1] = {w.shape[1]}, got {x.shape}")
    if x.size == 0 and w.shape[1] > 0:
        raise NMRefValueError("x is empty: Wanda needs at least one calibration token")
    x64 = tokens_2d(x).astype(np.float64)
    col_norm = np.sqrt(np.einsum("tj,tj->j", x64, x64))
    return np.abs(w.astype(np.float64)) * col_norm[None, :]


def _transposable_patterns() -> np.ndarray:
    pairs = list(itertools.combinations(range(4), 2))  # (0,1),(0,2),(0,3),(1,2),(1,3),(2,3)
    pats = []
    for choice in itertools.product(range(6), repeat=4):  # lexicographic over rows
        block = np.zeros((4, 4), dtype=bool)
        for r, c in enumerate(choice):
            block[r, list(pairs[c])] = True
        if (block.sum(axis=0) == 2).all():
            pats.append((choice, block))
    return pats


_TPATS = _transposable_patterns()
#: The 90 transposable 2:4 patterns of a 4×4 block, in nmref's fixed (tie-breaking) order:
#: lexicographic in the tuple of per-row column pairs, pairs ordered (0,1),(0,2),(0,3),(1,2),(1,3),(2,3).
TRANSPOSABLE_24_PATTERNS = np.stack([b for _, b in _TPATS])
_TPAT_PAIR_IDX = np.array([c for c, _ in _TPATS], dtype=np.intp)  # (90, 4)


def transposable_nm_mask(w: np.ndarray, *, scores: np.ndarray | None = None, chunk_blocks: int = 1 << 16) -> np.ndarray:
    """Transposable 2:4 mask (Hu et al. 2024): 2 kept per row **and** per column of each 4×4 block.

    Blocks tile the last two axes (both divisible by 4). For each block the kept pattern P is
    the one of the 90 :data:`TRANSPOSABLE_24_PATTERNS` maximising ``Σ s ⊙ P`` with ``s = |w|``
    (or ``scores``). The sum is evaluated in float64 in a fixed order,
    ``((p_0 + p_1) + p_2) + p_3`` with ``p_r = s[r,a] + s[r,b]`` the chosen pair of row r, so the
    result is deterministic on every IEEE machine. Ties (equal float64 sums) go to the first
    pattern in the fixed order. NaN scores raise. Both ``mask`` and ``mask.T`` are 2:4 along rows.
    """
    w = as_float_array("w", w)
    if w.ndim < 2:
        raise NMRefValueError(f"w must have at least 2 dimensions, got shape {w.shape}")
    for ax in (-2, -1):
        check_divisible("w", w.shape, w.ndim + ax, 4)
    if scores is None:
        s = np.abs(w)
    else:
        s = as_real_array("scores", scores)
        check_shape("scores", s, w.shape)
    s = s.astype(np.float64)
    if s.size and np.isnan(s).any():
        raise NMRefValueError("scores (or |w|) contain NaN; expected no NaN")
    *lead, R, C = s.shape
    blocks = s.reshape(-1, R // 4, 4, C // 4, 4).transpose(0, 1, 3, 2, 4).reshape(-1, 4, 4)
    pairs = list(itertools.combinations(range(4), 2))
    best = np.empty(blocks.shape[0], dtype=np.intp)
    for lo in range(0, blocks.shape[0], chunk_blocks):
        b = blocks[lo:lo + chunk_blocks]
        p = np.stack([b[:, :, a] + b[:, :, c] for a, c in pairs], axis=-1)  # (B, 4 rows, 6 pairs)
        tot = p[:, 0, _TPAT_PAIR_IDX[:, 0]] + p[:, 1, _TPAT_PAIR_IDX[:, 1]]
        tot += p[:, 2, _TPAT_PAIR_IDX[:, 2]]
        tot += p[:, 3, _TPAT_PAIR_IDX[:, 3]]
        best[lo:lo + chunk_blocks] = np.argmax(tot, axis=1)  # argmax returns the first maximum
    mb = TRANSPOSABLE_24_PATTERNS[best]
    n_lead = int(np.prod(lead)) if lead else 1
    return mb.reshape(n_lead, R // 4, C // 4, 4, 4).transpose(0, 1, 3, 2, 4).reshape(w.shape)


def flip_rate(mask_new: np.ndarray, mask_old: np.ndarray) -> float:
    """Mask flip rate ``r = ‖m_new − m_old‖₁ / D`` (AST), D = number of elements.

    A swap inside a group counts 2 (one element leaves, one enters). Both masks bool, same shape,
    non-empty. Returns a Python float in [0, 1].
    """
    mask_new = as_bool_array("mask_new", mask_new)
    mask_old = as_bool_array("mask_old", mask_old)
    check_shape("mask_old", mask_old, mask_new.shape)
    if mask_new.size == 0:
        raise NMRefValueError("flip rate of empty masks is undefined (D = 0)")
    return float(np.count_nonzero(mask_new != mask_old)) / mask_new.size


def initial_flip_rate(mask_t: np.ndarray, mask_0: np.ndarray) -> float:
    """AST's initial flip rate ``i_t = ‖m(W_t) − m(W_0)‖₁ / D``: :func:`flip_rate` against the first mask."""
    return flip_rate(mask_t, mask_0)


def pad_to_multiple(w: np.ndarray, m: int, *, axis: int = -1, value: float = 0.0) -> np.ndarray:
    """Pad ``axis`` at its end with ``value`` up to the next multiple of ``m`` (explicit padding for partial groups).

    ``value`` is stored as it is: it must be exactly representable in ``w``'s dtype (``0.1`` cannot pad
    a float32 array, ``0.5`` an integer one, ``1e6`` a float16 one); ±inf pads a float array. A value
    that would be rounded raises ``NMRefValueError`` rather than padding with a different number."""
    m = check_int("m", m, minimum=1)
    w = as_array("w", w)
    axis = check_axis(axis, w.ndim)
    extra = (-w.shape[axis]) % m
    widths = [(0, 0)] * w.ndim
    widths[axis] = (0, extra)
    if w.dtype == np.bool_:
        value = check_bool("value", value)
    else:
        value = check_real_scalar("value", value)
        with np.errstate(over="ignore", invalid="ignore"):
            stored = np.array(value).astype(w.dtype)
        if float(stored) != value:
            raise NMRefValueError(f"value {value!r} is not exactly representable in w's dtype {w.dtype} (it would be "
                                  f"stored as {float(stored)!r}); pass a value of that dtype, e.g. numpy.{w.dtype}(value)")
        value = stored[()]
    return np.pad(w, widths, constant_values=value)
