"""nmref — reference implementation of N:M sparsity-aware training and inference.

Every public operation is re-exported here; each lives in a module named after its concept
(``nmref.masks``, ``nmref.compress``, ...). See ``docs/`` for the exact semantics.
"""
from ._checks import NMRefTypeError, NMRefValueError
from .compress import *  # noqa: F401,F403
from .compress import __all__ as _compress_all
from .masks import (
    TRANSPOSABLE_24_PATTERNS,
    flip_rate,
    initial_flip_rate,
    is_nm_sparse,
    nm_mask,
    pad_to_multiple,
    transposable_nm_mask,
    wanda_scores,
)

__version__ = "0.1.0"

__all__ = [
    "NMRefValueError", "NMRefTypeError",
    "nm_mask", "is_nm_sparse", "wanda_scores", "transposable_nm_mask", "TRANSPOSABLE_24_PATTERNS",
    "flip_rate", "initial_flip_rate", "pad_to_multiple",
    *_compress_all,
]
