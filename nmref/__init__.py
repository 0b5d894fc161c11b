"""nmref — reference implementation of N:M sparsity-aware training and inference.

Every public operation is re-exported here; each lives in a module named after its concept
(``nmref.masks``, ``nmref.compress``, ...). See ``docs/`` for the exact semantics.
"""
from ._checks import NMRefStepWarning, NMRefTypeError, NMRefValueError
from .activation import (TEAL_PROJECTION_INPUTS, GreedyStep, ThresholdHistogram, exact_threshold,
                         gemv_input_sparse, gemv_input_sparse_24, gemv_input_sparse_batched, gemv_input_sparse_24_packed_t,
                         gemv_output_sparse, greedy_block_allocation,
                         sparsify, sparsify_batched, sparsify_prefill, sparsities_at)
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

from .distill import DISTILL_KINDS, cross_entropy, distill_loss, kl_forward, kl_reverse, log_softmax, squarehead_loss
from .optim import *  # noqa: F401,F403
from .optim import __all__ as _optim_all
from .sparsegpt import hessian_from_inputs, sparsegpt_prune
from .quant import dequantize_groups, quantize_groups
from .slorb import (slorb_backward, slorb_effective_weight, slorb_forward, slorb_init, slorb_parameter_overhead,
                    slorb_projection)
from .ste import annealing_lambda, mask_refresh_due, masked_weight, refresh_mask, sr_ste_grad
from .weight_scaling import soft_threshold_nm, weight_scale
from .golden import golden_cases, load_case, verify_golden, write_golden

__version__ = "0.1.0"

__all__ = [
    "NMRefValueError", "NMRefTypeError", "NMRefStepWarning",
    "nm_mask", "is_nm_sparse", "wanda_scores", "transposable_nm_mask", "TRANSPOSABLE_24_PATTERNS",
    "flip_rate", "initial_flip_rate", "pad_to_multiple",
    *_compress_all,
    "masked_weight", "sr_ste_grad", "annealing_lambda", "mask_refresh_due", "refresh_mask",
    *_optim_all,
    "sparsegpt_prune", "hessian_from_inputs",
    "soft_threshold_nm", "weight_scale",
    "quantize_groups", "dequantize_groups",
    "slorb_projection", "slorb_init", "slorb_effective_weight", "slorb_forward", "slorb_backward",
    "slorb_parameter_overhead",
    "TEAL_PROJECTION_INPUTS", "exact_threshold", "ThresholdHistogram", "sparsify", "sparsify_batched",
    "sparsify_prefill", "GreedyStep", "greedy_block_allocation", "sparsities_at",
    "gemv_input_sparse", "gemv_input_sparse_batched", "gemv_output_sparse", "gemv_input_sparse_24", "gemv_input_sparse_24_packed_t",
    "golden_cases", "write_golden", "verify_golden", "load_case",
    "log_softmax", "kl_forward", "kl_reverse", "cross_entropy", "distill_loss", "squarehead_loss", "DISTILL_KINDS",
]
