"""Print pip constraints pinning every dependency of pyproject.toml (and of the extras named on the
command line) to the lowest version its specifier allows: ``name==X`` for each ``name>=X``.

CI installs with these constraints to test the lower bounds it claims (``.ci/run``)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def lowest(extras: list[str]) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    pins = {}
    for req in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(>=|==)\s*([0-9][^,;\s]*)\s*", req)
        if not m:
            raise SystemExit(f"pyproject.toml: {req!r} has no lower bound (>= or ==); every dependency needs one")
        name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        pins[name] = max(pins.get(name, m.group(4)), m.group(4), key=lambda v: [int(p) for p in re.findall(r"\d+", v)])
    return [f"{k}=={v}" for k, v in sorted(pins.items())]


if __name__ == "__main__":
    print("\n".join(lowest(sys.argv[1:])))
