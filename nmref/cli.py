"""The ``nmref`` command line: ``nmref <command> --help`` for each command."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ._checks import NMRefValueError

from .io import atomic_write_text


def _cmd_report(args) -> int:
    from .report import run_report

    text, ok = run_report(args.preset, args.seed, args.layers)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0 if ok else 1


def _cmd_experiment(args) -> int:
    import time

    from .tiny import TrainingDivergedError, load_config, run_experiment

    if args.seeds < 1:
        raise NMRefValueError(f"--seeds must be at least 1, got {args.seeds}")
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
    try:
        if args.seeds > 1 or (args.resume is not None and (Path(args.resume) / "seeds.json").is_file()):
            from .tiny.seeds import run_seeds
            run_seeds(cfg, out, args.seeds, resume=args.resume is not None, progress=not args.no_progress)
        else:
            run_experiment(cfg, out, resume=args.resume is not None, progress=not args.no_progress)
    except TrainingDivergedError as e:
        print(f"nmref experiment: stopped: {e}", file=sys.stderr)
        return 3
    return 0


def _cmd_teal_study(args) -> int:
    import time

    from .tiny import load_config, run_experiment
    from .tiny.teal_study import run_teal_study

    run = args.run
    if run is None:  # train the dense model (and a 2:4 one) first
        run = f"runs/teal-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
        cfg = load_config(args.preset, None, {"recipes": ["dense", "magnitude", "fixed_mask"]})
        run_experiment(cfg, run, progress=not args.no_progress)
    run_teal_study(run, step=args.step)
    return 0


def _cmd_sweep(args) -> int:
    from .sweep import run_sweep

    run_sweep(args.grid, args.out, scheduler=args.scheduler, workers=args.workers)
    return 0


def _cmd_scaling(args) -> int:
    import numpy as np

    from .io import atomic_write_json
    from .scaling import fit_report, plot_report, read_points, report_markdown

    pts = read_points(args.results)
    rep = fit_report(pts, form=args.form, holdout=args.holdout, n_boot=args.boot,
                     rng=np.random.default_rng(args.seed))
    text = report_markdown(rep)
    print(text)
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
        d = write_golden(args.dir, version=args.version)
        print(f"nmref golden: wrote {d}")
        return 0
    target = args.dir or f"v{RELEASED[-1]}"
    directory = Path(target)
    if not directory.is_dir() and re.fullmatch(r"v?\d+", target):
        directory = golden_dir(target)  # a released set shipped with nmref
    impl = None
    if args.impl:
        from .testing import load_impl
        impl = load_impl(args.impl)
    results = verify_golden(directory, impl=impl)
    print(f"golden set {directory}" + (f", implementation {args.impl}" if args.impl else ", this nmref"))
    bad = [(n, r) for n, r in results if r not in (None, "not implemented", "unsupported")]
    if impl is None:
        width = max(len(n) for n, _ in results)
        for name, reason in results:
            print(f"{name:<{width}}  {'ok' if reason is None else 'FAIL: ' + reason}")
        print(f"{sum(r is None for _, r in results)}/{len(results)} cases match")
        return 1 if bad else 0
    return _golden_by_op(directory, results, args.impl)


def _golden_by_op(directory, results, target) -> int:
    """Per operation: ok (cases), the first failing case with its reproduction, or not implemented."""
    import json

    from .golden import load_case
    from .testing import CaseResult, get_op, reproduction, resolve_impl, load_impl

    manifest = json.loads((directory / "manifest.json").read_text())
    op_of = {e["name"]: e["op"] for e in manifest["cases"]}
    entry_of = {e["name"]: e for e in manifest["cases"]}
    by_op: dict = {}
    for name, reason in results:
        if name == "(set)":
            print(f"SET INTEGRITY: {reason}")
            continue
        by_op.setdefault(op_of.get(name, "?"), []).append((name, reason))
    failed = any(n == "(set)" for n, _ in results)
    width = max(len(o) for o in by_op)
    counts = {"ok": 0, "failed": 0, "not implemented": 0}
    for op, cases in by_op.items():
        if all(r == "not implemented" for _, r in cases):
            print(f"{op:<{width}}  not implemented")
            counts["not implemented"] += 1
            continue
        first = next(((n, r) for n, r in cases if r not in (None, "unsupported")), None)
        if first is None:
            skipped = sum(r == "unsupported" for _, r in cases)
            print(f"{op:<{width}}  ok ({len(cases) - skipped} cases" + (f", {skipped} outside its domain)" if skipped else ")"))
            counts["ok"] += 1
            continue
        failed = True
        counts["failed"] += 1
        name, reason = first
        print(f"{op:<{width}}  FAIL in case {name}: {reason}")
        try:
            inputs, want = load_case(directory, entry_of[name])
            spec, fn = get_op(op), resolve_impl(load_impl(target), op)
            a, k = spec.call_args(dict(inputs))
            try:
                got, err = spec.outputs_of(fn(*a, **k)), None
            except Exception as e:  # noqa: BLE001
                got, err = None, e
            res = CaseResult(want=want, got=got, impl_error=err, reasons=[reason])
            print("    " + reproduction(op, inputs, res, _impl_line(target, op)).replace("\n", "\n    "))
        except Exception as e:  # noqa: BLE001 - the verdict stands without a reproduction
            print(f"    (no reproduction: {type(e).__name__}: {e})")
    print(f"{counts['ok']} operations pass, {counts['failed']} fail, {counts['not implemented']} not implemented")
    return 1 if failed else 0


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
    obj = load_impl(args.impl)
    ops = list(OPS) if args.op == ["all"] else args.op
    for op in ops:
        get_op(op)
    failed = False
    for op in ops:
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
                                    impl_line=_impl_line(args.impl, op))
            print(report)
        except ConformanceError as e:
            failed = True
            print(f"{op}: DIFFERS from the reference: {e.reason}\n")
            print(e.repro)
            print()
    return 1 if failed else 0


def _cmd_check_checkpoint(args) -> int:
    from .checkpoint import check_checkpoint, report_dict

    reports = check_checkpoint(args.path, pattern=args.pattern, axis=args.axis, include=args.include)
    if args.json:
        print(json.dumps({"path": str(args.path), "pattern": args.pattern, "axis": args.axis,
                          "tensors": report_dict(reports), "ok": not any(r.failed for r in reports)}, indent=1))
    else:
        print(f"{args.path}: {len(reports)} tensors, pattern {args.pattern} along axis {args.axis}")
        for r in reports:
            status = ("N:M" if r.nm else f"NOT N:M ({r.violating_groups} group{'s' * (r.violating_groups != 1)}, "
                      f"first at {r.first_violations})"
                      if r.nm is False else f"not checked: {r.reason}")
            want = "should be sparse" if r.expected_sparse else "dense expected"
            sizes = ", ".join(f"{k} {v}" for k, v in r.bytes.items())
            print(f"  {'FAIL' if r.failed else 'ok  '} {r.name} {list(r.shape)} {r.dtype}: {status}; {want}"
                  + (f"; bytes: {sizes}" if sizes else ""))
        bad = sum(r.failed for r in reports)
        print(f"{bad} tensor(s) that should be {args.pattern} are not" if bad else "every tensor that should be sparse is")
    return 1 if any(r.failed for r in reports) else 0


def build_parser() -> argparse.ArgumentParser:
    from .shapes import MODEL_PRESETS

    p = argparse.ArgumentParser(prog="nmref", description="Reference N:M sparsity toolkit.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="mask, compress and account for a model-shaped set of matrices")
    r.add_argument("--preset", default="tiny", choices=sorted(MODEL_PRESETS), help="model shapes (default: tiny)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    r.add_argument("--layers", type=int, default=None, help="count at most this many layers per projection")
    r.add_argument("--out", default=None, help="also write the Markdown table to this file (atomically)")
    r.set_defaults(func=_cmd_report)
    from .tiny import PRESETS

    e = sub.add_parser("experiment", help="train a tiny transformer dense, make it 2:4 sparse by one-shot pruning "
                       "and by every retraining recipe, compare perplexities")
    e.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model/data/training sizes (default: tiny)")
    e.add_argument("--config", default=None, help="JSON or TOML file of config keys overriding the preset")
    e.add_argument("--text", default=None, help="train on this UTF-8 text file instead of the built-in corpus")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key (repeatable)")
    e.add_argument("--out", default=None, help="run directory (default: runs/<preset>-<date>-<time>)")
    e.add_argument("--resume", default=None, metavar="DIR", help="continue an interrupted run directory")
    e.add_argument("--seeds", type=int, default=1, metavar="K", help="run K seeds (seed, seed+1, ...) in DIR/seed-<s> "
                   "and report mean ± 95%% interval per recipe and paired tests of adjacent recipes (DIR/seeds.md)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_experiment)
    ts = sub.add_parser("teal-study", help="TEAL on the trained tiny model: perplexity against activation sparsity, "
                        "uniform thresholds vs greedy block-wise allocation, dense and 2:4 (docs/experiments.md)")
    ts.add_argument("run", nargs="?", default=None, help="a finished nmref experiment run directory (default: train "
                    "one first with --preset, recipes dense, magnitude, fixed_mask)")
    ts.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="preset of the run trained when no "
                    "RUN is given (default: tiny)")
    ts.add_argument("--step", type=float, default=0.05, help="greedy allocation step of the mean sparsity (default 0.05)")
    ts.add_argument("--no-progress", action="store_true", help="no progress bars")
    ts.set_defaults(func=_cmd_teal_study)
    sw = sub.add_parser("sweep", help="run a grid of small experiments (model size x tokens x sparsity pattern x "
                        "recipe x seed) on Dask; results.csv for nmref scaling fit (docs/scaling.md)")
    sw.add_argument("grid", help="the grid file (TOML: [base] and [grid] tables)")
    sw.add_argument("--out", default="runs/sweep", help="output folder (default runs/sweep); re-running completes it")
    sw.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    sw.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: one per core)")
    sw.set_defaults(func=_cmd_sweep)
    sc = sub.add_parser("scaling", help="fit a scaling law to a sweep's results (docs/scaling.md)")
    sc_sub = sc.add_subparsers(dest="action", required=True)
    sf = sc_sub.add_parser("fit", help="fit, with bootstrap intervals; predict held-out points")
    sf.add_argument("results", help="a sweep's results.csv (columns N, D, sparsity, loss)")
    sf.add_argument("--form", default="sparse", choices=["chinchilla", "sparse"], help="functional form (default sparse)")
    sf.add_argument("--holdout", default=None, help="'largest' (the largest N), 'N>=X' or 'D>=X': left out of the fit "
                    "and predicted")
    sf.add_argument("--boot", type=int, default=200, help="bootstrap refits (default 200)")
    sf.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's random generator")
    sf.add_argument("--out", default=None, help="write fit.json, fit.md and scaling.png here")
    sf.set_defaults(func=_cmd_scaling)
    g = sub.add_parser("golden", help="verify nmref or another implementation against a frozen golden set, or write one")
    g.add_argument("action", choices=["verify", "write"], help="verify: recompute every case and compare; "
                   "write: make a new set in DIR (which must not exist)")
    g.add_argument("dir", nargs="?", default=None, help="the set: a directory, or a released version shipped with "
                   "nmref (v1, v2; default: the newest)")
    g.add_argument("--impl", default=None, metavar="MODULE:OBJECT", help="verify this implementation instead of "
                   "nmref: a module or object with one attribute per operation (version 2 and later)")
    g.add_argument("--version", type=int, default=2, help="version number recorded by write (default: 2)")
    g.set_defaults(func=_cmd_golden)
    c = sub.add_parser("conform", help="check an implementation of an operation against nmref on adversarial inputs")
    c.add_argument("--impl", default=None, metavar="MODULE:OBJECT",
                   help="the implementation: a callable, or a namespace with one attribute per operation")
    c.add_argument("--op", action="append", metavar="OP", help="operation to check (repeatable; 'all': every "
                   "operation the namespace has)")
    c.add_argument("--examples", type=int, default=200, help="inputs to draw per operation (default: 200)")
    c.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")
    c.add_argument("--errors", action="store_true", help="also draw inputs the reference rejects; the "
                   "implementation must raise on them too")
    c.add_argument("--dtype", action="append", metavar="NAME", help="draw only inputs of these float dtypes "
                   "(repeatable: float16, bfloat16, float32, float64; default: all)")
    c.add_argument("--no-dtype-check", action="store_true", help="accept a result dtype other than the reference's "
                   "where the rule is a tolerance")
    c.add_argument("--list", action="store_true", help="list the operations, their calls and compare rules")
    c.set_defaults(func=_cmd_conform)
    k = sub.add_parser("check-checkpoint", help="report which tensors of a .safetensors/.npz checkpoint are N:M")
    k.add_argument("path", help="a .safetensors or .npz file")
    k.add_argument("--pattern", default="2:4", help="N:M (default: 2:4)")
    k.add_argument("--axis", type=int, default=-1, help="grouped axis of each tensor (default: -1, the input dim)")
    k.add_argument("--include", default=None, metavar="REGEX",
                   help="names of the tensors that should be sparse (default: 2-D+ float tensors except "
                        "embeddings, head, norms, biases)")
    k.add_argument("--json", action="store_true", help="machine-readable report")
    k.set_defaults(func=_cmd_check_checkpoint)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`nmref conform --list | head`): not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError) as e:  # nmref's errors subclass these: print them plainly
        print(f"nmref {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
