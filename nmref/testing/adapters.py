"""Adapters: a PyTorch or JAX callable under the kit's NumPy contract, in one line.

The conformance kit, the golden sets and the pytest fixture call an implementation with NumPy arrays
(bfloat16 as ``ml_dtypes.bfloat16``) and Python scalars, and read NumPy arrays back
(``docs/conformance.md``, "The adapter contract"). Frameworks want their own tensors, and
``torch.from_numpy`` refuses bfloat16 — so every PyTorch user would write the same bit-view shim.
Here it is once:

* :func:`torch_adapter` — ``check_conforms("nm_mask", torch_adapter(my_torch_mask))``: every NumPy
  array in the arguments (also inside dicts, lists and tuples, e.g. optimizer state) becomes a CPU
  ``torch.Tensor`` of the same dtype and bits (bfloat16 through its 16-bit pattern); every tensor in
  the result becomes a NumPy array of the same dtype and bits. Scalars, strings and other values pass
  unchanged. ``device="cuda"`` moves the tensors there (and results back).
* :func:`jax_adapter` — the same for JAX (``jax.numpy.asarray`` in, ``numpy.asarray`` out; JAX's
  bfloat16 is ``ml_dtypes.bfloat16`` already). JAX holds float64 only with
  ``jax.config.update("jax_enable_x64", True)``; without it, check with ``dtypes=[...]`` leaving out
  float64.
* :func:`to_torch`, :func:`from_torch` — the conversions themselves, for hand-written adapters.

Neither framework is imported until an adapter is called, so ``import nmref`` never loads them.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["to_torch", "from_torch", "torch_adapter", "jax_adapter"]


def to_torch(a: np.ndarray, device=None):
    """A NumPy array as a ``torch.Tensor`` with the same dtype and bits (a copy; bfloat16 included)."""
    import torch
    a = np.ascontiguousarray(a)
    if a.dtype.name == "bfloat16":
        t = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a.copy())
    return t if device is None else t.to(device)


def from_torch(t) -> np.ndarray:
    """A ``torch.Tensor`` (any device, grad or not) as a NumPy array with the same dtype and bits."""
    import torch
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _map(value, array_fn, is_leaf):
    if is_leaf(value):
        return array_fn(value)
    if isinstance(value, dict):
        return {k: _map(v, array_fn, is_leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out = [_map(v, array_fn, is_leaf) for v in value]
        return type(value)(*out) if hasattr(value, "_fields") else type(value)(out)  # a namedtuple takes fields
    return value


def torch_adapter(fn, *, device=None):
    """``fn`` (PyTorch tensors in and out) under the kit's NumPy contract (see the module docstring)."""
    @functools.wraps(fn)
    def adapted(*args, **kwargs):
        import torch
        to = functools.partial(to_torch, device=device)
        is_array = lambda v: isinstance(v, np.ndarray)  # noqa: E731
        args = _map(list(args), to, is_array)
        kwargs = _map(kwargs, to, is_array)
        return _map(fn(*args, **kwargs), from_torch, lambda v: isinstance(v, torch.Tensor))
    return adapted


def jax_adapter(fn):
    """``fn`` (JAX arrays in and out) under the kit's NumPy contract (see the module docstring)."""
    @functools.wraps(fn)
    def adapted(*args, **kwargs):
        import jax
        import jax.numpy as jnp
        is_array = lambda v: isinstance(v, np.ndarray)  # noqa: E731
        args = _map(list(args), jnp.asarray, is_array)
        kwargs = _map(kwargs, jnp.asarray, is_array)
        return _map(fn(*args, **kwargs), np.asarray, lambda v: isinstance(v, jax.Array))
    return adapted
