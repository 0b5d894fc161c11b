"""The ``nmref`` command line: ``nmref <command> --help`` for each command."""
from __future__ import annotations

import argparse
import sys

from .io import atomic_write_text


def _cmd_report(args) -> int:
    from .report import run_report

    text, ok = run_report(args.preset, args.seed, args.layers)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0 if ok else 1


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
