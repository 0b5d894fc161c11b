"""Checking a pruned checkpoint: is each weight N:M sparse, where not, and what it would take to store.

:func:`check_checkpoint` reads a ``.safetensors`` file (through the ``safetensors`` package, one tensor
at a time, so memory stays bounded by the largest tensor) or a ``.npz`` file (NumPy, no pickles) and
returns one :class:`TensorReport` per tensor. ``nmref check-checkpoint`` is its command line.

Which tensors *should* be sparse: by default every floating tensor of two or more dimensions whose
name does not match :data:`DENSE_NAMES` (embeddings, the output head, norms, biases); ``include=`` (a
regular expression) names them instead. A tensor is N:M along ``axis`` when every group of ``m``
consecutive elements along that axis holds at most ``n`` nonzeros (:func:`nmref.is_nm_sparse`; NaN
counts as nonzero); its length along ``axis`` must be a multiple of ``m``. An ``include`` pattern that
matches no tensor, or an ``axis`` that no expected tensor has, is an error (a typo must not pass a
gate). A sharded checkpoint is a directory holding ``model.safetensors.index.json`` (its ``weight_map``
names the shards). A training checkpoint of ``nmref experiment`` (metadata ``format`` =
``nmref-tiny-checkpoint/1``: dense weights, their masks and Adam moments) is refused with a pointer
to the run's ``exports/``, which hold the evaluated models.

Storage bytes (of the tensor as a 2-D ``[rows, cols]`` matrix, groups along ``cols``): ``dense``;
``generic`` (:func:`nmref.compress_nm`: values + one uint8 index per kept value); ``enumerative``
(values + ⌈G·⌈log2 C(m,n)⌉/8⌉ bytes of mask code); and, for 2:4, ``bitmask`` (values + ⌈cols/8⌉
bytes per row), ``packed`` (values + a uint32 per 32 columns; cols % 32 == 0) and ``cutlass``
(float16/bfloat16; values + an int16 per 16 columns; rows and cols % 32 == 0). A format whose shape
or dtype rule the tensor breaks is left out.
"""
from __future__ import annotations

import math
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ._checks import NMRefTypeError, NMRefValueError, check_int, check_nm, grouped, is_float_dtype
from .compress.enumerative import pattern_bits

__all__ = ["TensorReport", "check_checkpoint", "storage_bytes", "DENSE_NAMES", "parse_pattern"]

#: Names of tensors expected to stay dense (case-insensitive search).
DENSE_NAMES = r"(embed|wte|wpe|lm_head|norm|ln_|bias|\.b$)"


@dataclass
class TensorReport:
    """One tensor: ``nm`` is None when the check does not apply (``reason`` says why)."""
    name: str
    shape: tuple
    dtype: str
    expected_sparse: bool
    nm: bool | None
    violating_groups: int = 0
    first_violations: list = field(default_factory=list)
    bytes: dict = field(default_factory=dict)
    reason: str = ""
    axis: int = -1
    m: int = 4

    @property
    def failed(self) -> bool:
        return self.expected_sparse and self.nm is not True


def parse_pattern(text: str) -> tuple[int, int]:
    """``"N:M"`` → ``(n, m)``."""
    if not isinstance(text, str):
        raise NMRefTypeError(f"pattern must be a string N:M, got {type(text).__name__}")
    m_ = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not m_:
        raise NMRefValueError(f"pattern must look like N:M (e.g. 2:4), got {text!r}")
    n, m = check_nm(int(m_.group(1)), int(m_.group(2)))
    if n == 0:
        raise NMRefValueError(f"pattern {text!r} keeps nothing; expected 1 <= N <= M")
    return n, m


def storage_bytes(shape, dtype, n: int, m: int) -> dict:
    """Bytes of a ``[rows, cols]`` tensor (leading axes folded into rows) in each storage format."""
    dt = np.dtype(dtype)
    cols = int(shape[-1]) if len(shape) else 1
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    groups = rows * cols // m
    values = groups * n * dt.itemsize
    out = {"dense": rows * cols * dt.itemsize, "generic": values + groups * n,
           "enumerative": values + math.ceil(groups * pattern_bits(n, m) / 8)}
    if (n, m) == (2, 4):
        out["bitmask"] = values + rows * math.ceil(cols / 8)
        if cols % 32 == 0:
            out["packed"] = values + rows * (cols // 32) * 4
        if rows % 32 == 0 and cols % 32 == 0 and dt.itemsize == 2:
            out["cutlass"] = values + rows * (cols // 16) * 2
    return out


def _check_tensor(name, arr, n, m, axis, expected, max_violations) -> TensorReport:
    rep = TensorReport(name, tuple(int(s) for s in arr.shape), str(arr.dtype), expected, None)
    if arr.ndim == 0:
        rep.reason = "0-d tensor"
        return rep
    ax = axis % arr.ndim if -arr.ndim <= axis < arr.ndim else None
    if ax is None:
        rep.reason = f"axis {axis} out of range for {arr.ndim}-d tensor"
        return rep
    if arr.shape[ax] % m:
        rep.reason = f"length {arr.shape[ax]} along axis {ax} is not a multiple of m = {m}"
        return rep
    nz = grouped(arr != 0, ax, m).sum(axis=-1)
    bad = nz > n
    rep.nm = not bool(bad.any())
    rep.violating_groups = int(bad.sum())
    rep.axis, rep.m = ax, m
    if rep.violating_groups:
        # the tensor index of each violating group's first element: the other axes as they are, the
        # grouped axis as the group's first column (the group spans columns c .. c + m - 1)
        rep.first_violations = []
        for c in np.argwhere(bad)[:max_violations]:
            idx = [int(i) for i in c[:-1]]
            idx.insert(ax, int(c[-1]) * m)
            rep.first_violations.append(idx)
    cols = arr.shape[ax]
    rep.bytes = storage_bytes((arr.size // cols if cols else 0, cols), arr.dtype, n, m)
    return rep


def _iter_npz(path: Path):
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise NMRefValueError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    with z:
        for k in z.files:
            try:
                yield k, z[k]
            except (ValueError, zipfile.BadZipFile, OSError, EOFError) as e:
                raise NMRefValueError(f"{path}: tensor {k!r} cannot be read ({type(e).__name__}: {e}); "
                                      "object arrays are refused (no pickles)") from None


def _iter_safetensors(path: Path, names=None):
    from safetensors import SafetensorError, safe_open

    from .tiny.train import CKPT_FORMAT  # what nmref experiment writes for --resume
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") == CKPT_FORMAT:
                raise NMRefValueError(
                    f"{path} is a training checkpoint of nmref experiment (recipe {meta.get('recipe')!r}, step "
                    f"{meta.get('step')}): its weights are stored dense beside their masks and Adam moments; check "
                    f"the evaluated model instead: {path.parent.parent / 'exports' / (path.stem + '.safetensors')}")
            for k in f.keys():
                if names is None or k in names:
                    yield k, f.get_tensor(k)
    except SafetensorError as e:
        raise NMRefValueError(f"{path}: malformed or truncated safetensors file ({e})") from None


def _iter_sharded(directory: Path):
    """The tensors of a sharded checkpoint: ``model.safetensors.index.json``'s weight_map, shard by shard."""
    import json
    index = directory / "model.safetensors.index.json"
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NMRefValueError(f"{index}: not a readable safetensors index with a weight_map ({type(e).__name__}: {e})") \
            from None
    shards: dict = {}
    for name, shard in weight_map.items():
        shards.setdefault(shard, set()).add(name)
    for shard, names in sorted(shards.items()):
        shard_path = directory / shard
        if not shard_path.is_file():
            raise NMRefValueError(f"{index} names shard {shard!r}, which does not exist in {directory}")
        yield from _iter_safetensors(shard_path, names)


def check_checkpoint(path, *, pattern: str = "2:4", axis: int = -1, include: str | None = None,
                     max_violations: int = 5) -> list[TensorReport]:
    """One :class:`TensorReport` per tensor of a ``.safetensors`` or ``.npz`` checkpoint (see the module
    docstring). ``pattern`` is ``"N:M"``; ``axis`` the grouped axis of each tensor (default: the last,
    the input dimension of ``W[out, in]``)."""
    path = Path(path)
    n, m = parse_pattern(pattern)
    axis = check_int("axis", axis)
    max_violations = check_int("max_violations", max_violations, minimum=0)
    if include is not None:
        try:
            inc = re.compile(include)
        except re.error as e:
            raise NMRefValueError(f"include is not a valid regular expression: {e}") from None
    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / "model.safetensors.index.json").is_file():
            raise NMRefValueError(f"{str(path)!r} is a directory without model.safetensors.index.json; expected a "
                                  ".safetensors or .npz file, or a sharded checkpoint directory")
        tensors = _iter_sharded(path)
    elif not path.is_file():
        raise NMRefValueError(f"{str(path)!r} does not exist; expected a .safetensors or .npz file or a sharded "
                              "checkpoint directory")
    elif suffix == ".safetensors":
        tensors = _iter_safetensors(path)
    elif suffix == ".npz":
        tensors = _iter_npz(path)
    else:
        raise NMRefValueError(f"{path}: expected a .safetensors or .npz file, got suffix {suffix!r}")
    reports = []
    for name, arr in tensors:
        floating = is_float_dtype(arr.dtype)
        if include is not None:
            expected = bool(inc.search(name))
        else:
            expected = floating and arr.ndim >= 2 and not re.search(DENSE_NAMES, name, re.IGNORECASE)
        reports.append(_check_tensor(name, arr, n, m, axis, expected, max_violations))
    if include is not None and reports and not any(r.expected_sparse for r in reports):
        raise NMRefValueError(f"include {include!r} matches none of the {len(reports)} tensor names (e.g. "
                              f"{', '.join(repr(r.name) for r in reports[:3])}); nothing would be checked")
    expected = [r for r in reports if r.expected_sparse]
    if expected and not any(-len(r.shape) <= axis < len(r.shape) for r in expected):
        raise NMRefValueError(f"axis {axis} is out of range for every tensor that should be sparse "
                              f"(they have {sorted({len(r.shape) for r in expected})} dimensions)")
    return reports


def report_dict(reports) -> list[dict]:
    return [dict(asdict(r), failed=r.failed) for r in reports]
