"""nmref_gpu — CuPy/CUDA kernels mirroring nmref's operations; every kernel is tested against nmref.

Kernels live in the ``.cu`` files next to the Python that launches them; which template instances
exist, and which one a call uses, is one table in :mod:`nmref_gpu.kernels`. Shapes and dtypes are
validated before every launch. Needs CuPy (``pip install 'nmref[gpu]'``) and a CUDA GPU.
"""
from ._launch import programmatic_launch
from .gemv import (gemv, gemv_24_packed, gemv_input_sparse, gemv_input_sparse_24_packed_t,
                   gemv_input_sparse_batched)
from .gemm import Sparse24Weight, compress_24_gemm, gemm_24, linear_24, linear_24_input_grad
from .masks import compress_24_mma, compress_24_packed, compress_24_packed_t, nm_mask, refresh_mask
from .optim import adams_step, ast_adamw_step

__all__ = ["nm_mask", "compress_24_packed", "compress_24_packed_t", "compress_24_mma", "refresh_mask", "compress_24_gemm", "gemm_24",
           "Sparse24Weight", "linear_24", "linear_24_input_grad", "gemv",
           "gemv_24_packed", "gemv_input_sparse", "gemv_input_sparse_batched", "gemv_input_sparse_24_packed_t",
           "ast_adamw_step", "adams_step", "programmatic_launch"]
