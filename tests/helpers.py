"""Independent (slow, obvious) reference computations used by the tests."""
import itertools

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def brute_nm_mask(s, n, m, axis=-1):
    """Keep the n largest per group by sorting (−score, index) in pure Python."""
    s = np.moveaxis(np.asarray(s, dtype=np.float64), axis, -1)
    out = np.zeros(s.shape, dtype=bool)
    for idx in np.ndindex(*s.shape[:-1]):
        row = s[idx]
        for g0 in range(0, row.shape[0], m):
            order = sorted(range(m), key=lambda i: (-row[g0 + i], i))
            for i in order[:n]:
                out[idx + (g0 + i,)] = True
    return np.moveaxis(out, -1, axis)


def bits_equal(a, b):
    """Bitwise equality (distinguishes -0.0 from +0.0 and compares NaN payloads)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    u = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return np.array_equal(a.view(u), b.view(u))


FLOATS = ["float16", "float32", "float64", "bfloat16"]


def np_dtype(name):
    if name == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@st.composite
def nm_arrays(draw, max_groups=6, max_m=8, ties=None, dtypes=FLOATS, max_rows=4, nd=None):
    """(w, n, m, axis): a float array whose grouped axis is a multiple of m; values drawn
    from a small integer set when ``ties`` (many ties), else normal floats with signed zeros."""
    m = draw(st.integers(1, max_m))
    n = draw(st.integers(0, m))
    nd = nd or draw(st.integers(1, 3))
    axis = draw(st.integers(-nd, nd - 1))
    shape = [draw(st.integers(1, max_rows)) for _ in range(nd)]
    shape[axis] = m * draw(st.integers(1, max_groups))
    dt = np_dtype(draw(st.sampled_from(dtypes)))
    tied = draw(st.booleans()) if ties is None else ties
    if tied:
        base = draw(hnp.arrays(np.int8, shape, elements=st.integers(-3, 3)))
        w = base.astype(np.float32).astype(dt)
    else:
        base = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e3, 1e3, width=32)))
        w = base.astype(dt)
    return w, n, m, axis


def all_transposable_patterns():
    pats = []
    for rows in itertools.product(itertools.combinations(range(4), 2), repeat=4):
        b = np.zeros((4, 4), dtype=bool)
        for r, cols in enumerate(rows):
            b[r, list(cols)] = True
        if (b.sum(0) == 2).all():
            pats.append(b)
    return pats


def central_fd(f, x, eps=1e-6, idx=None):
    """Central finite difference of scalar f at float64 x, at all (or the given flat) indices."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gf = x.reshape(-1), g.reshape(-1)
    for i in (range(flat.size) if idx is None else idx):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * eps)
    return g


#: A sweep grid of four tiny points (about half a minute on 2 cores): the sweep tests' grid.
SWEEP_GRID = """
[base]
preset = "test"
retrain_fraction = 0.25
[grid]
d_model = [16, 32]
tokens = [3200]
pattern = ["dense", "2:4"]
recipe = ["fixed_mask"]
seed = [0]
"""
