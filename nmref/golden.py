"""Golden test vectors: frozen inputs and nmref's outputs for other implementations to check against.

A golden set is a directory ``v<N>/`` holding ``manifest.json`` and one ``cases/<name>.npz`` per case
(NumPy's zip of ``.npy`` files: readable with NumPy alone, never a pickle). Each case names the
operation (``op``), its parameters, the arrays in the file (``in_*`` inputs, ``out_*`` expected
outputs), the file's SHA-256, and how to compare: ``"exact"`` (bitwise: masks, formats, indices,
ratios, anything only selected or moved) or ``{"rtol": r, "atol": a}`` (``|got − want| ≤ atol +
rtol·|want|`` elementwise, for arithmetic whose rounding depends on the order of operations).
A set is frozen once written: a change of semantics gets a new version, never an edit.

* Version 1 (25 cases) is written from :func:`golden_cases`; versions 2 and 3 (every public operation
  and mode; 3 adds the operations registered with ``since=3``) from the conformance registry
  :data:`nmref.testing.OPS`, with each case's call spelled out (``"call": {"args": [...], "kwargs":
  [...]}``), so any implementation can be run over them.
* The released sets ship inside the package (:func:`golden_dir`); :data:`PINNED_DIGESTS` holds each
  one's digest (:func:`set_digest`), so a deleted, added or edited case is detected.
* :func:`verify_golden` recomputes every case with this nmref, or with a foreign implementation
  (``impl=``); ``nmref golden verify`` is its command line. :func:`write_golden` makes a new set.
"""
from __future__ import annotations

import datetime
import functools
import hashlib
import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._checks import NMRefValueError, is_float_dtype

__all__ = ["GOLDEN_FORMAT", "GoldenCase", "golden_cases", "write_golden", "verify_golden", "load_case", "golden_dir",
           "set_digest", "check_integrity", "PINNED_DIGESTS", "RELEASED"]

GOLDEN_FORMAT = "nmref-golden"
EXACT = "exact"


@dataclass(frozen=True)
class GoldenCase:
    """``make(rng) -> inputs``; ``run(inputs, **params) -> outputs`` (dicts of arrays, keys without prefix)."""
    name: str
    op: str
    doc: str
    make: Callable
    run: Callable
    params: dict = field(default_factory=dict)
    compare: object = EXACT


def _ties(rng, shape, dtype=np.float32):
    """Small integers with repeats, zeros of both signs: every group tie rule is exercised."""
    w = rng.integers(-3, 4, size=shape).astype(dtype)
    w[rng.random(shape) < 0.1] = -0.0
    return w


def _pruned(rng, shape, dtype):
    """2:4-sparse ties (the compressors' input), with groups of fewer than 2 nonzeros."""
    import nmref
    w = _ties(rng, shape, dtype)
    return nmref.masked_weight(w, nmref.nm_mask(w, 2, 4)).astype(dtype)


def _adam_run(step_fn, extra):
    """Three optimizer steps from a zero state with the given per-step gradients."""
    def run(inp, **p):
        import nmref
        hyper = nmref.AdamHyper(**{k: p[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay")})
        params, state = inp["params"].copy(), nmref.init_adam_state(inp["params"])
        kw = {k: p[k] for k in extra}
        if "mask" in inp:
            kw["mask"] = inp["mask"]
        for g in inp["grads"]:
            params, state = step_fn(params, g, state, hyper, **kw)
        return {"params": params, "exp_avg": state.exp_avg, "exp_avg_sq": state.exp_avg_sq}
    return run


_HYPER = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}


def _adam_inputs(rng, with_mask=True):
    import nmref
    p = rng.standard_normal(64).astype(np.float32)
    d = {"params": p, "grads": rng.standard_normal((3, 64)).astype(np.float32)}
    if with_mask:
        d["mask"] = nmref.nm_mask(p, 2, 4)
    return d


def _cases():
    import nmref as N
    f16 = np.float16
    c = []
    for n, m, shape, axis in ((2, 4, (8, 16), -1), (1, 4, (4, 16), -1), (4, 8, (4, 32), -1), (3, 8, (16, 6), 0)):
        c.append(GoldenCase(f"nm_mask_{n}_{m}" + ("_axis0" if axis == 0 else ""), "nm_mask", "docs/masks.md",
                            lambda r, s=shape: {"w": _ties(r, s)},
                            lambda i, n, m, axis: {"mask": N.nm_mask(i["w"], n, m, axis=axis)},
                            {"n": n, "m": m, "axis": axis}))
    c.append(GoldenCase("nm_mask_2_4_edge", "nm_mask", "docs/masks.md",
                        lambda r: {"w": np.array([[np.inf, 1, -np.inf, 0], [0, -0.0, 0, 0], [5, 5, 5, 5],
                                                  [-1, 1, -1, 1], [1e-45, 0, -1e-45, 0], [3, -7, 7, -3]], np.float32)},
                        lambda i, n, m: {"mask": N.nm_mask(i["w"], n, m)}, {"n": 2, "m": 4}))
    c.append(GoldenCase("transposable_2_4", "transposable_nm_mask", "docs/masks.md",
                        lambda r: {"w": _ties(r, (8, 12))}, lambda i: {"mask": N.transposable_nm_mask(i["w"])}))
    c.append(GoldenCase("soft_threshold_2_4", "soft_threshold_nm", "docs/masks.md",
                        lambda r: {"w": r.standard_normal((4, 16)).astype(np.float32)},
                        lambda i, n, m: {"w": N.soft_threshold_nm(i["w"], n, m)}, {"n": 2, "m": 4},
                        {"rtol": 1e-6, "atol": 0.0}))
    fmt = [("compress_24_packed", (16, 64), ("values", "meta")),
           ("compress_24_packed_t", (16, 64), ("values_t", "meta_t")),
           ("compress_24_mma", (24, 128), ("values", "meta_mma")),
           ("compress_24_cutlass", (32, 64), ("values", "meta")),
           ("compress_24_bitmask", (8, 32), ("values", "bitmask"))]
    for op, shape, names in fmt:
        def run(i, op=op, names=names):
            return dict(zip(names, getattr(N, op)(i["w"])))
        c.append(GoldenCase(op, op, "docs/formats.md", lambda r, s=shape: {"w": _pruned(r, s, f16)}, run))
    c.append(GoldenCase("compress_nm_2_8", "compress_nm", "docs/formats.md",
                        lambda r: {"w": _ties(r, (6, 32))},
                        lambda i, n, m: dict(zip(("values", "indices"), N.compress_nm(i["w"], n, m))), {"n": 2, "m": 8}))
    c.append(GoldenCase("encode_mask_enumerative_2_4", "encode_mask_enumerative", "docs/formats.md",
                        lambda r: {"mask": N.nm_mask(r.standard_normal((8, 32)), 2, 4)},
                        lambda i, n, m: {"bytes": np.frombuffer(N.encode_mask_enumerative(i["mask"], n, m), np.uint8)},
                        {"n": 2, "m": 4}))
    tol32 = {"rtol": 1e-5, "atol": 1e-7}
    c.append(GoldenCase("adamw_3_steps", "adamw_step", "docs/optimizers.md",
                        lambda r: _adam_inputs(r, False), _adam_run(N.adamw_step, ()), dict(_HYPER), tol32))
    for mode in ("update", "gradient"):
        c.append(GoldenCase(f"ast_adamw_{mode}_3_steps", "ast_adamw_step", "docs/optimizers.md", _adam_inputs,
                            _adam_run(N.ast_adamw_step, ("lam", "second_moment")),
                            dict(_HYPER, lam=2e-4, second_moment=mode), tol32))
    c.append(GoldenCase("adams_3_steps", "adams_step", "docs/optimizers.md", _adam_inputs,
                        _adam_run(N.adams_step, ("lam", "ramp_steps")),
                        dict(_HYPER, lam=2e-4, ramp_steps=2), tol32))
    c.append(GoldenCase("sr_ste_grad", "sr_ste_grad", "docs/optimizers.md", _adam_inputs,
                        lambda i, lam: {"grad": N.sr_ste_grad(i["grads"][0], i["params"], i["mask"], lam)},
                        {"lam": 2e-4}, tol32))
    c.append(GoldenCase("distill_loss_forward", "distill_loss", "docs/optimizers.md",
                        lambda r: {"student_logits": r.standard_normal((4, 10)), "teacher_logits": r.standard_normal((4, 10)),
                                   "targets": r.integers(0, 10, 4)},
                        lambda i, alpha, temperature, kind: dict(zip(("loss", "grad"), N.distill_loss(
                            i["student_logits"], i["teacher_logits"], i["targets"], alpha=alpha,
                            temperature=temperature, kind=kind))),
                        {"alpha": 0.7, "temperature": 2.0, "kind": "forward"}, {"rtol": 1e-12, "atol": 1e-15}))
    c.append(GoldenCase("exact_threshold_p50", "exact_threshold", "docs/activation.md",
                        lambda r: {"x": r.standard_normal(257).astype(np.float32)},
                        lambda i, p: {"t": np.asarray(N.exact_threshold(i["x"], p))}, {"p": 0.5}))

    def teal_in(r):
        x = r.standard_normal(64).astype(f16)
        return {"x": x, "w": r.standard_normal((16, 64)).astype(f16),
                "t": np.asarray(np.quantile(np.abs(x.astype(np.float64)), 0.5))}
    tol_gemv = {"rtol": 1e-5, "atol": 1e-5}
    c.append(GoldenCase("gemv_input_sparse_p50", "gemv_input_sparse", "docs/activation.md", teal_in,
                        lambda i: {"y": N.gemv_input_sparse(i["x"], i["w"], float(i["t"]))}, {}, tol_gemv))

    def teal24(i):
        vt, mt = N.compress_24_packed_t(i["w"])
        return {"y": N.gemv_input_sparse_24_packed_t(i["x"], vt, mt, float(i["t"]))}
    c.append(GoldenCase("gemv_input_sparse_24_packed_t_p50", "gemv_input_sparse_24_packed_t", "docs/activation.md",
                        teal_in, teal24, {}, tol_gemv))

    def gemv24_in(r):
        v, m = N.compress_24_packed(r.standard_normal((16, 64)).astype(f16))
        return {"x": r.standard_normal((3, 64)).astype(f16), "values": v, "meta": m}
    c.append(GoldenCase("gemv_24_packed", "decompress_24_packed", "docs/gpu.md (y = x (W⊙M)ᵀ, float64)", gemv24_in,
                        lambda i: {"y": i["x"].astype(np.float64) @ N.decompress_24_packed(
                            i["values"], i["meta"]).astype(np.float64).T}, {}, {"rtol": 1e-12, "atol": 1e-12}))

    def slorb_in(r):
        w = r.standard_normal((8, 16))
        return {"x": r.standard_normal((3, 16)), "w": w, "mask": N.nm_mask(w, 2, 4),
                "s": r.standard_normal((8, 4))}
    c.append(GoldenCase("slorb_forward_k4", "slorb_forward", "docs/optimizers.md", slorb_in,
                        lambda i, k: {"y": N.slorb_forward(i["x"], i["w"], i["mask"], i["s"], k)}, {"k": 4},
                        {"rtol": 1e-12, "atol": 1e-12}))
    return c


@functools.lru_cache(maxsize=None)
def golden_cases() -> tuple[GoldenCase, ...]:
    """The cases of version 1 (built on first use: they call nmref's public functions)."""
    return tuple(_cases())


#: Versions of the released golden sets (shipped in the package) and each one's digest (:func:`set_digest`).
RELEASED = (1, 2, 3)
PINNED_DIGESTS = {
    1: "aacbd4d1d0358c01bb73de5b269d8e5f484430629fead3105eb04d48f22e05db",
    2: "0c6f3d7c6cdb13e4846b310eeaba4b12956776dde69997fde33673f47960cd9a",
    3: "9eaf596a2f141cd145bddd86ebc8f0c4f19ff66d2bf71b5fec27df8c92a8c66f",
}
_HERE = Path(__file__).resolve().parent


def golden_dir(version: int | str = RELEASED[-1]) -> Path:
    """The directory of a released set: the copy packaged with nmref (``nmref/_golden/v<N>``), else the
    repository's ``golden/v<N>`` (an editable install or a source checkout)."""
    name = str(version) if str(version).startswith("v") else f"v{version}"
    for cand in (_HERE / "_golden" / name, _HERE.parent / "golden" / name):
        if (cand / "manifest.json").is_file():
            return cand
    raise NMRefValueError(f"no released golden set {name!r} in this nmref (released: {['v%d' % v for v in RELEASED]})")


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _v1_entry(case: GoldenCase, rng):
    inputs = case.make(rng)
    outputs = case.run(dict(inputs), **case.params)
    arrays = {f"in_{n}": np.asarray(a) for n, a in inputs.items()}
    arrays.update({f"out_{n}": np.asarray(a) for n, a in outputs.items()})
    return arrays, {"name": case.name, "op": case.op, "doc": case.doc, "params": case.params,
                    "inputs": sorted(inputs), "outputs": sorted(outputs),
                    "dtypes": {n: str(a.dtype) for n, a in arrays.items()}, "compare": case.compare}


def _registry_cases(version: int = 2):
    """``[(case name, spec, make)]`` of ``version``: the fixed golden cases of every operation in it
    (``spec.since <= version``), in registry order."""
    from .testing.ops import OPS
    return [(f"{spec.name}_{suffix}" if suffix else spec.name, spec, make)
            for spec in OPS.values() if spec.since <= version for suffix, make in spec.golden]


def _v2_entry(name, spec, make, rng):
    from .testing.values import EXACT, encode, is_jsonable
    inputs = make(rng)
    args, kwargs = spec.call_args(dict(inputs))
    want = spec.outputs_of(spec.ref(*args, **kwargs))
    params = {k: v for k, v in inputs.items() if is_jsonable(v)}
    arrays, in_types, out_types = {}, {}, {}
    for k, v in inputs.items():
        if k not in params:
            a, in_types[k] = encode(f"in_{k}", v)
            arrays.update(a)
    for k, v in want.items():
        a, out_types[k] = encode(f"out_{k}", v)
        arrays.update(a)
    rules = spec.rules(inputs, want)
    order = [a for a in spec.args if a in inputs] + [k for k in inputs if k not in spec.args]
    return arrays, {"name": name, "op": spec.name, "doc": spec.doc,
                    "call": {"args": [a for a in order if a in spec.args], "kwargs": [k for k in order if k not in spec.args]},
                    "params": params, "inputs": in_types, "outputs": out_types,
                    "dtypes": {n: str(a.dtype) for n, a in arrays.items()},
                    "compare": {k: (EXACT if r == EXACT else r.as_json()) for k, r in rules.items()}}


def write_golden(directory, *, version: int = RELEASED[-1] + 1, seed: int = 20261122) -> Path:
    """Write a new golden set to ``directory`` (which must not exist) and return it; all or nothing:
    the set is built in a temporary sibling directory and renamed into place. Version 1 is written
    from :func:`golden_cases`, later versions from the conformance registry. The default version is
    the next unreleased one (a released version's number is pinned to its released digest, so a set
    written again under it verifies only if it is bit for bit the released one)."""
    import nmref
    from ._checks import check_int
    version = check_int("version", version, minimum=1)
    directory = Path(directory)
    if directory.exists():
        raise NMRefValueError(f"directory {str(directory)!r} exists; golden sets are frozen (write a new version)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (tmp / "cases").mkdir()
        entries = []
        if version == 1:
            made = [_v1_entry(case, np.random.default_rng([seed, k])) for k, case in enumerate(golden_cases())]
        else:
            made = [_v2_entry(name, spec, make, np.random.default_rng([seed, k]))
                    for k, (name, spec, make) in enumerate(_registry_cases(version))]
        for arrays, entry in made:
            data = _npz_bytes(arrays)
            (tmp / "cases" / f"{entry['name']}.npz").write_bytes(data)
            entry = dict(entry, file=f"cases/{entry['name']}.npz", sha256=hashlib.sha256(data).hexdigest())
            entries.append(entry)
        manifest = {"format": GOLDEN_FORMAT, "version": version, "created": datetime.date.today().isoformat(),
                    "generator": f"nmref {nmref.__version__}, nmref.golden.write_golden(seed={seed})",
                    "compare_rule": "exact: bitwise equal arrays (same dtype, shape); otherwise elementwise "
                                    "|got - want| <= atol + rtol*|want| in float64",
                    "cases": entries}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _read_manifest(directory: Path) -> dict:
    path = directory / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise NMRefValueError(f"{str(directory)!r} has no manifest.json: pass the directory of a golden set "
                              f"(or a released version: {', '.join('v%d' % v for v in RELEASED)})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NMRefValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != GOLDEN_FORMAT or \
            not isinstance(manifest.get("cases"), list):
        raise NMRefValueError(f"{path} is not an {GOLDEN_FORMAT} manifest")
    return manifest


def set_digest(directory) -> str:
    """SHA-256 over the set's canonical manifest (case names, entries, the files' recorded hashes) and
    the sorted names of the files present: any deleted, added or edited case changes it."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    present = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                     if p.is_file() and p.name != "manifest.json")
    blob = json.dumps({"manifest": manifest, "files": present}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def check_integrity(directory) -> list[str]:
    """Problems that make a set untrustworthy as a whole (empty list: none): unlisted files, listed
    files that are missing, and a digest that differs from the one pinned for the set's version."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    listed = {e.get("file") for e in manifest["cases"] if isinstance(e, dict)}
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    problems = [f"unlisted file {f!r} (not in manifest.json)" for f in sorted(present - listed)]
    problems += [f"listed file {f!r} is missing" for f in sorted(listed - present)]
    pinned = PINNED_DIGESTS.get(manifest.get("version"))
    if pinned is not None and set_digest(directory) != pinned:
        problems.append(f"the set's digest differs from the one this nmref pins for version {manifest.get('version')}: "
                        "a case was deleted, added or edited (restore the released set, or write a new version)")
    return problems


def load_case(directory, entry: dict) -> tuple[dict, dict]:
    """``(inputs, outputs)`` of one manifest entry, after checking the file's SHA-256 (no pickles).
    Version-2 entries decode their stored types and merge the JSON ``params`` into the inputs."""
    path = Path(directory) / entry["file"]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NMRefValueError(f"{path}: listed in the manifest but missing") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise NMRefValueError(f"{path}: SHA-256 differs from the manifest (file changed, truncated or corrupt)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - a corrupt zip/npy is a value error of the set
        raise NMRefValueError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    if "call" not in entry:  # version 1: plain arrays
        return ({k[3:]: v for k, v in arrays.items() if k.startswith("in_")},
                {k[4:]: v for k, v in arrays.items() if k.startswith("out_")})
    from .testing.values import decode
    inputs = dict(entry["params"])
    inputs.update({k: decode(f"in_{k}", t, arrays) for k, t in entry["inputs"].items()})
    order = entry["call"]["args"] + entry["call"]["kwargs"]
    return {k: inputs[k] for k in order}, {k: decode(f"out_{k}", t, arrays) for k, t in entry["outputs"].items()}


def compare(got, want, rule) -> str | None:
    """``None`` if ``got`` matches ``want`` under ``rule``, else a one-line reason."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if rule == EXACT:
        if got.dtype != want.dtype:
            return f"dtype {got.dtype} != {want.dtype}"
        # floats compared as bytes: -0.0 != 0.0 and NaN payloads count
        same = np.array_equal(got.reshape(-1).view(np.uint8) if is_float_dtype(got.dtype) else got,
                              want.reshape(-1).view(np.uint8) if is_float_dtype(want.dtype) else want)
        return None if same else f"{int(np.sum(got != want))} elements differ"
    g, w = got.astype(np.float64), want.astype(np.float64)
    bad = ~(np.abs(g - w) <= rule["atol"] + rule["rtol"] * np.abs(w))
    if bad.any():
        err = np.max(np.abs(g - w) / np.maximum(np.abs(w), 1e-300))
        return f"{int(bad.sum())} of {bad.size} elements outside tolerance (max rel err {err:.2e})"
    return None


def _rule(rule):
    from .testing.values import EXACT, Tol
    return EXACT if rule == EXACT else Tol(rule["rtol"], rule["atol"])


def _check_v2_case(entry, inputs, want, fn) -> str | None:
    from .testing.ops import get_op
    from .testing.values import compare as compare_value
    spec = get_op(entry["op"])
    args, kwargs = spec.call_args({k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in inputs.items()})
    try:
        got = spec.outputs_of(fn(*args, **kwargs))
    except NotImplementedError:
        return "unsupported"
    reasons = [f"{k}: {r}" for k in want
               if (r := compare_value(got.get(k), want[k], _rule(entry["compare"][k])))]
    return "; ".join(reasons) or None


def verify_golden(directory, impl=None) -> list[tuple[str, str | None]]:
    """Recompute every case of the set in ``directory``: ``[(case name, None or reason)]``, and a first
    entry ``("(set)", reason)`` when :func:`check_integrity` finds a problem.

    ``impl``: a foreign implementation (version-2 sets): a namespace (module, object, dict) whose
    attribute ``<op>`` implements each operation under the adapter contract (``nmref.testing``); a case
    whose operation it lacks is reported as ``"not implemented"``, one it raises ``NotImplementedError``
    on as ``"unsupported"`` (outside its domain). Without ``impl``, this nmref."""
    from .testing.conform import resolve_impl
    from .testing.ops import OPS
    directory = Path(directory)
    manifest = _read_manifest(directory)
    results = [("(set)", "; ".join(p)) for p in [check_integrity(directory)] if p]
    if impl is not None and manifest.get("version", 1) < 2:
        raise NMRefValueError(f"{directory}: version {manifest.get('version')} sets predate the call convention "
                              "a foreign implementation needs; verify it against version 2 (nmref golden verify v2)")
    known = {c.name: c for c in golden_cases()}
    for entry in manifest["cases"]:
        name = entry.get("name", "?")
        try:
            inputs, want = load_case(directory, entry)
            if "call" not in entry:
                case = known.get(name)
                if case is None:
                    results.append((name, "no such case in this nmref"))
                    continue
                got = case.run(dict(inputs), **entry["params"])
                reasons = [f"{k}: {r}" for k in want if (r := compare(got.get(k), want[k], entry["compare"]))]
                missing = sorted(set(want) - set(got))
                results.append((name, "; ".join(reasons + [f"missing {missing}"] * bool(missing)) or None))
                continue
            if entry["op"] not in OPS:
                results.append((name, f"operation {entry['op']!r} is unknown to this nmref"))
                continue
            fn = OPS[entry["op"]].ref if impl is None else resolve_impl(impl, entry["op"])
            results.append((name, "not implemented" if fn is None else _check_v2_case(entry, inputs, want, fn)))
        except Exception as e:  # noqa: BLE001 - every case is reported, one failure does not hide others
            results.append((name, f"{type(e).__name__}: {e}"))
    return results
