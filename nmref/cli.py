"""The ``nmref`` command line: ``nmref <command> --help`` for each command."""
from __future__ import annotations

import argparse
import json
import sys

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

    if args.resume is not None:
        if args.config or args.text or args.preset != "tiny" or args.out or args.set:
            raise NMRefValueError("--resume DIR continues the run with the config saved in DIR; "
                                  "do not combine it with --config/--preset/--text/--out/--set")
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
        run_experiment(cfg, out, resume=args.resume is not None, progress=not args.no_progress)
    except TrainingDivergedError as e:
        print(f"nmref experiment: stopped: {e}", file=sys.stderr)
        return 3
    return 0


def _cmd_golden(args) -> int:
    from pathlib import Path

    from .golden import verify_golden, write_golden

    if args.action == "write":
        d = write_golden(args.dir, version=args.version)
        print(f"nmref golden: wrote {d}")
        return 0
    if not (Path(args.dir) / "manifest.json").is_file():
        raise NMRefValueError(f"{args.dir!r} has no manifest.json: pass the directory of a golden set "
                              f"(e.g. golden/v1 in a checkout of nmref)")
    results = verify_golden(args.dir)
    width = max(len(n) for n, _ in results)
    for name, reason in results:
        print(f"{name:<{width}}  {'ok' if reason is None else 'FAIL: ' + reason}")
    bad = sum(r is not None for _, r in results)
    print(f"{len(results) - bad}/{len(results)} cases match")
    return 1 if bad else 0


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
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_experiment)
    g = sub.add_parser("golden", help="verify this nmref against a frozen golden set, or write a new set")
    g.add_argument("action", choices=["verify", "write"], help="verify: recompute every case and compare; "
                   "write: make a new set in DIR (which must not exist)")
    g.add_argument("dir", nargs="?", default="golden/v1", help="the set's directory (default: golden/v1)")
    g.add_argument("--version", type=int, default=1, help="version number recorded by write (default: 1)")
    g.set_defaults(func=_cmd_golden)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:  # nmref's errors subclass these: print them plainly
        print(f"nmref {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
