"""The kernel set of ``gemv.cu``: one table of configurations, the rule that picks one per call, and
the template instances it implies.

Everything that exists in compiled form is generated from :data:`GEMV_RULE` and :data:`TEAL_RULE`
below: :func:`instances` gives the names CuPy compiles (``name_expressions``), and
``python3 nmref_gpu/kernels.py gemv.cu`` prints the translation unit with which CI compiles exactly
those instances with nvcc. A configuration is added or removed by editing a table entry. Any other
configuration can still be passed to a launcher as ``variant=`` (a benchmarking hook: it is compiled
on first use, in a module of its own).

The tables were measured on an H200 (see :data:`GEMV_RULE`); this module imports neither CuPy nor
a GPU library, so the rule is testable anywhere.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

_TYPES = ("__half", "__nv_bfloat16")
#: batch bounds a kernel is instantiated for; a call uses the smallest bound >= its batch
BATCH_BOUNDS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class MmaConfig:
    """A tensor-core GEMV kernel (``gemv_mma`` in gemv.cu): a block owns 16 output rows and all of K.

    ``warps``: warps splitting K per block (KW); ``depth``: super-steps of 64 columns in flight per warp
    (1 = load then compute, 2 = software-pipelined, 3 = two ahead); ``prefetch``: weight loads that ask
    L2 for their whole 256-byte block and skip L1, x kept in L1 (evict_last); ``chains``: accumulator
    chains per 8-wide batch tile (2: consecutive mma independent); ``predicated``: loads written as
    predicated PTX instructions (ptxas schedules them earlier)."""

    warps: int
    depth: int
    prefetch: bool = False
    chains: int = 1
    predicated: bool = False

    def __post_init__(self):
        if self.warps not in (1, 2, 4, 8, 16, 32) or self.depth not in (1, 2, 3) or self.chains not in (1, 2):
            raise ValueError(f"not a gemv_mma configuration: {self}")

    def kernel(self, ctype: str, tiles: int, sparse: bool) -> str:
        """The template instance for element type ``ctype``, ``tiles`` 8-wide batch tiles (1 or 2) and a
        dense (``sparse=False``) or packed 2:4 weight."""
        b = lambda v: "true" if v else "false"  # noqa: E731
        return (f"gemv_mma<{ctype},{tiles},{b(sparse)},{self.warps},{self.depth},{b(self.prefetch)},"
                f"{self.chains},{b(self.predicated)}>")

    def short(self) -> str:
        tags = "".join(t for t, on in (("+pf", self.prefetch), ("+2c", self.chains == 2),
                                       ("+pred", self.predicated)) if on)
        return f"mma{tags} {self.warps}x{self.depth}"


@dataclass(frozen=True)
class TealConfig:
    """A TEAL kernel: blocks of 256 outputs x ``chunk`` input rows. ``mma=False``: ``gemv_teal_blk`` on
    CUDA cores, each lane keeping ``loads`` 16-byte weight loads in flight; ``mma=True``:
    ``gemv_teal_mma`` on tensor cores (the batch as the mma's N), ``loads`` = k16 steps in flight per
    warp (1 or 2). For ``gemv_teal24_blk`` (2:4 weight) only ``loads`` applies (groups in flight per
    lane; the chunk is 64 groups)."""

    chunk: int = 256
    loads: int = 4
    mma: bool = False

    def __post_init__(self):
        if self.chunk not in (256, 512) or self.loads not in ((1, 2) if self.mma else (2, 4, 8)):
            raise ValueError(f"not a TEAL configuration: {self}")

    def kernel(self, ctype: str, batch_bound: int, red: int) -> str:
        if self.mma:
            return f"gemv_teal_mma<{ctype},{self.chunk},{1 if batch_bound <= 8 else 2},{self.loads},{red}>"
        return f"gemv_teal_blk<{ctype},{self.chunk},{batch_bound},{self.loads},{red}>"

    def kernel24(self, ctype: str, red: int) -> str:
        return f"gemv_teal24_blk<{ctype},{self.loads},{red}>"


_M = MmaConfig
#: Upper bounds (inclusive) of the grid buckets, in blocks of 16 output rows; the last bucket is open.
GRID_BUCKETS = (264, 599, 799)

#: The GEMV rule: kernel per (weight kind, batch bound, grid bucket). Measured on an H200 (2026-11-30)
#: with ``python benchmarks/dev/sweep_gemv.py`` over 36 dense and 36 2:4 candidates (docs/dev/gpu-notebook.md
#: has the method and docs/benchmarks.md the resulting tables): the five LLaMA shapes fall into the
#: buckets as 4096x4096 and 4096x11008 -> 0, 5120x13824 -> 1, 11008x4096 -> 2, 13824x5120 -> 3, and each
#: entry is, among a set of configurations kept small, the one within 1% of the fastest candidate on
#: every shape of its bucket (the largest gap is 0.9%).
GEMV_RULE = {
    "dense": {
        1: (_M(8, 3), _M(8, 2, predicated=True), _M(4, 2, predicated=True), _M(4, 2, predicated=True)),
        2: (_M(8, 3), _M(8, 2, predicated=True), _M(8, 2, predicated=True), _M(4, 2, predicated=True)),
        4: (_M(8, 3), _M(8, 2, predicated=True), _M(4, 2, predicated=True), _M(4, 2, predicated=True)),
        8: (_M(8, 3), _M(8, 2, predicated=True), _M(4, 2, predicated=True), _M(4, 2, predicated=True)),
        16: (_M(8, 3, predicated=True), _M(4, 3, predicated=True), _M(4, 2), _M(4, 2)),
    },
    "24": {
        1: (_M(16, 1, True, 2, True), _M(8, 3, True, 1, True), _M(16, 1, True, 2, True), _M(4, 1, True, 2, True)),
        2: (_M(16, 1, True, 2, True), _M(8, 3, True, 1, True), _M(4, 3, True, 1, True), _M(4, 1, True, 2, True)),
        4: (_M(16, 1, True, 2, True), _M(8, 3, True, 1, True), _M(4, 3, True, 1, True), _M(4, 1, True, 2, True)),
        8: (_M(16, 1, True, 2, True), _M(8, 3, True, 1, True), _M(4, 3, True, 1, True), _M(4, 1, True, 2, True)),
        16: (_M(16, 1, True, 2), _M(8, 1, True, 2, True), _M(4, 1, True, 2, True), _M(4, 1, True, 2, True)),
    },
}

#: The TEAL rule: configuration per batch bound, the least summed time over the five shapes at p = 0.5
#: in the same H200 sweep (``--teal-only`` run, 10 candidates): CUDA cores up to batch 4, tensor cores
#: (``mma=True``) at batch 8 and 16, where the CUDA-core kernel's FMAs per weight byte grow with the
#: batch (19% of read bandwidth at batch 16 against 43–50%). The 2:4 kernel's (batch 1): 4 loads in
#: flight was the fastest on every shape and p.
TEAL_RULE = {1: TealConfig(256, 4), 2: TealConfig(256, 2), 4: TealConfig(256, 8), 8: TealConfig(512, 1, mma=True),
             16: TealConfig(512, 1, mma=True)}
TEAL24_RULE = TealConfig(256, 4)


def batch_bound(batch: int) -> int:
    return next(b for b in BATCH_BOUNDS if b >= batch)


def gemv_config(kind: str, out_features: int, batch: int) -> MmaConfig:
    """The GEMV kernel :data:`GEMV_RULE` picks (``kind``: ``"dense"`` or ``"24"``)."""
    blocks16 = -(-int(out_features) // 16)
    bucket = next((i for i, hi in enumerate(GRID_BUCKETS) if blocks16 <= hi), len(GRID_BUCKETS))
    return GEMV_RULE[kind][batch_bound(batch)][bucket]


# ------------------------------------------------------------------------------------------- gemm.cu
SMS_H200 = 132


@dataclass(frozen=True)
class GemmConfig:
    """A ``gemm24_wgmma`` instance: ``bn`` batch rows per block (the wgmma N), ``wg`` consumer
    warpgroups of ``64·msub`` weight rows each (a block covers ``64·msub·wg`` rows), ``stages`` pipeline
    buffers; ``splits``: split-K factor (0: chosen by :func:`split_rule`)."""

    bn: int
    wg: int
    msub: int
    stages: int
    splits: int = 0

    @property
    def bm(self) -> int:
        return 64 * self.msub * self.wg

    def kernel(self, tn: str, on: str) -> str:
        return f"gemm24_wgmma_{tn}_{on}_{self.bn}x{self.wg}x{self.msub}x{self.stages}"

    def smem_bytes(self) -> int:
        stage = self.bm * 128 + self.bn * 256 + self.bm * 16
        return self.stages * stage + 16 * self.stages + 1024  # + mbarriers + alignment slack

    def with_splits(self, splits: int) -> "GemmConfig":
        return GemmConfig(self.bn, self.wg, self.msub, self.stages, splits)

    def short(self) -> str:
        return f"{self.bm}x{self.bn} s{self.splits}"


#: The compiled ``gemm24_wgmma`` instances (both element types, float32 and input-dtype output), smallest
#: block first; :func:`gemm_config` picks among them.
GEMM_CONFIGS = CONFIGS = (GemmConfig(16, 1, 1, 8), GemmConfig(64, 1, 1, 6), GemmConfig(64, 2, 1, 6), GemmConfig(128, 2, 1, 4),
           GemmConfig(128, 2, 2, 3), GemmConfig(256, 2, 1, 2))
C64x16, C64x64, C128x64, C128x128, C256x128, C128x256 = CONFIGS


def _tiles(cfg: GemmConfig, m: int, n: int) -> int:
    return -(-n // cfg.bm) * -(-m // cfg.bn)


def gemm_config(m: int, n: int, k: int, sms: int = SMS_H200) -> GemmConfig:
    """The rule (weight rows × batch rows per block), from the sweep of docs/benchmarks.md:

    * ``m <= 16``: 64 × 16;
    * ``m <= 64``: 64 × 64, or 128 × 64 when 64-row blocks would need more than one wave (``N/64 > sms``);
    * ``m <= 256``: 128 × 128, or 128 × 64 when that leaves fewer than ``sms/2`` blocks;
    * above: 256 × 128.

    Split-K as :func:`split_rule`."""
    if m <= 16:
        cfg = C64x16
    elif m <= 64:
        cfg = C128x64 if -(-n // 64) > sms else C64x64
    elif m <= 256:
        cfg = C128x128 if 2 * _tiles(C128x128, m, n) >= sms else C128x64
    else:
        cfg = C256x128
    return cfg.with_splits(split_rule(cfg, m, n, k, sms))


def split_rule(cfg: GemmConfig, m: int, n: int, k: int, sms: int = SMS_H200) -> int:
    """Split-K factor: 1 unless the output tiles would leave more than half of the ``sms`` multiprocessors
    idle; then the smallest factor giving at least ``0.9·sms`` blocks, keeping at
    least 8 blocks of 128 columns per split (at most 8 splits)."""
    tiles = _tiles(cfg, m, n)
    ktiles = -(-k // 128)
    if 2 * tiles >= sms:
        return 1
    s = 1
    while tiles * s < 0.9 * sms and s < 8 and ktiles // (s + 1) >= 8:
        s += 1
    return s


_GEMM_TYPES = (("f16", "__half"), ("bf16", "__nv_bfloat16"))


def gemm_instance_lines() -> str:
    """The instance macros appended to gemm.cu: the portable ``gemm24_mma`` kernel and every
    ``gemm24_wgmma`` configuration of :data:`GEMM_CONFIGS`, for both element types and both outputs."""
    lines = ["// generated by nmref_gpu/kernels.py (GEMM_CONFIGS)"]
    for tn, t in _GEMM_TYPES:
        for on, o in (("f32", "float"), (tn, t)):
            lines.append(f"NMREF_MMA_KERNEL({tn}, {t}, {on}, {o})")
            lines += [f"NMREF_WGMMA_KERNEL({tn}, {t}, {on}, {o}, {c.bn}, {c.wg}, {c.msub}, {c.stages})" for c in GEMM_CONFIGS]
    return "\n".join(lines) + "\n"


def instances(module: str) -> tuple[str, ...]:
    """Every template instance of ``module`` ("gemv") that a rule can pick, for both element types."""
    if module == "gemm":
        return tuple(n for tn, _ in _GEMM_TYPES for on in ("f32", tn)
                     for n in [f"gemm24_mma_{tn}_{on}"] + [c.kernel(tn, on) for c in GEMM_CONFIGS])
    if module != "gemv":
        return ()
    names = []
    for kind, table in GEMV_RULE.items():
        for bb, row in table.items():
            for cfg in row:
                names += [cfg.kernel(t, 1 if bb <= 8 else 2, kind == "24") for t in _TYPES]
    for bb, cfg in TEAL_RULE.items():
        names += [cfg.kernel(t, bb, red) for t in _TYPES for red in (0, 1)]
    names += [TEAL24_RULE.kernel24(t, red) for t in _TYPES for red in (0, 1)]
    return tuple(dict.fromkeys(names)) + ("teal_zero",)


def instantiation_unit(cu_file: str) -> str | None:
    """A translation unit that includes ``cu_file`` and instantiates every instance :func:`instances`
    lists for it (taking each kernel's address), or None if the file has no generated instances."""
    name = Path(cu_file).stem
    if name == "gemm":
        return f'#include "{Path(cu_file).name}"\n' + gemm_instance_lines()
    inst = [n for n in instances(name) if "<" in n]
    if not inst:
        return None
    lines = [f'#include "{Path(cu_file).name}"', "// generated by nmref_gpu/kernels.py: the instances "
             "nmref_gpu/kernels.py lists", "void *nmref_instances[] = {"]
    lines += [f"    (void *)&{n}," for n in inst]
    return "\n".join(lines + ["};", ""])


if __name__ == "__main__":  # python3 nmref_gpu/kernels.py FILE.cu: print its instantiation unit (CI)
    unit = instantiation_unit(sys.argv[1])
    if unit:
        print(unit)
