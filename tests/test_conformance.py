"""The conformance kit (nmref.testing, `nmref conform`, the pytest plugin): the reference conforms to
itself and keeps the error contract on every operation; correct PyTorch implementations pass; each
deliberately different one fails with a minimal counterexample, through the API, the command line and
the pytest plugin; reproductions reproduce."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

import nmref
import nmref.testing as nt
from nmref.cli import main as cli
from nmref.testing.contract import check_error_contract

SMALL = 25  # examples per operation in the every-operation sweeps (the CLI default is 200)

ALL_OPS = nt.op_names()


def test_registry_covers_every_public_operation():
    public = {n for n in nmref.__all__ if callable(getattr(nmref, n)) and not isinstance(getattr(nmref, n), type)}
    not_ops = {"golden_cases", "write_golden", "verify_golden", "load_case",  # the golden machinery itself
               "init_adam_state"} - set(ALL_OPS)
    assert public - set(ALL_OPS) - not_ops == set()
    assert "histogram_threshold" in ALL_OPS  # ThresholdHistogram, as one call


@pytest.mark.parametrize("op", ALL_OPS)
def test_reference_conforms_to_itself(op):
    report = nt.check_conforms(op, nt.reference(op), examples=SMALL)
    assert report.examples >= 1  # fewer than SMALL only when the op's whole input space is smaller


@pytest.mark.parametrize("op", ALL_OPS)
def test_reference_keeps_the_error_contract(op):
    assert check_error_contract(op, examples=15) >= 1


def test_error_contract_catches_a_builtin_error():
    """The checker itself can fail: an op whose reference lets a builtin TypeError escape is reported."""
    from nmref.testing import contract
    spec = nt.get_op("pattern_bits")
    accepts_anything = spec.__class__(**{**spec.__dict__, "ref": lambda n, m: 0})
    builtin_error = spec.__class__(**{**spec.__dict__, "ref": lambda n, m: n + m})  # "1" + 4: a builtin TypeError
    orig = dict(nt.OPS)
    try:
        nt.OPS["pattern_bits"] = builtin_error
        with pytest.raises(AssertionError, match="expected NMRefTypeError"):
            contract.check_error_contract("pattern_bits", examples=5)
        nt.OPS["pattern_bits"] = accepts_anything
        with pytest.raises(AssertionError, match="returned a result, expected NMRefTypeError"):
            contract.check_error_contract("pattern_bits", examples=5)
    finally:
        nt.OPS.clear()
        nt.OPS.update(orig)


# ------------------------------------------------------------------ what the kit reports
def test_run_case_reports_each_kind_of_difference():
    w = np.array([[1.0, 1.0, 0.0, 0.0]], np.float32)
    ok = nt.run_case("nm_mask", nmref.nm_mask, {"w": w, "n": 2, "m": 4})
    assert ok.ok
    as_int = nt.run_case("nm_mask", lambda *a, **k: nmref.nm_mask(*a, **k).astype(np.uint8), {"w": w, "n": 2, "m": 4})
    assert "dtype uint8, expected bool" in as_int.reasons[0]
    raises = nt.run_case("nm_mask", lambda *a, **k: 1 / 0, {"w": w, "n": 2, "m": 4})
    assert "raised ZeroDivisionError" in raises.reasons[0]

    def mutating(w, n, m, **k):
        w[...] = 0
        return nmref.nm_mask(np.array([[1.0, 1.0, 0.0, 0.0]], np.float32), n, m, **k)
    assert any("modified its inputs" in r for r in nt.run_case("nm_mask", mutating, {"w": w, "n": 2, "m": 4}).reasons)
    tup = nt.run_case("compress_nm", lambda *a, **k: nmref.compress_nm(*a, **k)[0], {"w": w, "n": 2, "m": 4})
    assert "returns 2 values" in tup.reasons[0]
    nan_in = {"w": np.array([np.nan, 1, 2, 3], np.float32), "n": 2, "m": 4}
    silent = nt.run_case("nm_mask", lambda w, n, m, **k: np.ones(w.shape, bool), nan_in, errors=True)
    assert "the reference raises NMRefValueError" in silent.reasons[0]
    assert nt.run_case("nm_mask", lambda *a, **k: 1 / 0, nan_in, errors=True).ok  # any error will do ...
    strict = nt.run_case("nm_mask", lambda *a, **k: 1 / 0, nan_in, errors=True, strict_errors=True)
    assert "the reference raises a ValueError" in strict.reasons[0]  # ... unless strict


def test_tolerance_is_relative_to_the_scale_and_nonfinite_must_match():
    x = np.array([1.0, -1.0], np.float32)
    w = np.array([[1e6, 1e6]], np.float32)
    base = {"x": x, "w": w, "t": -1.0}
    # y = 1e6 − 1e6 = 0: an error of 1 in a sum of terms of size 1e6 is float32 rounding, not a difference
    assert nt.run_case("gemv_input_sparse", lambda x, w, t: np.array([1.0], np.float32), base).ok
    assert not nt.run_case("gemv_input_sparse", lambda x, w, t: np.array([100.0], np.float32), base).ok
    assert nt.compare(np.array([np.inf]), np.array([np.inf]), nt.Tol(1e-5)) is None
    assert nt.compare(np.array([1e300]), np.array([np.inf]), nt.Tol(1.0, 1e300)) is not None
    assert nt.compare(np.array([np.nan]), np.array([1.0]), nt.Tol(1.0, 1.0)) is not None


def test_exact_rationals():
    assert nt.compare(Fraction(3, 32), Fraction(3, 32)) is None
    assert nt.compare(3 / 32, Fraction(3, 32)) is None          # a float passes as the correctly rounded value
    assert nt.compare(0.1, Fraction(1, 10)) is None
    assert nt.compare(float(np.nextafter(0.1, 1.0)), Fraction(1, 10)) is not None  # one ulp off
    assert nt.compare(Fraction(1, 3), Fraction(1, 3) + Fraction(1, 10 ** 30)) is not None
    assert nt.compare(True, Fraction(1)) is not None


@pytest.mark.parametrize("value", [
    np.array([[1.5, -0.0, np.inf], [np.nan, 2 ** -149, -3.0]], np.float32),
    np.arange(6, dtype=np.int16).reshape(2, 3), np.array([True, False]), np.zeros((0, 3), np.float64),
    np.array([1.0, -0.0, 3.5], dtype=nt.strategies.dtype_of("bfloat16")),
    {"step": 3, "exp_avg": np.ones(2, np.float16)}, (Fraction(1, 3), 2), b"\x00\xff", float("-inf"),
    np.where(np.arange(100) == 7, 2.5, 0.0).astype(np.float16)])
def test_source_rebuilds_every_value_exactly(value):
    import ml_dtypes  # noqa: F401 - used by the generated source
    from nmref.testing.values import source, sparse_array  # noqa: F401
    rebuilt = eval(source(value))
    if isinstance(value, np.ndarray):
        assert rebuilt.dtype == value.dtype and rebuilt.shape == value.shape
        assert rebuilt.tobytes() == value.tobytes()
    else:
        assert nt.compare(rebuilt, value) is None


# ------------------------------------------------------------------ foreign implementations (PyTorch)
def _torch():
    pytest.importorskip("torch")
    import torch_impls
    return torch_impls


PEER_OPS = ["nm_mask", "compress_24_cutlass", "adamw_step", "kl_forward", "exact_threshold"]


@pytest.mark.parametrize("op", PEER_OPS)
def test_correct_torch_implementation_conforms(op):
    ti = _torch()
    assert nt.check_conforms(op, getattr(ti.correct, op), examples=200).examples == 200


def _size_of_counterexample(op, inputs):
    if op == "nm_mask":
        return inputs["w"].size // inputs["m"]                    # groups
    if op == "compress_24_cutlass":
        w = inputs["w"]
        return int((w.reshape(w.shape[0], -1, 4) != 0).any(-1).sum())  # groups holding a nonzero
    if op == "adamw_step":
        return inputs["params"].size
    if op == "kl_forward":
        return inputs["student_logits"].size
    return inputs["x"].size


@pytest.mark.parametrize("op", PEER_OPS)
def test_each_wrong_implementation_fails_with_a_minimal_counterexample(op):
    ti = _torch()
    with pytest.raises(nt.ConformanceError) as info:
        nt.check_conforms(op, getattr(ti.wrong, op))
    err = info.value
    limit = 1 if op in ("nm_mask", "compress_24_cutlass") else 6   # one group / a handful of elements
    assert _size_of_counterexample(op, err.inputs) <= limit, err.repro
    # the reproduction is copy-paste Python that shows the same difference
    ns = {}
    exec(err.repro.replace("impl = ...  # your implementation", f"import torch_impls\nimpl = torch_impls.wrong.{op}"), ns)
    spec = nt.get_op(op)
    want, got = spec.outputs_of(ns["want"]), spec.outputs_of(ns["got"])
    rules = spec.rules(err.inputs, want)
    assert any(nt.compare(got[k], want[k], rules[k]) for k in want)


@pytest.mark.parametrize("op", PEER_OPS)
def test_cli_conform_exit_codes_and_reproduction(op, capsys):
    _torch()
    assert cli(["conform", "--impl", "torch_impls:correct", "--op", op, "--examples", "50"]) == 0
    assert f"{op}: conforms on 50 examples" in capsys.readouterr().out
    assert cli(["conform", "--impl", f"torch_impls:wrong.{op}", "--op", op]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS from the reference" in out and f'want = reference("{op}")' in out
    repro = out[out.index("# nmref conform"):]
    ns = {}
    exec(repro, ns)  # the printed reproduction loads the implementation itself
    assert "got" in ns and "want" in ns


def test_cli_conform_all_and_usage_errors(capsys):
    _torch()
    assert cli(["conform", "--impl", "torch_impls:correct", "--op", "all", "--examples", "20"]) == 0
    out = capsys.readouterr().out
    assert sum("conforms on 20 examples" in line for line in out.splitlines()) == len(PEER_OPS)
    assert cli(["conform", "--impl", "torch_impls:wrong", "--op", "all", "--examples", "50"]) == 1
    assert capsys.readouterr().out.count("DIFFERS") == len(PEER_OPS)
    for argv, msg in ((["conform", "--impl", "no_such_module_xyz:f", "--op", "nm_mask"], "cannot import module"),
                      (["conform", "--impl", "torch_impls:nope", "--op", "nm_mask"], "has no attribute 'nope'"),
                      (["conform", "--impl", "torch_impls:correct", "--op", "no_such_op"], "conformance kit's operations"),
                      (["conform", "--impl", "torch_impls:correct", "--op", "sparsify"], "has no callable 'sparsify'"),
                      (["conform", "--op", "nm_mask"], "needs --impl"),
                      (["conform", "--impl", "torch_impls:correct", "--op", "nm_mask", "--examples", "0"], "examples")):
        assert cli(argv) == 2, argv
        assert msg in capsys.readouterr().err, argv


def test_cli_conform_list(capsys):
    assert cli(["conform", "--list"]) == 0
    out = capsys.readouterr().out
    for op in ALL_OPS:
        assert out.startswith(op) or f"\n{op} " in out
    assert "contract: state and hyper are plain dicts" in out


def test_pytest_plugin_fixture(pytester):
    _torch()
    pytester.syspathinsert(os.path.dirname(__file__))
    pytester.makepyfile("""
        import torch_impls

        def test_correct_mask(nmref_conform):
            nmref_conform("nm_mask", torch_impls.correct.nm_mask)

        def test_wrong_threshold(nmref_conform):
            nmref_conform("exact_threshold", torch_impls.wrong_threshold_floor)

        def test_wrong_kl(nmref_conform):
            nmref_conform("kl_forward", torch_impls.wrong_kl_scaled_by_t, examples=100)
    """)
    result = pytester.runpytest("--nmref-examples", "60")  # the plugin comes in through its pytest11 entry point
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*exact_threshold: the implementation differs from nmref's reference*",
                                 "*x = np.array(*", "*p = *", "*kl_forward: the implementation differs*"])


def test_inputs_outside_an_implementations_domain_are_skipped_and_counted(capsys):
    def float32_only(w, n, m, **kw):
        if w.dtype != np.float32:
            raise NotImplementedError("float32 only")
        return nmref.nm_mask(w, n, m, **kw)
    report = nt.check_conforms("nm_mask", float32_only, examples=60)
    assert report.examples == 60 and report.unsupported > 0 and "outside its domain skipped" in str(report)

    def nothing(*a, **k):
        raise NotImplementedError
    with pytest.raises(nmref.NMRefValueError, match="outside the implementation's domain"):
        nt.check_conforms("nm_mask", nothing, examples=10)
    res = dict(nmref.verify_golden(nmref.golden.golden_dir(2), impl={"nm_mask": float32_only}))
    assert res["nm_mask_2_4_bfloat16"] == "unsupported" and res["nm_mask_2_4"] is None


def test_errors_mode_draws_rejected_inputs(capsys):
    """With errors=True the kit also draws NaN elements and partial groups: the reference raises on
    them, so an implementation that silently returns a result there is reported (strictly: it must
    raise the same builtin class)."""
    assert nt.check_conforms("nm_mask", nmref.nm_mask, errors=True, strict_errors=True).examples == 200
    assert nt.check_conforms("is_nm_sparse", nmref.is_nm_sparse, errors=True, strict_errors=True).examples == 200
    def valid(w, m, axis=-1, **_):
        return not np.isnan(w.astype(np.float32)).any() and w.shape[axis] % m == 0

    def lenient(w, n, m, **k):  # right on valid inputs, a silent answer on the others
        return nmref.nm_mask(w, n, m, **k) if valid(w, m, **k) else np.zeros(w.shape, bool)

    def wrong_error(w, n, m, **k):  # right on valid inputs, the wrong exception class on the others
        return nmref.nm_mask(w, n, m, **k) if valid(w, m, **k) else 1 / 0
    with pytest.raises(nt.ConformanceError, match="the reference raises NMRefValueError"):
        nt.check_conforms("nm_mask", lenient, errors=True)
    with pytest.raises(nt.ConformanceError, match="the reference raises a ValueError"):
        nt.check_conforms("nm_mask", wrong_error, errors=True, strict_errors=True)
    assert nt.check_conforms("nm_mask", lenient).examples == 200  # no invalid input is drawn without errors
    assert cli(["conform", "--impl", "nmref.testing:REFERENCE", "--op", "nm_mask", "--errors", "--examples", "50"]) == 0
    assert "conforms on 50 examples" in capsys.readouterr().out
