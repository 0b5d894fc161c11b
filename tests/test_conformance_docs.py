"""docs/conformance.md's walk-through, run as written: its files are written, its Python run, and each
console command run in a fresh directory with its exit status and the output lines the page shows."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"
BLOCK = re.compile(r"(?:<!-- (file|run|needs):? ?([^>]*?) ?-->\n)?```(python|console)\n(.*?)```", re.S)


def _blocks():
    for m in BLOCK.finditer(DOC.read_text()):
        yield m.group(1), (m.group(2) or "").strip(), m.group(3), m.group(4)


def _commands(text):
    """``[(command, expected lines, exit status)]`` of a console block."""
    out, cmd, lines, status = [], None, [], 0
    for line in text.splitlines() + ["$ "]:
        if line.startswith("$ "):
            if cmd:
                out.append((cmd, lines, status))
            cmd, lines, status = line[2:].strip(), [], 0
        elif re.fullmatch(r"\[exit (\d+)\]", line.strip()):
            status = int(line.strip()[6:-1])
        else:
            lines.append(line.rstrip())
    return out


def _check_output(cmd, expected, actual):
    """Every shown line (but blank ones and '...') is the start of an actual line, in order."""
    got = [line.rstrip() for line in actual.splitlines()]
    pos = 0
    for want in expected:
        if not want.strip() or want.strip() == "...":
            continue
        while pos < len(got) and not got[pos].startswith(want):
            pos += 1
        assert pos < len(got), f"{cmd!r}: line not in the output (in order):\n{want}\n--- output ---\n{actual}"
        pos += 1


def test_walk_through_runs_as_documented(tmp_path):
    ran = 0
    for kind, arg, lang, body in _blocks():
        if kind == "file":
            (tmp_path / arg).write_text(body)
            continue
        if kind == "needs" and importlib.util.find_spec(arg) is None:
            continue
        if lang == "python":
            if kind == "run":
                done = subprocess.run([sys.executable, "-c", body], cwd=tmp_path, capture_output=True, text=True,
                                      timeout=300)
                assert done.returncode == 0, done.stderr
            continue
        for cmd, expected, status in _commands(body):
            done = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
            assert done.returncode == status, f"{cmd!r} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            _check_output(cmd, expected, done.stdout + done.stderr)
            ran += 1
    assert ran >= 7
