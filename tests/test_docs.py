"""The documentation site: it builds strictly, documents every public loss, and its examples run.

- `mkdocs build --strict` must pass: mkdocstrings turns docstring problems (a parameter without
  annotation, a malformed Google section, a broken cross-reference) into warnings, and strict
  mode makes them errors. The built site must link nothing outside itself (offline viewing).
- Every name in `decouple.losses.__all__` must have a `::: decouple.losses.NAME` directive on
  some page, so no public class goes undocumented.
- Every ```python block of a page runs, in order, in one namespace per page: the examples are
  real code, not prose.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Pages written by scripts (the benchmark table) hold no examples of ours.
GENERATED = {DOCS / "benchmarks"}

DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)
PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def doc_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if not any(g in p.parents for g in GENERATED))


def documented_objects() -> set[str]:
    return {name for page in doc_pages() for name in DIRECTIVE.findall(page.read_text())}


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed (exit {proc.returncode}):\n"
        f"--- stderr ---\n{proc.stderr}\n--- stdout ---\n{proc.stdout}"
    )
    assert (site / "index.html").is_file()
    for page in ("losses/infonce", "losses/emotion_aware_nce", "distributed", "api"):
        assert (site / page / "index.html").is_file(), f"page {page} was not built"

    # Offline: no web font, no script or stylesheet from another host.
    external = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["']?(?:https?:)?//""")
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text, f"{html} links a web font"
        # A docstring example must render as code, not as Markdown block quotes of its
        # `>>>` lines (what griffe does under an unrecognised section title).
        assert "<blockquote>" not in text, f"{html} renders a doctest as a block quote"
        match = external.search(text)
        assert match is None, f"{html} loads an external resource: {match.group(0)}"


def test_every_public_loss_is_documented() -> None:
    import decouple.losses

    documented = documented_objects()
    missing = [
        name for name in decouple.losses.__all__ if f"decouple.losses.{name}" not in documented
    ]
    assert not missing, (
        f"no '::: decouple.losses.NAME' directive in docs/ for: {missing}; "
        f"documented: {sorted(documented)}"
    )
    assert "decouple.distributed" in documented


PAGES_WITH_EXAMPLES = [p for p in doc_pages() if PYTHON_BLOCK.search(p.read_text())]


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples_run(page: Path) -> None:
    blocks = PYTHON_BLOCK.findall(page.read_text())
    namespace: dict[str, object] = {"__name__": f"docs_example_{page.stem}"}
    for index, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}[block {index}]", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            raise AssertionError(
                f"example {index} of {page.relative_to(ROOT)} failed: {err!r}\n{code}"
            ) from err
