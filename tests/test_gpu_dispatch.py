"""The kernel table and launch rules (nmref_gpu.kernels) — pure Python, runs without CuPy or a GPU."""
import importlib
import subprocess
import sys

import pytest

kernels = importlib.import_module("nmref_gpu.kernels")
OUTS = [1, 15, 16, 17, 4096, 4224, 4240, 4799, 4800, 5120, 9584, 9600, 11008, 12784, 12800, 13824, 1 << 16]


@pytest.mark.parametrize("kind", ["dense", "24"])
@pytest.mark.parametrize("batch", range(1, 17))
def test_rule_picks_a_shipped_instance_for_every_call(kind, batch):
    shipped = set(kernels.instances("gemv"))
    for o in OUTS:
        cfg = kernels.gemv_config(kind, o, batch)
        for t in ("__half", "__nv_bfloat16"):
            assert cfg.kernel(t, 1 if batch <= 8 else 2, kind == "24") in shipped
    bb = kernels.batch_bound(batch)
    assert bb >= batch and bb in kernels.BATCH_BOUNDS
    assert kernels.TEAL_RULE[bb].kernel("__half", bb, 0) in shipped


def test_table_shape_and_buckets():
    for kind in ("dense", "24"):
        assert set(kernels.GEMV_RULE[kind]) == set(kernels.BATCH_BOUNDS)
        assert all(len(row) == len(kernels.GRID_BUCKETS) + 1 for row in kernels.GEMV_RULE[kind].values())
    assert list(kernels.GRID_BUCKETS) == sorted(kernels.GRID_BUCKETS)
    # bucket edges: ceil(out / 16) blocks of 16 rows
    edge = 16 * kernels.GRID_BUCKETS[0]
    assert kernels.gemv_config("24", edge, 1) == kernels.GEMV_RULE["24"][1][0]
    assert kernels.gemv_config("24", edge + 1, 1) == kernels.GEMV_RULE["24"][1][1]
    assert kernels.gemv_config("dense", 1 << 20, 16) == kernels.GEMV_RULE["dense"][16][-1]


def test_instances_are_exactly_what_the_rules_can_pick():
    """Nothing is compiled that no rule uses: every instance is reachable from a table entry."""
    picked = set()
    for kind, table in kernels.GEMV_RULE.items():
        for bb, row in table.items():
            for cfg in row:
                picked |= {cfg.kernel(t, 1 if bb <= 8 else 2, kind == "24") for t in ("__half", "__nv_bfloat16")}
    for bb, cfg in kernels.TEAL_RULE.items():
        picked |= {cfg.kernel(t, bb, r) for t in ("__half", "__nv_bfloat16") for r in (0, 1)}
    picked |= {kernels.TEAL24_RULE.kernel24(t, r) for t in ("__half", "__nv_bfloat16") for r in (0, 1)}
    assert set(kernels.instances("gemv")) == picked | {"teal_zero"}
    assert kernels.instances("masks") == ()


def test_instantiation_unit_lists_every_instance(tmp_path):
    """CI compiles gemv.cu through this unit: it must take the address of exactly the listed instances."""
    out = subprocess.run([sys.executable, kernels.__file__, "nmref_gpu/gemv.cu"], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith('#include "gemv.cu"')
    taken = [line.strip()[len("(void *)&"):-1] for line in out.splitlines() if line.strip().startswith("(void *)&")]
    assert taken == [n for n in kernels.instances("gemv") if "<" in n]
    assert subprocess.run([sys.executable, kernels.__file__, "nmref_gpu/masks.cu"], capture_output=True, text=True,
                          check=True).stdout == ""


def test_configurations_reject_what_the_templates_do_not_have():
    with pytest.raises(ValueError):
        kernels.MmaConfig(3, 1)
    with pytest.raises(ValueError):
        kernels.MmaConfig(8, 4)
    with pytest.raises(ValueError):
        kernels.TealConfig(128)
    assert kernels.MmaConfig(16, 1, True, 2).kernel("__half", 2, True) == "gemv_mma<__half,2,true,16,1,true,2,false>"


# ------------------------------------------------------------------------------------ gemm_24 (gemm.cu)
GEMM_SHAPES = [(n, k) for n in (1, 64, 200, 4096, 5120, 11008, 13824) for k in (4, 136, 4096, 13824)]
GEMM_MS = [1, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1000, 1024, 4096, 8192, 100000]


def test_gemm_rule_picks_compiled_configs_and_valid_splits():
    compiled = set(kernels.GEMM_CONFIGS)
    for n, k in GEMM_SHAPES:
        ktiles = -(-k // 128)
        for m in GEMM_MS:
            cfg = kernels.gemm_config(m, n, k)
            assert cfg.with_splits(0) in compiled
            tiles = -(-n // cfg.bm) * -(-m // cfg.bn)
            assert cfg.splits >= 1
            if cfg.splits > 1:  # only an under-filled device splits, and every split keeps >= 8 column blocks
                assert 2 * tiles < kernels.SMS_H200 and ktiles // cfg.splits >= 8
            if m <= 64:  # decoding-sized batches: one batch tile, the smallest that covers m
                assert cfg.bn == (16 if m <= 16 else 64)


def test_gemm_configs_fit_shared_memory_and_name_distinct_instances():
    for cfg in kernels.GEMM_CONFIGS:
        assert cfg.smem_bytes() <= 227 * 1024, cfg   # the sm_90 per-block limit
        assert cfg.bn in (16, 32, 64, 128, 256) and cfg.wg in (1, 2) and cfg.msub in (1, 2)
    names = kernels.instances("gemm")
    assert len(names) == len(set(names)) == 2 * 2 * (1 + len(kernels.GEMM_CONFIGS))
    unit = kernels.instantiation_unit("nmref_gpu/gemm.cu")
    assert unit.startswith('#include "gemm.cu"')
    for cfg in kernels.GEMM_CONFIGS:  # every configuration is instantiated for both types and outputs
        assert unit.count(f", {cfg.bn}, {cfg.wg}, {cfg.msub}, {cfg.stages})") == 4

