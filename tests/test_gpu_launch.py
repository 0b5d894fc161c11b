"""Programmatic dependent launch (nmref_gpu/_launch.py) without a GPU: the ctypes mirror of the driver's
launch structures, argument packing, and the device-side protocol of every kernel launched that way."""
import ctypes
import re
from pathlib import Path

import numpy as np
import pytest

from nmref import NMRefTypeError
from nmref_gpu import _launch

GEMV_CU = (Path(__file__).resolve().parents[1] / "nmref_gpu" / "gemv.cu").read_text()
#: the kernels nmref_gpu/gemv.py starts through _launch.launch
PDL_KERNELS = ["gemv_mma", "gemv_teal_blk", "gemv_teal24_blk", "teal_zero"]


def test_launch_structs_match_cuda_h():
    # CUlaunchConfig: 7 unsigned ints, then (8-byte aligned) hStream, attrs, numAttrs; CUlaunchAttribute:
    # id, 4 bytes of padding, a 64-byte value union
    cfg = _launch.LaunchConfig
    assert (cfg.sharedMemBytes.offset, cfg.hStream.offset, cfg.attrs.offset, cfg.numAttrs.offset) == (24, 32, 40, 48)
    assert ctypes.sizeof(cfg) == 56
    assert _launch.LaunchAttribute.value.offset == 8 and ctypes.sizeof(_launch.LaunchAttribute) == 72


def test_kernel_params_pack_numpy_scalars_and_reject_python_numbers():
    vals = _launch.kernel_params([np.float32(1.5), np.int32(-7), np.int64(1 << 40)])
    assert [type(v) for v in vals] == [ctypes.c_float, ctypes.c_int32, ctypes.c_int64]
    assert [v.value for v in vals] == [1.5, -7, 1 << 40]
    with pytest.raises(NMRefTypeError, match="kernel argument of type float"):
        _launch.kernel_params([1.5])  # a Python float has no fixed C type: the launchers pass np.float32


def _body(name):
    m = re.search(r"__global__ void (?:__launch_bounds__\(\w+(?: \* \w+)?\) )?" + name + r"\(", GEMV_CU)
    assert m, name
    start = GEMV_CU.index("{", m.end())
    depth, i = 0, start
    while True:
        depth += {"{": 1, "}": -1}.get(GEMV_CU[i], 0)
        if depth == 0:
            return GEMV_CU[start:i + 1]
        i += 1


@pytest.mark.parametrize("name", PDL_KERNELS)
def test_pdl_kernels_wait_before_global_memory(name):
    """Launched with programmatic serialization, a kernel may start before the one ahead of it finishes:
    it must wait before its first global load or store, and let its dependents launch only after that."""
    body = _body(name)
    assert body.count("pdl_wait();") == 1 and body.count("pdl_launch_dependents();") == 1
    wait = body.index("pdl_wait();")
    first_access = min(m.start() for m in re.finditer(r"\brun_steps\b|\bx\[|\by\[|__ldg|__ldcs|\bteal_block_reduce\b", body))
    assert wait < first_access < len(body)
    assert wait < body.index("pdl_launch_dependents();")
