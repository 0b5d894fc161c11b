"""Docs that say what is true: every path the docs point to exists, and no page promises work that is
already done ("not yet here", "no such run is reported here yet")."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "golden" / "README.md", *(ROOT / "docs").rglob("*.md")])
PATH = re.compile(r"(?<![\w/.])((?:docs|nmref|nmref_gpu|benchmarks|tests|golden|tools)/[\w./-]*\w)")
#: phrases that announce missing work; a page that still needs one names an open problem instead
STALE = ("not yet here", "is reported here yet", "will be added with", "coming soon", "to be written")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_pointed_path_exists(page):
    text = page.read_text()
    missing = sorted({m for m in PATH.findall(text) if not re.search(r"[*<]", text[text.find(m):text.find(m) + len(m) + 1])
                      and not (ROOT / m).exists() and not (ROOT / m.rstrip(".")).exists()})
    assert not missing, f"{page.relative_to(ROOT)} points to paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_stale_promises(page):
    text = page.read_text().lower()
    found = [p for p in STALE if p in text]
    assert not found, f"{page.relative_to(ROOT)} still says {found}"
