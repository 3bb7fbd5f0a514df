"""The documentation site builds with `mkdocs build --strict`: no broken link, no bad docstring."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = ["esso_ref", "curvature", "verification", "validate", "interop", "testing", "golden",
             "optim"]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], cwd=config.parent, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = _build(ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_every_nav_page_exists_and_is_built(site):
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]

    def pages(entries):
        for entry in entries:
            for value in entry.values():
                yield from pages(value) if isinstance(value, list) else [value]

    for page in pages(nav):
        assert (ROOT / "docs" / page).is_file(), page
        stem = page[:-3].removesuffix("index")
        assert (site / stem / "index.html").is_file(), page


def test_api_pages_render_every_docstring(site):
    for name in API_PAGES:
        html = (site / "api" / name / "index.html").read_text(encoding="utf-8")
        assert html.count('class="doc doc-heading"') >= 1, name
        # Sphinx roles and unresolved Markdown cross-references would show up as literal text
        assert not re.search(r":(class|func|meth|data|attr|mod|exc):`", html), name
        assert not re.search(r"\]\[esso_ref\.", html), name


def test_api_reference_covers_the_public_curvature_api(site):
    import esso_ref.curvature

    html = (site / "api" / "curvature" / "index.html").read_text(encoding="utf-8")
    for name in esso_ref.curvature.__all__:
        anchors = {f'id="esso_ref.curvature.{name}"', f'id="esso_ref.curvature.{name}.{name}"'}
        assert any(a in html for a in anchors), name


def test_api_reference_covers_the_public_verification_api(site):
    import esso_ref.verification

    html = (site / "api" / "verification" / "index.html").read_text(encoding="utf-8")
    for name in esso_ref.verification.__all__:
        assert f'id="esso_ref.verification.{name}"' in html, name


def test_math_is_marked_for_mathjax(site):
    html = (site / "math" / "index.html").read_text(encoding="utf-8")
    assert html.count('class="arithmatex"') > 50
    assert "javascripts/mathjax.js" in html


def test_strict_build_fails_on_broken_link_and_bad_cross_reference(tmp_path):
    """The same configuration, given a page with a dead link and a docstring with a bad
    cross-reference, must refuse to build: the checks above are not vacuous."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = tmp_path / "docs"
    (docs / "javascripts").mkdir(parents=True)
    (docs / "javascripts" / "mathjax.js").write_text("", encoding="utf-8")
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n", encoding="utf-8")
    (docs / "changelog.md").write_text('--8<-- "CHANGELOG.md"\n', encoding="utf-8")
    (tmp_path / "broken_mod.py").write_text(
        '"""A module."""\n\n\ndef f():\n    """Uses [`g`][broken_mod.no_such_function]."""\n',
        encoding="utf-8")
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n\n"
                                   "::: broken_mod\n", encoding="utf-8")
    config["nav"] = [{"Home": "index.md"}, {"Changelog": "changelog.md"}]
    config.pop("not_in_nav", None)
    config["plugins"][1]["mkdocstrings"]["handlers"]["python"]["paths"] = ["."]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0
    assert "missing.md" in proc.stderr
    assert "broken_mod.no_such_function" in proc.stderr
