"""nmref_gpu kernels against nmref, on fresh random inputs; skipped without CuPy and a CUDA GPU."""
import importlib
import os

import numpy as np
import pytest

import nmref
from nmref import AdamHyper, AdamState, init_adam_state

from gpu_skip import require_gpu

cp = require_gpu()
import nmref_gpu  # noqa: E402

if os.environ.get("NMREF_GPU_NO_POOL"):  # under compute-sanitizer: one cudaMalloc per array, so any
    cp.cuda.set_allocator(None)           # out-of-bounds access leaves its allocation and is reported

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def poison_pool():
    """Fill freed pool memory with 0xAB so an output element a kernel forgets to write fails (without
    the pool, under compute-sanitizer, fresh allocations are never reused, and the sanitizer finds
    unwritten reads itself)."""
    if not os.environ.get("NMREF_GPU_NO_POOL"):
        cp.full(256 << 20, 0xAB, dtype=cp.uint8)  # freed at once: the pool now holds poisoned blocks
    yield


def rand(rng, shape, dtype, ties=False):
    x = rng.integers(-3, 4, size=shape).astype(np.float32) if ties else rng.standard_normal(shape).astype(np.float32)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("m", range(1, 9))
@pytest.mark.parametrize("ties", [False, True])
def test_nm_mask_equals_nmref(dtype, m, ties):
    rng = np.random.default_rng(m)
    for n in range(m + 1):
        w = rand(rng, (int(rng.integers(1, 9)), m * int(rng.integers(1, 40))), dtype, ties)
        np.testing.assert_array_equal(nmref_gpu.nm_mask(cp.asarray(w), n, m).get(), nmref.nm_mask(w, n, m))
    w = rand(rng, (m * 3, 5), dtype, ties)
    np.testing.assert_array_equal(nmref_gpu.nm_mask(cp.asarray(w), 1, m, axis=0).get(), nmref.nm_mask(w, 1, m, axis=0))


def test_nm_mask_nan_and_errors():
    with pytest.raises(nmref.NMRefValueError, match="w contains NaN"):
        nmref_gpu.nm_mask(cp.asarray(np.array([[1, np.nan, 2, 3]], np.float32)), 2, 4)
    with pytest.raises(nmref.NMRefValueError, match="m <= 8"):
        nmref_gpu.nm_mask(cp.ones((1, 16), cp.float32), 2, 16)
    with pytest.raises(nmref.NMRefTypeError, match="cupy.ndarray"):
        nmref_gpu.nm_mask(np.ones((1, 4), np.float32), 2, 4)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 32), (7, 96), (129, 4096), (3, 8224)])
def test_compress_24_packed_equals_nmref(dtype, shape):
    rng = np.random.default_rng(shape[0])
    for ties in (False, True):
        w = rand(rng, shape, dtype, ties)
        v, m = nmref_gpu.compress_24_packed(cp.asarray(w))
        rv, rm = nmref.compress_24_packed(w)
        np.testing.assert_array_equal(v.get().view(np.uint8), rv.view(np.uint8))
        np.testing.assert_array_equal(m.get(), rm)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_compress_24_packed_t_equals_nmref(dtype):
    rng = np.random.default_rng(5)
    for shape, ties in [((8, 32), False), ((24, 96), True), ((1032, 4096), False)]:
        w = rand(rng, shape, dtype, ties)
        v, m = nmref_gpu.compress_24_packed_t(cp.asarray(w))
        rv, rm = nmref.compress_24_packed_t(w)
        np.testing.assert_array_equal(v.get().view(np.uint8), rv.view(np.uint8))
        np.testing.assert_array_equal(m.get(), rm)
    with pytest.raises(nmref.NMRefValueError, match="rows divisible by 8"):
        nmref_gpu.compress_24_packed_t(cp.ones((12, 32), cp.float16))


def test_refresh_mask_equals_nmref():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((33, 64)).astype(np.float32)
    old = nmref.nm_mask(rng.standard_normal((33, 64)).astype(np.float32), 2, 4)
    new, flips = nmref_gpu.refresh_mask(cp.asarray(w), cp.asarray(old))
    rnew, rflips = nmref.refresh_mask(w, old, 2, 4)
    np.testing.assert_array_equal(new.get(), rnew)
    assert flips == rflips


def rel_err(y, ref):
    return float(np.linalg.norm(y.astype(np.float64) - ref) / np.linalg.norm(ref))


def assert_close_or_zero(y, ref):
    """Within float32 rounding of the float64 ``ref`` (relative error < 1e-5); exactly zero where ``ref``
    is all zero (every input dropped), where a relative error is undefined."""
    assert rel_err(y, ref) < 1e-5 if np.linalg.norm(ref) else np.abs(y).max() == 0


kernels = importlib.import_module("nmref_gpu.kernels")
#: every GEMV configuration the rule can pick, and None: the rule's choice for the call
GEMV_VARIANTS = [*dict.fromkeys(c for table in kernels.GEMV_RULE.values() for row in table.values() for c in row), None]


def _bf16_or_skip():
    import ml_dtypes
    try:
        cp.asarray(np.zeros(8, dtype=ml_dtypes.bfloat16))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"CuPy has no bfloat16 arrays here: {e}")
    return np.dtype(ml_dtypes.bfloat16)


def _vid(v):
    return v.short().replace(" ", "_") if v is not None else "rule"


@pytest.mark.parametrize("batch", [1, 3, 4, 9, 16])
@pytest.mark.parametrize("shape", [(96, 256), (1000, 4096), (4098, 520), (17, 8), (40, 640)])
@pytest.mark.parametrize("variant", GEMV_VARIANTS, ids=_vid)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gemv_dense_and_24(batch, shape, variant, dtype):
    dt = np.dtype(np.float16) if dtype == "float16" else _bf16_or_skip()
    rng = np.random.default_rng(batch)
    out_f, in_f = shape
    w = rand(rng, shape, dt)
    x = rand(rng, (batch, in_f), dt)
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    out = cp.full((batch, out_f), np.nan, dtype=cp.float32)  # a poisoned preallocated result
    y = nmref_gpu.gemv(cp.asarray(x), cp.asarray(w), out=out, variant=variant).get()
    assert rel_err(y, ref) < 1e-5
    if in_f % 32 == 0:
        vals, meta = nmref.compress_24_packed(w)
        ws = nmref.decompress_24_packed(vals, meta)
        ref24 = x.astype(np.float64) @ ws.astype(np.float64).T
        y = nmref_gpu.gemv_24_packed(cp.asarray(x), cp.asarray(vals), cp.asarray(meta), variant=variant).get()
        assert rel_err(y, ref24) < 1e-5
        out = cp.full((batch, out_f), np.nan, dtype=cp.float32)  # a poisoned preallocated result
        nmref_gpu.gemv_24_packed(cp.asarray(x), cp.asarray(vals), cp.asarray(meta), out=out, variant=variant)
        assert rel_err(out.get(), ref24) < 1e-5


@pytest.mark.parametrize("batch", [3, 16])
def test_gemv_mma_configurations_differ_only_in_speed(batch):
    """The load policy (plain, L2-prefetching, predicated) and the pipeline depth change when bytes
    arrive, not the arithmetic: configurations with the same warps per block and accumulator chains
    must give bit-identical results (a K tail and rows past a tile's end included)."""
    M = kernels.MmaConfig
    rng = np.random.default_rng(7)
    out_f, in_f = 1000, 4160  # 62.5 row tiles; 65 super-steps, not a multiple of any warp count
    w = rand(rng, (out_f, in_f), np.float16)
    x = cp.asarray(rand(rng, (batch, in_f), np.float16))
    vals, meta = (cp.asarray(a) for a in nmref.compress_24_packed(w))
    wd = cp.asarray(w)
    groups = [[M(8, 1), M(8, 2, True), M(8, 3, predicated=True), M(8, 2, True, predicated=True)],
              [M(4, 1, True, 2), M(4, 2, False, 2, True), M(4, 3, True, 2)]]
    for vs in groups:
        for call in (lambda v: nmref_gpu.gemv(x, wd, variant=v), lambda v: nmref_gpu.gemv_24_packed(x, vals, meta, variant=v)):
            ys = [call(v).get() for v in vs]
            for v, y in zip(vs[1:], ys[1:]):
                assert np.array_equal(y, ys[0]), (vs[0], v)


def test_gemv_input_errors():
    w = cp.asarray(np.ones((16, 64), np.float16))
    with pytest.raises(nmref.NMRefValueError, match="x starts at a device address that is not 16-byte aligned"):
        nmref_gpu.gemv(cp.zeros(65, cp.float16)[1:], w)  # C-contiguous, but 2 bytes into a vector
    with pytest.raises(nmref.NMRefValueError, match="w starts at a device address"):
        nmref_gpu.gemv(cp.zeros(64, cp.float16), cp.zeros(16 * 64 + 1, cp.float16)[1:].reshape(16, 64))
    with pytest.raises(nmref.NMRefValueError, match="batch must be 1..16"):
        nmref_gpu.gemv(cp.zeros((17, 64), cp.float16), w)
    with pytest.raises(nmref.NMRefTypeError, match="variant must be None or a nmref_gpu.kernels.MmaConfig"):
        nmref_gpu.gemv(cp.zeros(64, cp.float16), w, variant=("mma", 3, 2))
    with pytest.raises(ValueError, match="not a gemv_mma configuration"):
        kernels.MmaConfig(3, 2)
    vals, meta = nmref.compress_24_packed(np.ones((16, 64), np.float16))
    with pytest.raises(nmref.NMRefValueError, match="values starts at a device address"):
        nmref_gpu.gemv_24_packed(cp.zeros(64, cp.float16), cp.zeros(16 * 32 + 1, cp.float16)[1:].reshape(16, 32),
                                 cp.asarray(meta))


def test_vector_kernels_reject_misaligned_views():
    """Every kernel that reads 16-byte (or 4-byte mask) vectors refuses a view that starts mid-vector."""
    def shifted(shape, dtype):  # C-contiguous, one element past a 16-byte boundary
        n = int(np.prod(shape))
        return cp.zeros(n + 1, dtype)[1:].reshape(shape)
    msg = "starts at a device address that is not {}-byte aligned"
    with pytest.raises(nmref.NMRefValueError, match="w " + msg.format(16)):
        nmref_gpu.compress_24_packed(shifted((8, 32), cp.float32))
    with pytest.raises(nmref.NMRefValueError, match="w " + msg.format(16)):
        nmref_gpu.refresh_mask(shifted((8, 32), cp.float32), cp.zeros((8, 32), cp.bool_))
    with pytest.raises(nmref.NMRefValueError, match="mask_old " + msg.format(4)):
        nmref_gpu.refresh_mask(cp.zeros((8, 32), cp.float32), shifted((8, 32), cp.bool_))
    with pytest.raises(nmref.NMRefValueError, match="w " + msg.format(16)):
        nmref_gpu.gemv_input_sparse(cp.zeros(32, cp.float16), shifted((32, 16), cp.float16).T, 0.5)
    with pytest.raises(nmref.NMRefValueError, match="values_t " + msg.format(16)):
        nmref_gpu.gemv_input_sparse_24_packed_t(cp.zeros(64, cp.float16), shifted((32, 16), cp.float16),
                                                cp.zeros((16, 2), cp.uint32), 0.5)
    with pytest.raises(nmref.NMRefValueError, match="x " + msg.format(8)):
        nmref_gpu.gemv_input_sparse_24_packed_t(shifted((64,), cp.float16), cp.zeros((32, 16), cp.float16),
                                                cp.zeros((16, 2), cp.uint32), 0.5)


def _teal_tickets_whole():
    """Every call takes exactly one ticket per input chunk from each output tile's counter."""
    state = importlib.import_module("nmref_gpu.gemv")._TEAL_STATE  # the module (nmref_gpu.gemv is also a function)
    return all((tick % nchunks == 0).all() for (_, _, _, nchunks, _, _), (tick, _) in state.items())


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.65, 0.99])
@pytest.mark.parametrize("shape", [(4096, 4096), (1032, 520), (264, 300)])
@pytest.mark.parametrize("variant, deterministic", [(None, False), (kernels.TealConfig(512), False),
                                                    (kernels.TealConfig(256, 8), False), (None, True),
                                                    (kernels.TealConfig(512, 2), True),
                                                    (kernels.TealConfig(256, 2, mma=True), False),
                                                    (kernels.TealConfig(512, 1, mma=True), True)], ids=str)
def test_gemv_input_sparse_equals_nmref(p, shape, variant, deterministic):
    rng = np.random.default_rng(int(p * 100))
    w = rand(rng, shape, np.float16)
    x = rand(rng, shape[1], np.float16)
    t = nmref.exact_threshold(x, p)
    xd, wd = cp.asarray(x), cp.asfortranarray(cp.asarray(w))
    kw = dict(variant=variant, deterministic=deterministic)
    out = cp.full(shape[0], np.nan, dtype=cp.float32)  # poisoned: every output must be written
    y = nmref_gpu.gemv_input_sparse(xd, wd, t, out=out, **kw).get()
    ref = nmref.sparsify(x, t).astype(np.float64) @ w.astype(np.float64).T
    assert_close_or_zero(y, ref)
    r0 = rng.standard_normal(shape[0]).astype(np.float32)  # a residual stream: out += product
    out = cp.asarray(r0)
    nmref_gpu.gemv_input_sparse(xd, wd, t, out=out, accumulate=True, **kw)
    assert rel_err(out.get(), r0 + ref) < 1e-5
    if deterministic:  # chunk-ordered sums: bitwise reproducible, and accumulate = r0 + (the same sum)
        np.testing.assert_array_equal(out.get(), r0 + y)
        for _ in range(3):
            np.testing.assert_array_equal(nmref_gpu.gemv_input_sparse(xd, wd, t, **kw).get(), y)
    assert _teal_tickets_whole()
    with pytest.raises(nmref.NMRefValueError, match="column-major"):
        nmref_gpu.gemv_input_sparse(cp.asarray(x), cp.asarray(w), t)
    with pytest.raises(nmref.NMRefValueError, match="accumulate=True adds into out"):
        nmref_gpu.gemv_input_sparse(cp.asarray(x), cp.asfortranarray(cp.asarray(w)), t, accumulate=True)
    with pytest.raises(nmref.NMRefValueError, match="gemv_input_sparse_batched"):
        nmref_gpu.gemv_input_sparse(cp.asarray(np.stack([x, x])), wd, t)


@pytest.mark.parametrize("deterministic", [False, True])
def test_gemv_input_sparse_in_cuda_graph(deterministic):
    """The tickets only grow, so a captured call replays correctly: new x each replay, same buffers."""
    rng = np.random.default_rng(5)
    w = rand(rng, (1032, 1000), np.float16)
    wd = cp.asfortranarray(cp.asarray(w))
    xd = cp.zeros(1000, dtype=cp.float16)
    out = cp.zeros(1032, dtype=cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        nmref_gpu.gemv_input_sparse(xd, wd, 0.5, out=out, deterministic=deterministic)  # allocates the state
        stream.begin_capture()
        for _ in range(2):  # two calls per replay on the same counters
            nmref_gpu.gemv_input_sparse(xd, wd, 0.5, out=out, deterministic=deterministic)
        graph = stream.end_capture()
        for _ in range(3):
            x = rand(rng, 1000, np.float16)
            xd.set(x)
            out.fill(np.nan)
            graph.launch(stream)
            stream.synchronize()
            ref = nmref.sparsify(x, 0.5).astype(np.float64) @ w.astype(np.float64).T
            assert rel_err(out.get(), ref) < 1e-5
    assert _teal_tickets_whole()


def test_teal_fresh_results_back_to_back():
    """A fresh TEAL result (zero fill, then atomics) is right on every call of a run of 12 back-to-back
    calls on both kernels, each with new inputs and a NaN-poisoned output, checked only at the end: from
    tiles whose chunks are all empty (p = 0.99) to none (p = 0)."""
    rng = np.random.default_rng(11)
    shape = (1032, 1040)  # 5 output tiles (the last partial) × 3–5 input chunks
    w = rand(rng, shape, np.float16)
    wd = cp.asfortranarray(cp.asarray(w))
    vt, mt = nmref.compress_24_packed_t(w)
    w24 = nmref.decompress_24_packed_t(vt, mt).astype(np.float64)
    vtd, mtd = cp.asarray(vt), cp.asarray(mt)
    calls = []
    for i, p in enumerate([0.0, 0.25, 0.5, 0.65, 0.9, 0.99] * 2):
        x = rand(rng, shape[1], np.float16)
        t = nmref.exact_threshold(x, p)
        xs = nmref.sparsify(x, t).astype(np.float64)
        outs = [cp.full(shape[0], np.nan, dtype=cp.float32) for _ in range(2)]
        nmref_gpu.gemv_input_sparse(cp.asarray(x), wd, t, out=outs[0], variant=kernels.TealConfig((256, 512)[i % 2]))
        nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), vtd, mtd, t, out=outs[1],
                                                variant=kernels.TealConfig(256, (4, 8)[i % 2]))
        calls.append((outs, xs @ w.astype(np.float64).T, xs @ w24.T))
    for outs, ref, ref24 in calls:
        for out, r in zip(outs, (ref, ref24)):
            assert_close_or_zero(out.get(), r)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_compress_24_mma_equals_nmref(dtype):
    rng = np.random.default_rng(7)
    for shape, ties in [((16, 64), False), ((17, 128), True), ((1000, 4096), False)]:
        w = rand(rng, shape, dtype, ties)
        v, m = nmref_gpu.compress_24_mma(cp.asarray(w))
        rv, rm = nmref.compress_24_mma(w)
        np.testing.assert_array_equal(v.get().view(np.uint8), rv.view(np.uint8))
        np.testing.assert_array_equal(m.get(), rm)


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.65, 0.9, 0.99])
@pytest.mark.parametrize("shape", [(4096, 4096), (1032, 520), (264, 300), (8, 4)])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gemv_input_sparse_24_packed_t_equals_nmref(p, shape, dtype):
    dt = np.dtype(np.float16) if dtype == "float16" else _bf16_or_skip()
    rng = np.random.default_rng(int(p * 100) + shape[1])
    w = rand(rng, shape, dt)
    x = rand(rng, shape[1], dt)
    x[: shape[1] // 4] = x[0]  # ties at the threshold in the first quarter
    t = nmref.exact_threshold(x, p)
    vt, mt = nmref.compress_24_packed_t(w)
    ref = nmref.gemv_input_sparse_24_packed_t(x.astype(np.float64), vt.astype(np.float64), mt, t)
    args = (cp.asarray(x), cp.asarray(vt), cp.asarray(mt), t)
    for variant in (kernels.TealConfig(256, 4), kernels.TealConfig(256, 8)):
        for det in (False, True):
            out = cp.full(shape[0], np.nan, dtype=cp.float32)  # poisoned: every output must be written
            y = nmref_gpu.gemv_input_sparse_24_packed_t(*args, out=out, variant=variant, deterministic=det).get()
            assert_close_or_zero(y, ref)
            r0 = rng.standard_normal(shape[0]).astype(np.float32)
            out = cp.asarray(r0)
            nmref_gpu.gemv_input_sparse_24_packed_t(*args, out=out, variant=variant, accumulate=True,
                                                    deterministic=det)
            assert rel_err(out.get(), r0 + ref) < 1e-5
            if det:
                np.testing.assert_array_equal(out.get(), r0 + y)
                for _ in range(2):
                    np.testing.assert_array_equal(
                        nmref_gpu.gemv_input_sparse_24_packed_t(*args, variant=variant, deterministic=True).get(), y)
    assert _teal_tickets_whole()
    with pytest.raises(nmref.NMRefValueError, match="transposed packed"):
        nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), cp.asarray(vt[:, :-1]), cp.asarray(mt), t)
    with pytest.raises(nmref.NMRefValueError, match="NaN"):
        nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), cp.asarray(vt), cp.asarray(mt), float("nan"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gemv_input_sparse_24_packed_t_every_pair_in_every_nibble(dtype):
    """The kernel picks each output's pair (x[i0], x[i1]) from its nibble by byte permutes: every one of the
    6 kept pairs at every nibble position 0..7 of a metadata word, inputs ±2^e (a wrong pick changes the
    exact result), at thresholds that keep all inputs, drop one, skip one value slot of a group, skip groups."""
    dt = np.dtype(np.float16) if dtype == "float16" else _bf16_or_skip()
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    out_f, groups = 48, 24
    w = np.zeros((out_f, 4 * groups), np.float32)
    for o in range(out_f):
        for g in range(groups):
            i0, i1 = pairs[(o + g + o // 8) % 6]
            w[o, 4 * g + i0], w[o, 4 * g + i1] = 1 + (o % 7) / 8, -1 - (g % 5) / 8
    w = w.astype(dt)
    seen = {(o % 8, pairs[(o + g + o // 8) % 6]) for o in range(out_f) for g in range(groups)}
    assert len(seen) == 8 * 6
    k = np.arange(4 * groups)
    # exponents by k % 8: even groups 2^3, 2^-4, 2^-3, 2^-2; odd groups 2^-1, 2^0, 2^1, 2^2
    x = ((-1.0) ** k * 2.0 ** np.array([3, -4, -3, -2, -1, 0, 1, 2])[k % 8]).astype(dt)
    vt, mt = nmref.compress_24_packed_t(w)
    # all kept; 2^-4 dropped; only input 0 of even groups (slot 1 skipped) and input 3 of odd ones (slot 0
    # skipped) kept; only input 0 of even groups kept, odd groups skipped whole
    for t in (-1.0, 2.0 ** -3.5, 2.0 ** 1.5, 2.0 ** 2.5):
        ref = nmref.gemv_input_sparse_24_packed_t(x.astype(np.float64), vt.astype(np.float64), mt, t)
        for variant in (kernels.TealConfig(256, 4), kernels.TealConfig(256, 8)):
            out = cp.full(out_f, np.nan, dtype=cp.float32)
            y = nmref_gpu.gemv_input_sparse_24_packed_t(cp.asarray(x), cp.asarray(vt), cp.asarray(mt), t, out=out,
                                                        variant=variant)
            np.testing.assert_array_equal(y.get(), ref.astype(np.float32))


@pytest.mark.parametrize("kind", ["ast_update", "ast_gradient", "adams", "adams_in_gradient", "adams_update"])
def test_fused_optimizers_bitwise_equal_nmref(kind):
    rng = np.random.default_rng(1)
    p = rng.standard_normal((64, 96)).astype(np.float32)
    mask = nmref.nm_mask(p, 2, 4)
    h = AdamHyper(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    cst, st = AdamState(0, cp.zeros_like(cp.asarray(p)), cp.zeros_like(cp.asarray(p))), init_adam_state(p)
    cpp = cp.asarray(p)
    for _ in range(5):
        g = rng.standard_normal(p.shape).astype(np.float32)
        if kind.startswith("ast"):
            kw = dict(mask=mask, lam=0.3, second_moment=kind.split("_")[1])
            p, st = nmref.ast_adamw_step(p, g, st, h, **kw)
            cpp, cst = nmref_gpu.ast_adamw_step(cpp, cp.asarray(g), cst, h, **{**kw, "mask": cp.asarray(mask)})
        else:
            kw = dict(mask=mask, lam=0.3, ramp_steps=3,
                      placement="in_gradient" if kind == "adams_in_gradient" else "after_momentum",
                      **({} if kind == "adams_in_gradient" else
                         {"second_moment": "update" if kind == "adams_update" else "gradient"}))
            p, st = nmref.adams_step(p, g, st, h, **kw)
            cpp, cst = nmref_gpu.adams_step(cpp, cp.asarray(g), cst, h, **{**kw, "mask": cp.asarray(mask)})
        np.testing.assert_array_equal(cpp.get().view(np.uint32), p.view(np.uint32))
        np.testing.assert_array_equal(cst.exp_avg_sq.get().view(np.uint32), st.exp_avg_sq.view(np.uint32))


GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden", "v1")


@pytest.mark.parametrize("name", ["compress_24_packed", "compress_24_packed_t", "compress_24_mma", "nm_mask_2_4",
                                  "nm_mask_1_4", "nm_mask_4_8", "nm_mask_3_8_axis0", "nm_mask_2_4_edge",
                                  "gemv_24_packed"])
def test_golden_cases_on_gpu(name):
    """The frozen golden vectors hold for the GPU kernels too (formats and masks bitwise; the GEMV within
    float32 accumulation of the float64 reference)."""
    import json
    from nmref import golden
    m = json.load(open(os.path.join(GOLDEN, "manifest.json")))
    e = next(e for e in m["cases"] if e["name"] == name)
    ins, outs = golden.load_case(GOLDEN, e)
    if name.startswith("compress"):
        got = getattr(nmref_gpu, name)(cp.asarray(ins["w"]))
        names = {"compress_24_packed": ("values", "meta"), "compress_24_packed_t": ("values_t", "meta_t"),
                 "compress_24_mma": ("values", "meta_mma")}[name]
        for k, g in zip(names, got):
            assert golden.compare(cp.asnumpy(g), outs[k], "exact") is None, k
    elif name.startswith("nm_mask"):
        p = e["params"]
        got = nmref_gpu.nm_mask(cp.asarray(ins["w"]), p["n"], p["m"], axis=p.get("axis", -1))
        assert golden.compare(cp.asnumpy(got), outs["mask"], "exact") is None
    else:
        y = nmref_gpu.gemv_24_packed(cp.asarray(ins["x"]), cp.asarray(ins["values"]), cp.asarray(ins["meta"]))
        assert rel_err(cp.asnumpy(y), outs["y"]) < 1e-5


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_masks_order_subnormals(dtype):
    """CuPy compiles with -ftz=true; the mask kernels compare magnitudes as integers so subnormals still
    outrank zero and order among themselves exactly as in nmref."""
    dt = np.dtype(dtype) if dtype != "bfloat16" else _bf16_or_skip()
    import ml_dtypes
    tiny = float(ml_dtypes.finfo(dt).smallest_subnormal)
    rng = np.random.default_rng(3)
    w = (rng.integers(-3, 4, size=(64, 32)) * float(tiny)).astype(dt)
    w[::5, 1] = np.inf
    for n, m in ((2, 4), (1, 4), (3, 8)):
        assert np.array_equal(nmref_gpu.nm_mask(cp.asarray(w), n, m).get(), nmref.nm_mask(w, n, m))
    vals, meta = nmref_gpu.compress_24_packed(cp.asarray(w))
    rv, rm = nmref.compress_24_packed(w)
    assert np.array_equal(meta.get(), rm) and np.array_equal(vals.get().view(np.uint8), rv.view(np.uint8))
    if dtype == "float32":
        old = nmref.nm_mask(rng.standard_normal(w.shape), 2, 4)
        got, flips = nmref_gpu.refresh_mask(cp.asarray(w), cp.asarray(old))
        ref, rflips = nmref.refresh_mask(w, old, 2, 4)
        assert np.array_equal(got.get(), ref) and flips == rflips


def test_programmatic_launch_is_active_on_sm90():
    major_minor = int(cp.cuda.Device().compute_capability)
    from nmref_gpu._launch import pdl_active
    assert pdl_active() == (major_minor >= 90 and os.environ.get("NMREF_GPU_PDL", "1") != "0")
    with nmref_gpu.programmatic_launch(False):
        assert not pdl_active()


@pytest.mark.parametrize("pdl", [True, False])
def test_programmatic_launch_keeps_stream_order(pdl):
    """Dependent launches may start early but must wait for the kernel ahead: a CUDA graph of 8 rounds, each
    a dense GEMV writing y (alternating-sign weight copies), a TEAL call adding into the same y
    (accumulate: its atomics must land after the GEMV's stores), a 2:4 GEMV overwriting y2, a copy writing
    x3 (x or -x, alternating), and fresh TEAL results on x3 into y3 (dense weight) and y4 (2:4 weight):
    their zero fills must come after the previous round's atomics, and their kernels must read this round's
    x3. The last round's values must come out, on every replay."""
    rng = np.random.default_rng(11)
    out_f, in_f = 4104, 1056
    w = rand(rng, (out_f, in_f), np.float16)
    signs = (1, -1)  # round r uses the copies of sign signs[r % 2]
    ws = [cp.asarray(w) * s for s in signs]
    wt = rand(rng, (out_f, in_f), np.float16)
    wts = [cp.asfortranarray(cp.asarray(wt) * s) for s in signs]
    vals, meta = nmref.compress_24_packed(w)
    vs = [(cp.asarray(vals) * s, cp.asarray(meta)) for s in signs]
    vt, mt = nmref.compress_24_packed_t(wt)
    vts = (cp.asarray(vt), cp.asarray(mt))
    x = rand(rng, in_f, np.float16)
    xd = cp.asarray(x)
    x3s = [xd * s for s in signs]  # round r copies x3s[r % 2] into x3
    x3 = cp.empty_like(xd)
    t = nmref.exact_threshold(x, 0.5)
    y, y2, y3, y4 = (cp.empty(out_f, dtype=cp.float32) for _ in range(4))
    rounds = 8
    stream = cp.cuda.Stream(non_blocking=True)
    with nmref_gpu.programmatic_launch(pdl), stream:
        for i in range(2):  # compile and warm outside the capture
            nmref_gpu.gemv(xd, ws[i], out=y.reshape(1, -1))
        stream.begin_capture()
        for r in range(rounds):
            nmref_gpu.gemv(xd, ws[r % 2], out=y.reshape(1, -1))
            nmref_gpu.gemv_input_sparse(xd, wts[r % 2], t, out=y, accumulate=True)
            nmref_gpu.gemv_24_packed(xd, *vs[r % 2], out=y2.reshape(1, -1))
            x3[...] = x3s[r % 2]
            nmref_gpu.gemv_input_sparse(x3, wts[0], t, out=y3)
            nmref_gpu.gemv_input_sparse_24_packed_t(x3, *vts, t, out=y4)
        graph = stream.end_capture()
        sign = signs[(rounds - 1) % 2]
        dense = sign * (x.astype(np.float64) @ w.astype(np.float64).T)
        teal = sign * (nmref.sparsify(x, t).astype(np.float64) @ wt.astype(np.float64).T)
        ref24 = sign * (x.astype(np.float64) @ nmref.decompress_24_packed(vals, meta).astype(np.float64).T)
        teal24 = sign * (nmref.sparsify(x, t).astype(np.float64) @ nmref.decompress_24_packed_t(vt, mt).astype(np.float64).T)
        for _ in range(5):
            for a in (y, y2, y3, y4):
                a.fill(np.nan)
            graph.launch(stream)
            stream.synchronize()
            assert rel_err(y.get(), dense + teal) < 1e-5
            assert rel_err(y2.get(), ref24) < 1e-5
            assert rel_err(y3.get(), teal) < 1e-5  # x3 = sign x on the weight copy of sign +1
            assert rel_err(y4.get(), teal24) < 1e-5


@pytest.mark.parametrize("kind", ["ast_update", "ast_gradient", "adams", "adams_in_gradient"])
def test_fused_optimizers_keep_subnormals_and_signed_zeros_bitwise(kind):
    """Subnormal weights, gradients and moments, ±0 and λ = 0: the kernels' explicit IEEE operations
    give nmref's bits (CuPy compiles with -ftz=true, which would flush subnormals to zero)."""
    rng = np.random.default_rng(7)
    tiny = np.float32(2 ** -149)
    vals = np.array([0.0, -0.0, tiny, -tiny, 3 * tiny, 2 ** -126, 1.0, -2.5], np.float32)
    p, g, u = (rng.choice(vals, size=(16, 8)) for _ in range(3))
    v = np.abs(rng.choice(vals, size=(16, 8)))
    mask = nmref.nm_mask(rng.standard_normal((16, 8)), 2, 4)
    h = AdamHyper(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
    for step, lam in ((0, 0.0), (3, 0.3), (3, 0.0)):
        st = AdamState(step, u, v)
        dst = AdamState(step, cp.asarray(u), cp.asarray(v))
        if kind.startswith("ast"):
            kw = dict(mask=mask, lam=lam, second_moment=kind.split("_")[1])
            want, wst = nmref.ast_adamw_step(p, g, st, h, **kw)
            got, gst = nmref_gpu.ast_adamw_step(cp.asarray(p), cp.asarray(g), dst, h, **dict(kw, mask=cp.asarray(mask)))
        else:
            kw = dict(mask=mask, lam=lam, ramp_steps=4, placement="in_gradient" if kind.endswith("gradient") else "after_momentum")
            want, wst = nmref.adams_step(p, g, st, h, **kw)
            got, gst = nmref_gpu.adams_step(cp.asarray(p), cp.asarray(g), dst, h, **dict(kw, mask=cp.asarray(mask)))
        for a, b in ((got, want), (gst.exp_avg, wst.exp_avg), (gst.exp_avg_sq, wst.exp_avg_sq)):
            assert np.array_equal(a.get().view(np.uint32), b.view(np.uint32)), (kind, step, lam)
