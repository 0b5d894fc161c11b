"""Optimizers as pure functions ``step(params, grads, state, hyper, ...) -> (params, state)``."""
from .adams import ADAMS_PLACEMENTS, adams_alpha, adams_step
from .adamw import adamw_step
from .masked import MASKED_ADAMW_VARIANTS, SECOND_MOMENT_SOURCES, adamw_decay_in_grad_step, adamw_decay_on_weights_step, ast_adamw_step
from .state import AdamHyper, AdamState, init_adam_state

__all__ = [
    "AdamHyper", "AdamState", "init_adam_state", "adamw_step",
    "adamw_decay_on_weights_step", "adamw_decay_in_grad_step", "ast_adamw_step", "MASKED_ADAMW_VARIANTS", "SECOND_MOMENT_SOURCES",
    "adams_step", "adams_alpha", "ADAMS_PLACEMENTS",
]
