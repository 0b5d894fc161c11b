"""Training-free activation sparsity (TEAL): thresholds, sparsification, greedy allocation, GEMV semantics.

Sparsifying a hidden state keeps the entries whose magnitude is *strictly* above a threshold:
``S_t(x) = x · 1[|x| > t]``, the comparison exact (between real numbers: ``t`` is never rounded to
``x``'s dtype) and a NaN activation kept (it propagates, never becomes 0). See
``docs/activation.md`` for the choices (|x| quantile rather than TEAL's symmetric signed CDF, strict
rule, rounding of the drop count, ties, NaN) and ``docs/semantics.md`` for the scalar rule.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._checks import (NMRefTypeError, NMRefValueError, as_bool_array, as_float_array, check_finite_scalar, check_int,
                      check_real_scalar, check_shape, tokens_2d)

__all__ = [
    "TEAL_PROJECTION_INPUTS", "exact_threshold", "ThresholdHistogram", "sparsify", "sparsify_batched",
    "sparsify_prefill", "GreedyStep", "greedy_block_allocation", "sparsities_at",
    "gemv_input_sparse", "gemv_output_sparse", "gemv_input_sparse_24", "gemv_input_sparse_24_packed_t",
]

#: Which hidden state each LLaMA-style projection reads (q/k/v share the attention input,
#: gate/up the MLP input; o and down have their own).
TEAL_PROJECTION_INPUTS = {"q": "attn_in", "k": "attn_in", "v": "attn_in", "o": "o_in",
                          "gate": "mlp_in", "up": "mlp_in", "down": "down_in"}


def _check_p(p) -> float:
    p = check_finite_scalar("p", p)
    if not 0.0 <= p <= 1.0:
        raise NMRefValueError(f"p (target sparsity) must lie in [0, 1], got {p}")
    return p


def _drop_count(p: float, n: int) -> int:
    return int(round(p * n))  # nearest count; immune to p·n = 28.999999999999996


def exact_threshold(x: np.ndarray, p: float) -> float:
    """Threshold ``t_p`` over all entries of ``x`` (calibration activations, any shape).

    With ``a_(1) ≤ … ≤ a_(N)`` the sorted magnitudes and ``D = round(p·N)`` the number to drop:
    ``t_p = a_(D)`` (so ``|x| > t_p`` keeps ``N − D`` entries when ``a_(D) < a_(D+1)``), and
    ``t_p = −inf`` for ``D = 0`` (keep everything). Ties at ``a_(D)`` are all dropped, so the achieved
    sparsity is ``≥ p`` and exceeds ``D/N`` only by the entries tied with the threshold.
    NaN raises; ``|±inf|`` is the largest magnitude.
    """
    p = _check_p(p)
    x = as_float_array("x", x, allow_nan=False)
    if x.size == 0:
        raise NMRefValueError("x (calibration activations) is empty; a threshold needs at least one value")
    a = np.abs(x.astype(np.float64, copy=False)).ravel()
    d = _drop_count(p, a.size)
    if d == 0:
        return float("-inf")
    return float(np.partition(a, d - 1)[d - 1])


@dataclass
class ThresholdHistogram:
    """Streaming |x| histogram for calibration sets that do not fit in memory.

    Each magnitude is rounded to float32 and bucketed by its top ``mantissa_bits`` mantissa bits
    (all float32 magnitudes, 0 and inf included, have a bucket: no range to guess). ``threshold(p)``
    returns the largest float32 of the bucket holding the exact threshold ``t`` of the same data,
    so **t ≤ t̂ ≤ t·(1 + 2^−mantissa_bits)** for normal ``t`` (t̂ − t < 2^(−149 + 23 − mantissa_bits)
    for subnormal t), and the sparsity achieved by ``t̂`` exceeds ``t``'s only by entries of that one
    bucket. Counts are int64 (no overflow before 9·10¹⁸ values).
    """

    mantissa_bits: int = 7
    counts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.mantissa_bits = check_int("mantissa_bits", self.mantissa_bits, minimum=0)
        if self.mantissa_bits > 15:
            raise NMRefValueError(f"mantissa_bits must be <= 15, got {self.mantissa_bits}")
        self._shift = 23 - self.mantissa_bits
        self.counts = np.zeros((0x7F800000 >> self._shift) + 1, dtype=np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def update(self, x: np.ndarray) -> "ThresholdHistogram":
        """Add a batch of activations (any shape). NaN raises."""
        x = as_float_array("x", x, allow_nan=False)
        keys = np.abs(x.astype(np.float32)).ravel().view(np.uint32) >> self._shift
        self.counts += np.bincount(keys, minlength=self.counts.size)
        return self

    def threshold(self, p: float) -> float:
        p = _check_p(p)
        n = self.total
        if n == 0:
            raise NMRefValueError("the histogram is empty: call update() with calibration activations first")
        d = _drop_count(p, n)
        if d == 0:
            return float("-inf")
        key = int(np.searchsorted(np.cumsum(self.counts), d))  # bucket holding the d-th smallest
        top_bits = np.uint32(min(((key + 1) << self._shift) - 1, 0x7F800000))
        return float(top_bits.view(np.float32))


def _check_t(t) -> float:
    return check_real_scalar("t (threshold)", t)  # ±Inf allowed: keep everything / nothing


def _kept(a: np.ndarray, t: float) -> np.ndarray:
    """``1[¬(a ≤ t)]``: ``a > t`` compared as real numbers, NaN counted as kept.

    ``a`` is widened to float64 first: every float16/bfloat16/float32 value is exactly a float64, so
    the comparison is exact whatever ``t`` is (NumPy ≥ 2 and ml_dtypes ≥ 0.7 would otherwise round
    ``t`` to ``a``'s dtype). Written as ``¬(a ≤ t)`` so that a NaN is kept and reaches the result."""
    return ~(a.astype(np.float64, copy=False) <= t)


def sparsify(x: np.ndarray, t: float) -> np.ndarray:
    """``x · 1[|x| > t]`` elementwise, ``|x| > t`` exact (``t`` is not rounded to ``x``'s dtype).

    Dropped entries become +0.0; kept entries keep their bits. A NaN entry is kept (NaN in, NaN out:
    the formula's ``NaN · 0`` is NaN, and no nmref op hides a NaN); ``t = +inf`` drops every
    non-NaN entry, ``t = −inf`` keeps everything."""
    x = as_float_array("x", x)
    t = _check_t(t)
    return np.where(_kept(np.abs(x), t), x, np.zeros((), x.dtype))


def sparsify_batched(x: np.ndarray, t: float) -> np.ndarray:
    """Batched decoding with one shared mask: ``s_j = 1[mean_b |x_bj| > t]``, ``x ⊙ s`` (x: ``[B, d]``).

    The batch mean is taken in float64 and compared exactly with ``t``. A column holding a NaN has a
    NaN mean and is kept (its NaN reaches the result); dropped entries become +0.0."""
    x = as_float_array("x", x)
    t = _check_t(t)
    if x.ndim != 2:
        raise NMRefValueError(f"x must be [batch, d], got shape {x.shape}")
    if x.shape[0] == 0:  # no tokens: nothing to keep (and no mean to take)
        return x.copy()
    keep = _kept(np.abs(x.astype(np.float64)).mean(axis=0), t)
    return np.where(keep[None, :], x, np.zeros((), x.dtype))


def prefill_start(seq: int) -> int:
    """TEAL's first sparsified prefill position: ``S − ⌊S/2⌋`` for ``S ≥ 2`` (its ``SparsifyFn``
    slices ``x[:, -(S // 2):]``, the last ⌊S/2⌋ positions: 2 of 5), and 0 for ``S ≤ 1`` (one token is
    decoding, which TEAL sparsifies whole)."""
    seq = check_int("seq", seq, minimum=0)
    return seq - seq // 2 if seq >= 2 else 0


def sparsify_prefill(x: np.ndarray, t: float, start: int | None = None) -> np.ndarray:
    """Prefill: :func:`sparsify` only positions ``≥ start`` of the sequence axis (``x[..., S, d]``);
    earlier positions are returned bit for bit.

    Default ``start = prefill_start(S)``, TEAL's rule: the last ⌊S/2⌋ positions for ``S ≥ 2`` (for odd
    S the middle position stays dense), the whole sequence for ``S = 1``. ``start ≥ S`` sparsifies
    nothing."""
    x = as_float_array("x", x)
    t = _check_t(t)
    if x.ndim < 2:
        raise NMRefValueError(f"x must be [..., seq, d], got shape {x.shape}")
    seq = x.shape[-2]
    start = prefill_start(seq) if start is None else check_int("start", start, minimum=0)
    out = x.copy()
    out[..., start:, :] = sparsify(x[..., start:, :], t)
    return out


# ------------------------------------------------------------------ greedy block-wise allocation
@dataclass(frozen=True)
class GreedyStep:
    """One point of the greedy path: per-projection sparsities, their parameter-weighted mean, error."""

    sparsities: dict
    total: float
    error: float


def _relative_error(y, y_dense) -> float:
    den = float(np.sum(np.square(y_dense.astype(np.float64))))
    num = float(np.sum(np.square(y.astype(np.float64) - y_dense)))
    return num / den if den > 0 else num


def greedy_block_allocation(block_fn, x_calib, param_counts: dict, *, step: float = 0.05, max_total: float = 1.0):
    """TEAL's greedy block-wise sparsity allocation for one block.

    ``block_fn(x_calib, sparsities: dict[str, float]) -> y`` evaluates the block with each projection
    sparsified to the given level (the caller maps a level to its threshold, e.g. with
    :func:`exact_threshold` on dense calibration activations). ``param_counts[proj]`` is the number of
    parameters of each projection; its share is ``w_i = P_i / Σ P``.

    Starting from all zeros, each move raises one projection ``i`` by ``Δ_i = step / w_i`` (capped
    at 1), so that every candidate raises the parameter-weighted mean sparsity by the same ``step``
    (less when capped); the move with the smallest relative block-output error
    ``‖y − y_dense‖² / ‖y_dense‖²`` on ``x_calib`` is kept (ties: first projection in
    ``param_counts`` order). Stops when the mean reaches ``max_total`` or no projection can move.
    Returns the path as a list of :class:`GreedyStep`, starting at the dense point.
    """
    if not callable(block_fn):
        raise NMRefTypeError(f"block_fn must be callable (x_calib, sparsities) -> y, got {type(block_fn).__name__}")
    if not isinstance(param_counts, dict):
        raise NMRefTypeError(f"param_counts must be a dict {{projection: parameter count}}, got {type(param_counts).__name__}")
    if not param_counts:
        raise NMRefValueError("param_counts is empty; expected {projection: parameter count}")
    for k, v in param_counts.items():
        check_int(f"param_counts[{k!r}]", v, minimum=1)
    step = check_finite_scalar("step", step)
    if not 0 < step <= 1:
        raise NMRefValueError(f"step must lie in (0, 1], got {step}")
    max_total = check_finite_scalar("max_total", max_total, minimum=0.0, maximum=1.0)
    total_params = sum(param_counts.values())
    share = {k: v / total_params for k, v in param_counts.items()}
    s = {k: 0.0 for k in param_counts}
    y_dense = np.asarray(block_fn(x_calib, dict(s)), dtype=np.float64)
    path = [GreedyStep(dict(s), 0.0, 0.0)]
    mean = 0.0
    while mean < max_total - 1e-12:
        best = None
        for k in param_counts:
            if s[k] >= 1.0:
                continue
            cand = dict(s)
            cand[k] = min(1.0, s[k] + step / share[k])
            err = _relative_error(np.asarray(block_fn(x_calib, cand)), y_dense)
            if best is None or err < best[0]:
                best = (err, cand)
        if best is None:
            break
        s = best[1]
        mean = sum(share[k] * s[k] for k in s)
        path.append(GreedyStep(dict(s), mean, best[0]))
    return path


def sparsities_at(path, target: float) -> dict:
    """Per-projection sparsities of the first path point whose mean reaches ``target`` (the last point
    if none does). ``target ∈ [0, 1]``."""
    target = check_finite_scalar("target", target, minimum=0.0, maximum=1.0)
    if not path:
        raise NMRefValueError("path is empty")
    for st in path:
        if st.total >= target - 1e-12:
            return dict(st.sparsities)
    return dict(path[-1].sparsities)


# ------------------------------------------------------------------ reference GEMV semantics
def _acc_dtype(*arrs):
    return np.float64 if any(a.dtype == np.float64 for a in arrs) else np.float32


def _gemv_kept(x, w, mask, t):
    """``y = (x ⊙ 1[|x| > t]) (W ⊙ M)ᵀ`` per token, reading only its kept inputs' columns (an Inf in a
    dropped column stays unread) and, with a ``mask``, only the weights ``M`` keeps (a pruned weight is
    absent: never multiplied). ``mask=None``: every weight."""
    acc = _acc_dtype(x, w)
    x2 = tokens_2d(x)
    y = np.empty((x2.shape[0], w.shape[0]), dtype=acc)
    for b in range(x2.shape[0]):
        keep = _kept(np.abs(x2[b]), t)
        if mask is None:
            y[b] = w[:, keep].astype(acc) @ x2[b, keep].astype(acc)
        else:
            prod = w[:, keep].astype(acc) * x2[b, keep].astype(acc)
            y[b] = np.where(mask[:, keep], prod, acc(0)).sum(axis=1)
    return y.reshape(x.shape[:-1] + (w.shape[0],))


def _check_gemv(x, w):
    x = as_float_array("x", x)
    w = as_float_array("w", w)
    if w.ndim != 2:
        raise NMRefValueError(f"w must be 2-D [out, in], got shape {w.shape}")
    if x.ndim not in (1, 2) or x.shape[-1] != w.shape[1]:
        raise NMRefValueError(f"x must be [in] or [batch, in] with in = w.shape[1] = {w.shape[1]}, got {x.shape}")
    return x, w


def gemv_input_sparse(x: np.ndarray, w: np.ndarray, t: float) -> np.ndarray:
    """``y = (x ⊙ 1[|x| > t]) Wᵀ`` for ``x[in]`` or ``x[batch, in]``, ``W[out, in]``.

    Semantics of a kernel that stores W column-major (``Wᵀ`` row-major, so a dropped input skips one
    contiguous column): only the kept columns are read, so a non-finite weight in a dropped column
    does not reach the result (``0 · Inf`` is never formed). Products and sums are float32 for
    float16/bfloat16/float32 inputs and float64 if any input is float64; the order of summation is
    unspecified (compare with a tolerance, or exactly on inputs whose sums are exact).
    For a batch the mask is per row (each token its own). ``|x| > t`` is exact and a NaN input is kept,
    as in :func:`sparsify`: it makes every output of its row NaN.
    """
    x, w = _check_gemv(x, w)
    return _gemv_kept(x, w, None, _check_t(t))


def gemv_input_sparse_batched(x: np.ndarray, w: np.ndarray, t: float) -> np.ndarray:
    """``y = (x ⊙ s) Wᵀ`` for a batch ``x[batch, in]`` with one mask shared by the batch,
    ``s_j = 1[mean_b |x_bj| > t]`` (:func:`sparsify_batched`: the mean in float64), ``W[out, in]``.

    The kernel this defines reads each kept column of W once for the whole batch (TEAL's batched
    decoding). ``x[in]`` is a batch of one (then ``s = 1[|x| > t]``, as :func:`gemv_input_sparse`).
    Only kept columns are read (a non-finite weight in a dropped column does not reach the result);
    products and sums as :func:`gemv_input_sparse` (float32, or float64 if an input is float64; order
    unspecified). An empty batch gives an empty result.
    """
    x, w = _check_gemv(x, w)
    t = _check_t(t)
    acc = _acc_dtype(x, w)
    x2 = tokens_2d(x)
    if x2.shape[0] == 0:
        return np.zeros(x.shape[:-1] + (w.shape[0],), dtype=acc)
    keep = _kept(np.abs(x2.astype(np.float64)).mean(axis=0), t)  # exactly sparsify_batched's mask
    y = x2[:, keep].astype(acc) @ w[:, keep].astype(acc).T
    return y.reshape(x.shape[:-1] + (w.shape[0],))


def gemv_output_sparse(x: np.ndarray, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``y = s ⊙ (x Wᵀ)``: only the outputs with ``s = True`` are computed, the others are +0.0."""
    x, w = _check_gemv(x, w)
    s = as_bool_array("s", s)
    check_shape("s", s, (w.shape[0],))
    acc = _acc_dtype(x, w)
    y = np.zeros(x.shape[:-1] + (w.shape[0],), dtype=acc)
    y[..., s] = x.astype(acc) @ w[s].astype(acc).T
    return y


def gemv_input_sparse_24(x: np.ndarray, w: np.ndarray, mask: np.ndarray, t: float) -> np.ndarray:
    """``y = (x ⊙ 1[|x| > t]) (W ⊙ M)ᵀ``: activation sparsity on a 2:4 (or any masked) weight.

    A sparse kernel reads only the weights ``M`` keeps: a pruned weight is absent, not a zero, so a
    kept non-finite activation ``x_j`` reaches exactly the outputs ``i`` with ``M_ij`` (a NaN makes
    those outputs NaN; ``Inf · 0`` is never formed with a pruned weight). Products and sums as
    :func:`gemv_input_sparse` (float32, or float64 if an input is float64; order unspecified)."""
    x, w = _check_gemv(x, w)
    mask = as_bool_array("mask", mask)
    check_shape("mask", mask, w.shape)
    return _gemv_kept(x, w, mask, _check_t(t))


def gemv_input_sparse_24_packed_t(x: np.ndarray, values_t: np.ndarray, meta_t: np.ndarray, t: float) -> np.ndarray:
    """:func:`gemv_input_sparse_24` on a weight in the transposed packed 2:4 layout
    (:func:`nmref.compress_24_packed_t`), the layout of the GPU kernel that skips dropped inputs; the
    weights it reads are the stored slots (``M`` = the positions the metadata names, zero values included).

    A kernel needs slot 0 of group ``g`` (``i0 ∈ {0,1,2}``) only if one of ``x[4g..4g+2]`` is kept,
    slot 1 (``i1 ∈ {1,2,3}``) only if one of ``x[4g+1..4g+3]`` is, and the group's metadata if either:
    with independent drops at rate ``p`` that is ``1 − p³`` of each slot's bytes, so the byte
    savings of the two sparsities do not multiply (see ``docs/activation.md``)."""
    from .compress.packed import decompress_24_packed_t
    w = decompress_24_packed_t(values_t, meta_t)
    stored = decompress_24_packed_t(np.ones(np.shape(values_t), np.float32), meta_t) != 0
    x, w = _check_gemv(x, w)
    return _gemv_kept(x, w, stored, _check_t(t))
