"""The documentation site builds with warnings as errors, and holds the pages and pictures it promises.

``mkdocs build --strict`` (mkdocs.yml at the repository root: Material theme,
mkdocstrings' Python handler over the public API with numpy docstrings) runs in a
child process into a temporary folder. Any warning fails it: a broken link or
anchor, a page missing from the navigation, an image that is not there, an API
object mkdocstrings cannot find, a docstring griffe cannot parse. The tools are in
the test extra (pyproject.toml): a missing one fails the build, it is not skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Seconds the build may take (mkdocstrings reads the whole package's source; a loaded 2-core machine).
BUILD_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, str]:
    """The built site's folder and the build's log (stdout and stderr together)."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    log = proc.stdout + proc.stderr
    problems = [line for line in log.splitlines() if re.match(r"^\s*(WARNING|ERROR)\b", line)]
    assert proc.returncode == 0 and not problems, "mkdocs build --strict failed:\n" + "\n".join(
        problems or [log]
    )
    return out, log


def _page(site_dir: Path, md: str) -> str:
    """The HTML mkdocs built from ``docs/<md>`` (``guide/edits.md`` -> ``guide/edits/index.html``)."""
    stem = md.removesuffix(".md")
    html = site_dir / ("index.html" if stem == "index" else f"{stem.removesuffix('/index')}/index.html")
    assert html.is_file(), f"{md}: no page built ({html})"
    return html.read_text(encoding="utf-8")


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:") :]
    return re.findall(r"([\w/.-]+\.md)\s*$", nav, re.M)


def test_every_markdown_page_is_in_the_navigation():
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages == set(_nav_pages())


def test_the_site_builds_strictly_with_every_page(site):
    site_dir, _ = site
    for md in _nav_pages():
        html = _page(site_dir, md)
        assert "<h1" in html, f"{md}: no title"


def test_the_api_reference_documents_the_public_api(site):
    import weightlab

    html = _page(site[0], "api.md")
    # mkdocstrings gives every documented object an anchor named by its path.
    documented = set(re.findall(r'id="(weightlab\.[\w.]+)"', html))
    for name in (
        "open",
        "evaluate",
        "to_keras",
        "compare",
        "show",
        "run",
        "sweep",
        "rank",
        "plan",
        "finetune",
    ):
        assert f"weightlab.{name}" in documented, name
    for name in ("Session", "Metrics", "ModelDiff", "SweepResult", "RankResult", "Plan", "FinetuneResult"):
        assert f"weightlab.{name}" in documented, name
    for name in weightlab.edits.__all__:
        if isinstance(getattr(weightlab.edits, name), type):
            assert f"weightlab.edits.{name}" in documented, name
    # ... and everything else the namespace exports
    for name in weightlab.__all__:
        if not name.startswith("_"):
            assert {f"weightlab.{name}", f"weightlab.edits.{name}"} & documented, (
                f"{name} not on the API page"
            )
    # numpy docstrings are parsed into sections, not shown as raw text.
    assert "Parameters:" in html or "<b>Parameters:</b>" in html or "doc-section-title" in html
    assert "----------" not in html


def test_pictures_and_the_notebook_are_in_the_site(site):
    site_dir, _ = site
    for md in _nav_pages():
        # a page's pictures are relative to its folder: guide/edits.md -> guide/edits/index.html
        folder = site_dir / (
            md.removesuffix("index.md") if md.endswith("index.md") else md.removesuffix(".md")
        )
        for src in re.findall(r'<img[^>]+src="([^"]+)"', _page(site_dir, md)):
            if not src.startswith(("http:", "https:", "data:")):
                assert (folder / src).resolve().is_file(), f"{md}: picture {src} missing"
    assert (site_dir / "example.ipynb").is_file()


def test_docstring_rest_markup_is_shown_as_markdown():
    """docs/griffe_rst.py: what the API reference does to the docstrings' reST (roles, ``::`` blocks)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "docs" / "griffe_rst.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    md = module.markdown

    assert (
        md("See :func:`open` and :class:`~weightlab.core.model.ModelFile`.") == "See `open` and `ModelFile`."
    )
    assert md(":meth:`Session.to_keras <weightlab.session.Session.to_keras>`") == "`Session.to_keras`"
    assert md("Keep ``x`` as it is.") == "Keep ``x`` as it is."
    text = "Use it like this::\n\n    s = open(p)\n      s.undo()\n\nThen more."
    assert md(text) == "Use it like this:\n\n```python\ns = open(p)\n  s.undo()\n```\n\nThen more."
    assert md("Only::\n\nno block after it") == "Only::\n\nno block after it"


def test_every_user_guide_picture_is_on_a_page():
    """docs/screenshot_guide.py makes the pictures; each one is shown by a page of the guide."""
    pictures = {p.name for p in (ROOT / "docs" / "guide" / "img").glob("*.png")}
    assert pictures, "no pictures: run docs/screenshot_guide.py"
    shown = set()
    for page in (ROOT / "docs").rglob("*.md"):  # guide/x.md: img/NAME.png; others: guide/img/NAME.png
        shown |= set(re.findall(r"\]\((?:guide/)?img/([\w.-]+\.png)\)", page.read_text(encoding="utf-8")))
    assert shown <= pictures, f"pages show missing pictures: {sorted(shown - pictures)}"
    assert pictures <= shown, f"pictures on no page: {sorted(pictures - shown)}"


def _nav_titles(items) -> list[str]:
    titles: list[str] = []
    for item in items:
        if isinstance(item, dict):
            for title, value in item.items():
                titles.append(title)
                if isinstance(value, list):
                    titles += _nav_titles(value)
    return titles


def test_the_navigation_names_each_page_once_and_the_api_page_no_private_module(site):
    yaml = pytest.importorskip("yaml")
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    titles = [t.lower() for t in _nav_titles(config["nav"])]
    assert len(titles) == len(set(titles)), titles
    api = (site[0] / "api" / "index.html").read_text(encoding="utf-8")
    assert "weightlab._tf" not in re.sub(r"<[^>]+>", "", api)
    # The home page sends readers to the page that explains the notebook, not to the raw .ipynb.
    home = (site[0] / "index.html").read_text(encoding="utf-8")
    assert 'href="example.ipynb"' not in home and "notebook/#the-example-notebook" in home
