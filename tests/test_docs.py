"""docs/math.md and the code cite each other: every reference resolves both ways."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import esso_ref

MATH = (Path(__file__).resolve().parents[1] / "docs" / "math.md").read_text(encoding="utf-8")
DEFINED = {int(n) for n in re.findall(r"\\tag\{(\d+)\}", MATH)}
CITE = re.compile(r"eqs?\.\s*((?:\(\d+\)(?:\s*(?:-|,|and|to)\s*)?)+)")


def _cited(text: str) -> set[int]:
    out = set()
    for group in CITE.findall(text or ""):
        nums = [int(n) for n in re.findall(r"\((\d+)\)", group)]
        out.update(nums)
        for a, b in re.findall(r"\((\d+)\)\s*-\s*\((\d+)\)", group):
            out.update(range(int(a), int(b) + 1))
    return out


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _modules():
    yield esso_ref
    for info in pkgutil.walk_packages(esso_ref.__path__, "esso_ref."):
        if info.name != "esso_ref.testing":
            yield importlib.import_module(info.name)


def test_equations_are_numbered_consecutively():
    assert sorted(DEFINED) == list(range(1, max(DEFINED) + 1))


def test_every_code_line_names_existing_functions_citing_the_equation():
    blocks = re.split(r"\n(?=## )", MATH)
    names = 0
    for block in blocks:
        numbers = {int(n) for n in re.findall(r"\\tag\{(\d+)\}", block)}
        for line in re.findall(r"^Code: (.+)$", block, flags=re.M):
            for dotted in (s.strip() for s in line.split(",")):
                obj = _resolve(dotted)  # raises if the function does not exist
                names += 1
                doc = inspect.getdoc(obj) or ""
                module_doc = inspect.getdoc(inspect.getmodule(obj)) or ""
                assert _cited(doc) | _cited(module_doc), f"{dotted} cites no equation"
                assert numbers, f"a Code: line outside a numbered section: {line}"
    assert names >= 40


def test_every_cited_equation_is_defined():
    for module in _modules():
        for obj in [module, *vars(module).values()]:
            doc = inspect.getdoc(obj) if (inspect.isfunction(obj) or inspect.isclass(obj)
                                          or inspect.ismodule(obj)) else None
            missing = _cited(doc) - DEFINED
            assert not missing, f"{getattr(obj, '__name__', obj)} cites undefined {missing}"
        source = inspect.getsource(module)
        missing = _cited(source) - DEFINED
        assert not missing, f"{module.__name__} cites undefined equations {missing}"


def test_public_curvature_functions_cite_equations():
    for name in ("hvp", "hessian", "hessian_factor", "eigenvalues", "newton_direction",
                 "per_sample_directions", "flatten"):
        assert _cited(inspect.getdoc(getattr(esso_ref, name))), name
    for name in ("loss", "gradient", "per_sample_gradients", "forward"):
        assert _cited(inspect.getdoc(getattr(esso_ref.MLP, name))), name


def test_tutorial_python_blocks_run_in_order(tmp_path, monkeypatch):
    tutorial = (Path(__file__).resolve().parents[1] / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", tutorial, flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        if "cupy" in block:
            continue
        exec(compile(block, "tutorial.md", "exec"), scope)
    assert scope["g"] @ scope["d"] < 0


def test_readme_tour_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})


def test_public_functions_document_args_returns_raises():
    for name in esso_ref.__all__:
        obj = getattr(esso_ref, name)
        if inspect.isfunction(obj):
            doc = inspect.getdoc(obj) or ""
            for section in ("Args:", "Returns:", "Raises:"):
                assert section in doc, f"{name} lacks {section}"
