"""The GEMV launch rule (nmref_gpu.gemv.default_variant) — pure Python, runs without CuPy or a GPU."""
import importlib

import pytest

gemv_mod = importlib.import_module("nmref_gpu.gemv")


@pytest.mark.parametrize("kind", ["gemv_dense", "gemv_24"])
@pytest.mark.parametrize("batch", range(1, 17))
def test_default_variant_is_a_tested_variant_and_monotone(kind, batch):
    outs = [1, 15, 16, 17, 4096, 4799, 4800, 5120, 9584, 9600, 11008, 12784, 12800, 13824, 1 << 16]
    chosen = [gemv_mod.default_variant(kind, o, batch) for o in outs]
    for v in chosen:
        assert v in gemv_mod._MMA  # every default is one of the variants tests/test_gpu.py checks against nmref
        assert v[0].startswith("mma+pf") if kind == "gemv_24" else v[0] in ("mma", "mma+pred")
    kws = [v[1] for v in chosen]  # more 16-row blocks in the grid -> never more warps splitting K
    assert kws == sorted(kws, reverse=True)


def test_default_variant_on_the_llama_shapes():
    dv = gemv_mod.default_variant
    # the per-shape choices the rule encodes (docs/benchmarks.md, session 11: two runs of every variant)
    assert dv("gemv_24", 4096, 1) == ("mma+pf+2c", 16, 1) and dv("gemv_24", 4096, 16) == ("mma+pf+2c", 16, 1)
    assert dv("gemv_24", 13824, 16) == ("mma+pf+2c+pred", 4, 1) and dv("gemv_24", 13824, 4) == ("mma+pf+2c+pred", 4, 1)
    assert dv("gemv_24", 11008, 4) == ("mma+pf+2c", 8, 2) and dv("gemv_24", 11008, 16) == ("mma+pf+2c+pred", 4, 1)
    # 320 blocks: more than 2 x 132 SMs, so no 16-warp blocks with two chains (48 registers: 2 blocks per SM)
    assert dv("gemv_24", 5120, 1) == ("mma+pf", 16, 1) and dv("gemv_24", 5120, 16) == ("mma+pf+pred", 8, 2)
    assert dv("gemv_24", 4224, 1) == ("mma+pf+2c", 16, 1) and dv("gemv_24", 4240, 1) == ("mma+pf", 16, 1)
    assert dv("gemv_dense", 4096, 4) == ("mma+pred", 8, 3) and dv("gemv_dense", 4096, 16) == ("mma+pred", 8, 3)
    assert dv("gemv_dense", 5120, 1) == ("mma+pred", 8, 2) and dv("gemv_dense", 5120, 16) == ("mma", 8, 2)
    assert dv("gemv_dense", 13824, 16) == ("mma", 4, 2) and dv("gemv_dense", 13824, 1) == ("mma+pred", 4, 3)


def test_every_tensor_core_variant_is_instantiated_in_gemv_cu():
    """gemv.py launches gemv_mma<..., KW, D, PF, C, PRED> by name; CI compiles gemv.cu with nvcc, which
    checks only the explicit instantiations there: they must be exactly the variants gemv.py lists."""
    import re
    from pathlib import Path
    src = (Path(gemv_mod.__file__).parent / "gemv.cu").read_text()

    def macro(name):
        m = re.search(r"^#define " + name + r"\(.*?(?<!\\)$", src, re.S | re.M)
        assert m, name
        return m.group(0)
    tags = re.findall(r"GEMV_MMA_V\(T, NT, KW, D, (\w+), (\d), (\w+)\)", macro("GEMV_MMA"))
    shapes = re.findall(r"GEMV_MMA\(T, NT, (\d+), (\d+)\)", macro("GEMV_MMA_NT"))
    pred = re.findall(r"GEMV_MMA_V\(T, NT, (\d+), (\d+), (\w+), (\d), (\w+)\)", macro("GEMV_MMA_PRED"))
    assert "GEMV_MMA_PRED(T, NT)" in macro("GEMV_MMA_NT") and tags and shapes and pred
    compiled = {(int(kw), int(d), pf, int(c), pr) for kw, d in shapes for pf, c, pr in tags}
    compiled |= {(int(kw), int(d), pf, int(c), pr) for kw, d, pf, c, pr in pred}
    listed = {(kw, d) + gemv_mod._MMA_TAGS[tag] for tag, kw, d in gemv_mod._MMA}
    assert compiled == listed and len(listed) == len(gemv_mod._MMA)
