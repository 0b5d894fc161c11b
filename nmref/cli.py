"""The ``nmref`` command line: ``nmref <command> --help`` for each command.

One exit-code contract for every command (``docs/errors.md``): :data:`EXIT_OK` success / conforms,
:data:`EXIT_DIFFERS` the checked thing differs or fails, :data:`EXIT_USAGE` a usage or input error
(a bad option, a missing or unreadable file, an implementation module that cannot be imported),
:data:`EXIT_DIVERGED` a training run diverged, :data:`EXIT_INTERNAL` a bug in nmref,
:data:`EXIT_INTERRUPTED` interrupted (Ctrl-C). Every error is one line on stderr naming the culprit;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ._checks import NMRefValueError

from .io import atomic_write_text

EXIT_OK, EXIT_DIFFERS, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = ("exit codes: 0 success / conforms; 1 the checked thing differs or fails; 2 usage or input error "
              "(bad option, unreadable file, implementation that cannot be imported); 3 a training run diverged; "
              "4 internal error (a bug in nmref: please report it with --debug's traceback); 130 interrupted")


def _number(name: str, cast, ok, expected: str):
    """An argparse type: ``cast(text)`` for which ``ok`` holds, else a usage error naming the option."""
    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {expected}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"{name} must be {expected}, got {v}")
        return v
    return parse


def _positive(name: str):
    """An integer >= 1 (a 0 or negative count is a usage error, never a hang)."""
    return _number(name, int, lambda v: v >= 1, "an integer >= 1")


def _fraction(name: str):
    """A number in (0, 1]."""
    return _number(name, float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def _writable_from(p: Path, path: str, option: str) -> None:
    """The nearest existing ancestor of ``p`` (or ``p`` itself) must be a writable directory."""
    import os
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NMRefValueError(f"{option} {path!r}: {str(probe)!r} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NMRefValueError(f"{option} {path!r}: directory {str(probe)!r} is not writable")


def _out_file(path: str, option: str = "--out") -> Path:
    """An output file path: not an existing directory, in a writable directory (checked before work)."""
    p = Path(path)
    if p.is_dir():
        raise NMRefValueError(f"{option} {path!r} is a directory; expected a file path")
    _writable_from(p.parent if str(p.parent) else Path("."), path, option)
    return p


def _out_dir(path: str, option: str = "--out") -> Path:
    """An output directory: not an existing file, and creatable/writable (checked before work)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NMRefValueError(f"{option} {path!r} is a file; expected a directory")
    _writable_from(p, path, option)
    return p


def _cmd_report(args) -> int:
    from .report import run_report

    if args.out:
        _out_file(args.out)
    _set_threads(args)
    text, ok = run_report(args.preset, args.seed, args.layers, progress=not args.no_progress)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return EXIT_OK if ok else EXIT_DIFFERS


def _cmd_experiment(args) -> int:
    import time

    from .tiny import TrainingDivergedError, load_config, run_experiment

    if args.resume is not None:
        if args.config or args.text or args.preset != "tiny" or args.out or args.set or args.seeds != 1:
            raise NMRefValueError("--resume DIR continues the run with the config saved in DIR; "
                                  "do not combine it with --config/--preset/--text/--out/--set/--seeds")
        cfg, out = None, args.resume
    else:
        overrides = {}
        for kv in args.set or []:
            if "=" not in kv:
                raise NMRefValueError(f"--set expects KEY=VALUE (VALUE in JSON), got {kv!r}")
            k, v = kv.split("=", 1)
            try:
                overrides[k] = json.loads(v)
            except json.JSONDecodeError:
                overrides[k] = v
        if args.text is not None:
            overrides["text"] = args.text
        cfg = load_config(args.preset, args.config, overrides)
        out = args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
        _out_dir(out)
    args.resume_hint = f"nmref experiment --resume {out}"
    _set_threads(args, out if args.resume is not None else None)
    try:
        if args.seeds > 1 or (args.resume is not None and (Path(args.resume) / "seeds.json").is_file()):
            from .tiny.seeds import run_seeds
            run_seeds(cfg, out, args.seeds, resume=args.resume is not None, progress=not args.no_progress,
                      blas_threads=args.threads)
        else:
            run_experiment(cfg, out, resume=args.resume is not None, progress=not args.no_progress,
                           blas_threads=args.threads)
    except TrainingDivergedError as e:
        print(f"nmref experiment: stopped: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def _cmd_teal_study(args) -> int:
    import time

    from .tiny import load_config, run_experiment
    from .tiny.teal_study import run_teal_study

    run = args.run
    _set_threads(args, run)  # the run's own BLAS thread count: sparsity 0 reproduces its losses exactly
    if run is None:  # train the dense model (and a 2:4 one) first
        run = f"runs/teal-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
        cfg = load_config(args.preset, None, {"recipes": ["dense", "magnitude", "fixed_mask"]})
        run_experiment(cfg, run, progress=not args.no_progress, blas_threads=args.threads)
    run_teal_study(run, step=args.step)
    return 0


def _cmd_sweep(args) -> int:
    from .sweep import run_sweep

    _out_dir(args.out)
    args.resume_hint = f"nmref sweep {args.grid} --out {args.out} (finished points are kept, unfinished ones resume)"
    run_sweep(args.grid, args.out, scheduler=args.scheduler, workers=args.workers)
    return 0


def _cmd_scaling(args) -> int:
    import numpy as np

    from .io import atomic_write_json
    from .scaling import fit_report, plot_report, read_points, report_markdown

    pts = read_points(args.results)  # a missing or malformed file is a usage error before the fit
    if args.out:
        _out_dir(args.out)
    rep = fit_report(pts, form=args.form, holdout=args.holdout, n_boot=args.boot,
                     rng=np.random.default_rng(args.seed))
    text = report_markdown(rep)
    print(text)
    if rep.get("at_bounds"):
        print(f"nmref scaling fit: warning: {', '.join(rep['at_bounds'])} at a bound of the fit (not determined by "
              "the points)", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "fit.json", {k: v for k, v in rep.items() if k != "_fit"})
        atomic_write_text(out / "fit.md", text + "\n")
        plot_report(out / "scaling.png", pts, rep)
    return 0


def _impl_line(target: str, op: str) -> str:
    return f'from nmref.testing import load_impl, resolve_impl\nimpl = resolve_impl(load_impl("{target}"), "{op}")'


def _cmd_golden(args) -> int:
    from pathlib import Path

    from .golden import RELEASED, golden_dir, verify_golden, write_golden

    if args.action == "write":
        if args.impl:
            raise NMRefValueError("--impl goes with 'golden verify', not 'golden write'")
        if not args.dir:
            raise NMRefValueError("golden write needs DIR, the directory of the new set (it must not exist)")
        _out_dir(args.dir, "DIR")
        version = RELEASED[-1] + 1 if args.version is None else args.version
        d = write_golden(args.dir, version=version)
        print(f"nmref golden: wrote {d} (version {version})")
        if version in RELEASED:
            print(f"note: version {version} is released; 'nmref golden verify {d}' checks it against the released "
                  "digest", file=sys.stderr)
        return 0
    if args.version is not None:
        raise NMRefValueError("--version goes with 'golden write', not 'golden verify'")
    target = args.dir or f"v{RELEASED[-1]}"
    directory = Path(target)
    if not directory.is_dir() and re.fullmatch(r"v?\d+", target):
        if int(target.lstrip("v")) not in RELEASED:
            raise NMRefValueError(f"no released golden set {target!r} and no such directory (released: "
                                  f"{', '.join(f'v{v}' for v in RELEASED)})")
        directory = golden_dir(target)  # a released set shipped with nmref
    if not directory.is_dir():
        raise NMRefValueError(f"{target!r} is not a golden set directory (a folder with manifest.json), nor a "
                              f"released version ({', '.join(f'v{v}' for v in RELEASED)})")
    if not (directory / "manifest.json").is_file():
        raise NMRefValueError(f"{str(directory)!r} has no manifest.json: not a golden set")
    impl = None
    if args.impl:
        from .testing import load_impl
        impl = load_impl(args.impl)
    if args.show is not None and impl is None:
        raise NMRefValueError("--show CASE goes with --impl (nmref's own results print one line per case)")
    results = verify_golden(directory, impl=impl)
    print(f"golden set {directory}" + (f", implementation {args.impl}" if args.impl else ", this nmref"))
    bad = [(n, r) for n, r in results if r not in (None, "not implemented", "unsupported")]
    if impl is None:
        width = max(len(n) for n, _ in results)
        for name, reason in results:
            print(f"{name:<{width}}  {'ok' if reason is None else 'FAIL: ' + reason}")
        print(f"{sum(r is None for _, r in results)}/{len(results)} cases match")
        return 1 if bad else 0
    return _golden_by_op(directory, results, args.impl, show=args.show)


def _golden_by_op(directory, results, target, show=None) -> int:
    """One line per operation: ok (cases), the failing cases with the first one's reason and name, or not
    implemented; ``show``: the reproduction of that one case in full."""
    import json

    from .golden import load_case
    from .testing import CaseResult, get_op, reproduction, resolve_impl, load_impl

    manifest = json.loads((directory / "manifest.json").read_text())
    op_of = {e["name"]: e["op"] for e in manifest["cases"]}
    entry_of = {e["name"]: e for e in manifest["cases"]}
    if show is not None and show not in entry_of:
        raise NMRefValueError(f"--show {show!r}: no such case in {directory} (the FAIL lines name the cases)")
    by_op: dict = {}
    for name, reason in results:
        if name == "(set)":
            print(f"SET INTEGRITY: {reason}")
            continue
        by_op.setdefault(op_of.get(name, "?"), []).append((name, reason))
    failed = any(n == "(set)" for n, _ in results)
    width = max(len(o) for o in by_op)
    counts = {"ok": 0, "failed": 0, "not implemented": 0}
    first_failure = None
    for op, cases in by_op.items():
        if all(r == "not implemented" for _, r in cases):
            print(f"{op:<{width}}  not implemented")
            counts["not implemented"] += 1
            continue
        bad = [(n, r) for n, r in cases if r not in (None, "unsupported")]
        skipped = sum(r == "unsupported" for _, r in cases)
        if not bad:
            print(f"{op:<{width}}  ok ({len(cases) - skipped} cases" + (f", {skipped} outside its domain)" if skipped else ")"))
            counts["ok"] += 1
            continue
        failed = True
        counts["failed"] += 1
        name, reason = bad[0]
        first_failure = first_failure or name
        reason = reason if len(reason) <= 160 else reason[:160] + " …"
        print(f"{op:<{width}}  FAIL in {len(bad)} of {len(cases)} cases; first {name}: {reason}")
    print(f"{counts['ok']} operations pass, {counts['failed']} fail, {counts['not implemented']} not implemented")
    if first_failure and show is None:
        print(f"the reproduction of a case: nmref golden verify {directory} --impl {target} --show {first_failure}")
    if show is not None:
        op = op_of[show]
        try:
            inputs, want = load_case(directory, entry_of[show])
            spec, fn = get_op(op), resolve_impl(load_impl(target), op)
            a, k = spec.call_args(dict(inputs))
            try:
                got, err = spec.outputs_of(fn(*a, **k)), None
            except Exception as e:  # noqa: BLE001
                got, err = None, e
            reason = dict(results).get(show)
            res = CaseResult(want=want, got=got, impl_error=err, reasons=[reason] if reason else [])
            print(f"\ncase {show} ({op}), {directory / 'cases' / (show + '.npz')}:\n")
            print(reproduction(op, inputs, res, _impl_line(target, op)))
        except Exception as e:  # noqa: BLE001 - the verdict stands without a reproduction
            print(f"(no reproduction: {type(e).__name__}: {e})")
    return 1 if failed else 0


def _hypothesis_home() -> None:
    """Hypothesis keeps its files in a cache directory, not in the user's working directory."""
    import os
    from hypothesis.configuration import set_hypothesis_home_dir
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    set_hypothesis_home_dir(os.path.join(base, "nmref", "hypothesis"))


def _cmd_conform(args) -> int:
    from .testing import OPS, ConformanceError, check_conforms, get_op, load_impl, resolve_impl

    if args.list:
        if args.impl or args.op:
            raise NMRefValueError("--list takes no --impl or --op")
        for name, spec in OPS.items():
            rules = spec.tol if isinstance(spec.tol, dict) else {o: spec.tol for o in spec.outputs}
            kind = "exact" if all(r == "exact" for r in rules.values()) else \
                ("tolerance" if all(r != "exact" for r in rules.values()) else "exact+tolerance")
            call = ", ".join(spec.args)
            print(f"{name:<32} {kind:<16} ({call}) -> {', '.join(spec.outputs)}   [{spec.doc}]"
                  + (f"\n{'':<32} contract: {spec.contract}" if spec.contract else ""))
        return 0
    if not args.impl or not args.op:
        raise NMRefValueError("nmref conform needs --impl MODULE:OBJECT and --op OP (or --list)")
    _hypothesis_home()
    obj = load_impl(args.impl)
    ops = list(OPS) if args.op == ["all"] else args.op
    for op in ops:
        get_op(op)
    failed = False
    progress = sys.stderr.isatty()  # a terminal sees which operation runs; logs and pipes get the verdicts only
    for i, op in enumerate(ops, 1):
        if progress:
            print(f"conform: [{i}/{len(ops)}] {op}: drawing up to {args.examples} examples…", file=sys.stderr,
                  flush=True)
        fn = resolve_impl(obj, op)
        if fn is None:
            if args.op != ["all"]:
                raise NMRefValueError(f"--impl {args.impl!r} has no callable {op!r} and is not callable itself")
            continue
        if args.op == ["all"] and fn is obj:
            raise NMRefValueError("--op all needs a namespace (a module or object with one attribute per operation)")
        try:
            report = check_conforms(op, fn, examples=args.examples, seed=args.seed, errors=args.errors,
                                    check_dtype=not args.no_dtype_check, dtypes=args.dtype,
                                    impl_line=_impl_line(args.impl, op), timeout=args.timeout)
            print(report)
        except ConformanceError as e:
            failed = True
            print(f"{op}: DIFFERS from the reference: {e.reason}\n")
            print(e.repro)
            print()
    return 1 if failed else 0


def _where(r) -> str:
    """A violating group as an index with the grouped axis as a column range: ``[row, c:c+m]``."""
    parts = []
    for idx in r.first_violations:
        items = [f"{v}:{v + r.m}" if i == r.axis else str(v) for i, v in enumerate(idx)]
        parts.append("[" + ", ".join(items) + "]")
    return ", ".join(parts)


def _cmd_check_checkpoint(args) -> int:
    from .checkpoint import check_checkpoint, report_dict

    reports = check_checkpoint(args.path, pattern=args.pattern, axis=args.axis, include=args.include)
    failed = any(r.failed for r in reports)
    if args.json:
        print(json.dumps({"path": str(args.path), "pattern": args.pattern, "axis": args.axis,
                          "tensors": [t for t in report_dict(reports) if t["failed"] or not args.failures_only],
                          "ok": not failed}, indent=1))
        return EXIT_DIFFERS if failed else EXIT_OK
    print(f"{args.path}: {len(reports)} tensors, pattern {args.pattern} along axis {args.axis}")
    for r in reports:
        if args.failures_only and not r.failed:
            continue
        status = ("N:M" if r.nm else f"NOT N:M ({r.violating_groups} group{'s' * (r.violating_groups != 1)}, "
                  f"first at {_where(r)})"
                  if r.nm is False else f"not checked: {r.reason}")
        want = "should be sparse" if r.expected_sparse else "dense expected"
        sizes = ", ".join(f"{k} {v}" for k, v in r.bytes.items())
        print(f"  {'FAIL' if r.failed else 'ok  '} {r.name} {list(r.shape)} {r.dtype}: {status}; {want}"
              + (f"; bytes: {sizes}" if sizes else ""))
    bad = sum(r.failed for r in reports)
    checked = sum(r.expected_sparse for r in reports)
    print(f"{bad} of {checked} tensor(s) that should be {args.pattern} are not" if bad else
          f"all {checked} tensor(s) that should be {args.pattern} are")
    return EXIT_DIFFERS if failed else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .shapes import MODEL_PRESETS

    from . import __version__

    common = argparse.ArgumentParser(add_help=False)  # before or after the command; SUPPRESS keeps the top's value
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="nmref", description="nmref: the reference implementation of N:M "
                                "(semi-structured) sparsity — experiments, conformance checks, golden vectors, "
                                "checkpoint checks, sweeps. 'nmref COMMAND --help' for each command.",
                                epilog=EXIT_CODES, formatter_class=fmt)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    p.add_argument("--version", action="version", version=f"nmref {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, description=None):
        return sub.add_parser(name, help=help, description=description or help, epilog=EXIT_CODES,
                              parents=[common], formatter_class=fmt)

    def threads(parser):
        parser.add_argument("--threads", type=_positive("--threads"), default=None, metavar="N",
                            help="BLAS threads (default: 1, which a busy neighbour slows least; docs/benchmarks.md)")

    r = command("report", "mask, compress and account for a model-shaped set of matrices",
                "Masks a model-shaped set of random matrices 2:4, stores them in every format, checks every round "
                "trip bit for bit and compares measured sizes with the compression-ratio formula. Exit 1 if a "
                "check fails.")
    r.add_argument("--preset", default="tiny", choices=sorted(MODEL_PRESETS), help="model shapes (default: tiny)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    r.add_argument("--layers", type=_positive("--layers"), default=None,
                   help="count at most this many layers per projection (default: all)")
    r.add_argument("--out", default=None, help="also write the Markdown table to this file (atomically)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    threads(r)
    r.set_defaults(func=_cmd_report)
    from .tiny import PRESETS

    e = command("experiment", "train a tiny transformer dense, make it 2:4 sparse by one-shot pruning "
                "and by every retraining recipe, compare perplexities",
                "Trains a tiny transformer dense on a corpus whose entropy rate is known, makes it 2:4 sparse by "
                "one-shot pruning and by every retraining recipe, and writes a run directory (config, metrics, "
                "checkpoints, exports/<recipe>.safetensors, table, plots; docs/experiments.md). Ctrl-C stops "
                "cleanly (exit 130) and prints the --resume command. Exit 3 if the loss diverges.")
    e.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model/data/training sizes (default: tiny)")
    e.add_argument("--config", default=None, help="JSON or TOML file of config keys overriding the preset")
    e.add_argument("--text", default=None, help="train on this UTF-8 text file instead of the built-in corpus")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key (repeatable)")
    e.add_argument("--out", default=None, help="run directory (default: runs/<preset>-<date>-<time>)")
    e.add_argument("--resume", default=None, metavar="DIR", help="continue an interrupted run directory")
    e.add_argument("--seeds", type=_positive("--seeds"), default=1, metavar="K", help="run K seeds (seed, seed+1, ...) in DIR/seed-<s> "
                   "and report mean ± 95%% interval per recipe and paired tests of adjacent recipes (DIR/seeds.md)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    threads(e)
    e.set_defaults(func=_cmd_experiment)
    ts = command("teal-study", "TEAL on the trained tiny model: perplexity against activation sparsity, "
                 "uniform thresholds vs greedy block-wise allocation, dense and 2:4 (docs/experiments.md)")
    ts.add_argument("run", nargs="?", default=None, help="a finished nmref experiment run directory (default: train "
                    "one first with --preset, recipes dense, magnitude, fixed_mask)")
    ts.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="preset of the run trained when no "
                    "RUN is given (default: tiny)")
    ts.add_argument("--step", type=_fraction("--step"), default=0.05,
                    help="greedy allocation step of the mean sparsity, in (0, 1] (default 0.05)")
    ts.add_argument("--no-progress", action="store_true", help="no progress bars")
    threads(ts)
    ts.set_defaults(func=_cmd_teal_study)
    sw = command("sweep", "run a grid of small experiments (model size x tokens x sparsity pattern x "
                 "recipe x seed) on Dask; results.csv for nmref scaling fit (docs/scaling.md)",
                 "Runs every point of a grid of small experiments on Dask (pip install 'nmref[sweep]'), one line of "
                 "progress per finished point; results.csv for nmref scaling fit (docs/scaling.md). Re-running the "
                 "same command completes an interrupted sweep: finished points are kept, unfinished ones resume.")
    sw.add_argument("grid", help="the grid file (TOML: [base] and [grid] tables)")
    sw.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep); re-running completes it")
    sw.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    sw.add_argument("--workers", type=_positive("--workers"), default=None,
                    help="LocalCluster worker processes (default: one per core)")
    sw.set_defaults(func=_cmd_sweep)
    sc = command("scaling", "fit a scaling law to a sweep's results (docs/scaling.md)")
    sc_sub = sc.add_subparsers(dest="action", required=True)
    sf = sc_sub.add_parser("fit", help="fit, with bootstrap intervals; predict held-out points", epilog=EXIT_CODES,
                           description="Fits a scaling law to a sweep's results.csv with bootstrap intervals and "
                           "predicts held-out points; warns when a parameter sits at a bound of its fit.",
                           parents=[common], formatter_class=fmt)
    sf.add_argument("results", help="a sweep's results.csv (columns N, D, sparsity, loss)")
    sf.add_argument("--form", default="sparse", choices=["chinchilla", "sparse"], help="functional form (default sparse)")
    sf.add_argument("--holdout", default=None, help="'largest' (the largest N), 'N>=X' or 'D>=X': left out of the fit "
                    "and predicted")
    sf.add_argument("--boot", type=_positive("--boot"), default=200, help="bootstrap refits (default 200)")
    sf.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")
    sf.add_argument("--out", default=None, help="write fit.json, fit.md and scaling.png here")
    sf.set_defaults(func=_cmd_scaling)
    g = command("golden", "verify nmref or another implementation against a frozen golden set, or write one",
                "verify: recompute every case of a frozen golden set with nmref or another implementation and "
                "compare (exit 1 on a mismatch or a tampered set); write: make a new set in DIR (exit 0).")
    g.add_argument("action", choices=["verify", "write"], help="verify: recompute every case and compare; "
                   "write: make a new set in DIR (which must not exist)")
    g.add_argument("dir", nargs="?", default=None, help="the set: a directory, or a released version shipped with "
                   "nmref (v1, v2, v3; default: the newest)")
    g.add_argument("--impl", default=None, metavar="MODULE:OBJECT", help="verify this implementation instead of "
                   "nmref: a module or object with one attribute per operation (version 2 and later)")
    g.add_argument("--show", default=None, metavar="CASE", help="with --impl: print the reproduction of this case "
                   "(copy-paste Python); without it, verify prints one line per operation")
    g.add_argument("--version", type=_positive("--version"), default=None, help="version number recorded by write "
                   "(default: the next unreleased version)")
    g.set_defaults(func=_cmd_golden)
    c = command("conform", "check an implementation of an operation against nmref on adversarial inputs",
                "Checks an implementation of one operation (or --op all of a namespace) against nmref on "
                "adversarial inputs. Exit 0 conforms, 1 differs (with the minimal counterexample as copy-paste "
                "Python), 2 usage error (including an implementation module that cannot be imported).")
    c.add_argument("--impl", default=None, metavar="MODULE:OBJECT",
                   help="the implementation: a callable, or a namespace with one attribute per operation")
    c.add_argument("--op", action="append", metavar="OP", help="operation to check (repeatable; 'all': every "
                   "operation the namespace has)")
    c.add_argument("--examples", type=_positive("--examples"), default=200,
                   help="inputs to draw per operation (default: 200)")
    c.add_argument("--timeout", type=_number("--timeout", float, lambda v: v > 0, "a number of seconds > 0"),
                   default=5.0, metavar="SECONDS",
                   help="per-example time limit of the implementation (default 5 s; a call that takes longer is "
                        "reported as a hang, which differs)")
    c.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")
    c.add_argument("--errors", action="store_true", help="also draw inputs the reference rejects; the "
                   "implementation must raise on them too")
    c.add_argument("--dtype", action="append", metavar="NAME", help="draw only inputs of these float dtypes "
                   "(repeatable: float16, bfloat16, float32, float64; default: all)")
    c.add_argument("--no-dtype-check", action="store_true", help="accept a result dtype other than the reference's "
                   "where the rule is a tolerance")
    c.add_argument("--list", action="store_true", help="list the operations, their calls and compare rules")
    c.set_defaults(func=_cmd_conform)
    k = command("check-checkpoint", "report which tensors of a .safetensors/.npz checkpoint are N:M",
                "Reports, per tensor of a .safetensors or .npz file (or a sharded checkpoint directory with "
                "model.safetensors.index.json), whether it is N:M, where not, and its bytes in each storage "
                "format. Exit 1 when a tensor that should be sparse is not.")
    k.add_argument("path", help="a .safetensors or .npz file, or a directory with model.safetensors.index.json")
    k.add_argument("--pattern", default="2:4", help="N:M (default: 2:4)")
    k.add_argument("--axis", type=int, default=-1, help="grouped axis of each tensor (default: -1, the input dim)")
    k.add_argument("--include", default=None, metavar="REGEX",
                   help="names of the tensors that should be sparse (default: 2-D+ float tensors except "
                        "embeddings, head, norms, biases)")
    k.add_argument("--json", action="store_true", help="machine-readable report (errors too: {\"error\", \"exit_code\"})")
    k.add_argument("--failures-only", action="store_true", help="list only the tensors that fail")
    k.set_defaults(func=_cmd_check_checkpoint)
    return p


def _set_threads(args, run_dir=None) -> None:
    """Limit the BLAS thread pool (threadpoolctl) for this command: ``--threads``, default 1.

    On a 2-core machine with one busy neighbour, a 2-thread OpenBLAS spins against it while one thread
    loses little (benchmarks/bench_threads.py, docs/benchmarks.md). The count also fixes the order of
    BLAS sums, so a run records it (``RUN/blas.json``) and ``--resume`` uses the recorded count unless
    ``--threads`` says otherwise: resumed runs stay bit-identical."""
    from threadpoolctl import threadpool_limits
    rec = Path(run_dir) / "blas.json" if run_dir is not None else None
    recorded = int(json.loads(rec.read_text())["threads"]) if rec is not None and rec.is_file() else None
    if args.threads is not None and recorded is not None and args.threads != recorded:
        print(f"nmref: warning: the run was started with {recorded} BLAS thread(s); --threads {args.threads} changes "
              "the order of its sums (results differ from the run's in the last bits)", file=sys.stderr)
    args.threads = args.threads or recorded or 1
    args.thread_limit = threadpool_limits(limits=args.threads, user_api="blas")


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or type(e).__name__}: {e.filename!r}" + (f" -> {e.filename2!r}" if e.filename2 else "")
    return " ".join(line.strip() for line in (str(e) or type(e).__name__).splitlines())


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (argparse printed one line; 2)
        return e.code if isinstance(e.code, int) else EXIT_OK
    json_errors = getattr(args, "json", False)

    def fail(message: str, code: int) -> int:
        if json_errors:
            print(json.dumps({"error": message, "exit_code": code}))
        else:
            print(f"nmref {args.command}: {message}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`nmref conform --list | head`): not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        if args.debug:
            raise
        hint = getattr(args, "resume_hint", None)
        return fail("interrupted" + (f"; resume with: {hint}" if hint else ""), EXIT_INTERRUPTED)
    except (ValueError, TypeError, OSError, ImportError) as e:  # nmref's errors subclass ValueError/TypeError
        if args.debug:
            raise
        return fail(f"error: {_one_line(e)}", EXIT_USAGE)
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback with --debug
        if args.debug:
            raise
        return fail(f"internal error: {type(e).__name__}: {_one_line(e)} (a bug in nmref; rerun with --debug for "
                    "the traceback)", EXIT_INTERNAL)
    finally:
        limit = getattr(args, "thread_limit", None)
        if limit is not None:  # main() may be called in-process (tests, scripts): leave BLAS as it was
            limit.restore_original_limits()


if __name__ == "__main__":
    sys.exit(main())
