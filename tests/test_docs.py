"""docs/math.md and the code cite each other: every reference resolves both ways."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

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


def _code_lines() -> list[tuple[tuple[int, ...], tuple[str, ...]]]:
    """(equations, names) of every Code: line of docs/math.md.

    A Code: line belongs to the equations tagged after the previous Code: line of its section.
    """
    out = []
    for block in re.split(r"\n(?=## )", MATH):
        pending: list[int] = []
        for match in re.finditer(r"\\tag\{(\d+)\}|^Code: (.+)$", block, flags=re.M):
            if match.group(1):
                pending.append(int(match.group(1)))
            else:
                names = tuple(name.strip() for name in match.group(2).split(","))
                out.append((tuple(pending), names))
                pending = []
    return out


CODE_LINES = _code_lines()

# Docstrings in esso_ref/curvature/ that do not yet cite the equations of their Code: line:
# object -> the equations its own docstring is to cite. Each entry turns its checks below into
# non-strict xfails; delete the entry once the docstring cites them.
PENDING: dict = {}


def _pending(names, equations) -> list:
    """An xfail mark when a PENDING docstring on this line is to cite one of ``equations``."""
    due = [name for name in names if set(PENDING.get(name, ())) & set(equations)]
    if not due:
        return []
    return [pytest.mark.xfail(strict=False, reason=f"{', '.join(due)}: citation pending")]


def _pending_equation(number: int, names) -> list:
    """An xfail mark when eq. (number) waits for a PENDING docstring of its Code: line."""
    for name in names:
        try:
            if number in _cited(inspect.getdoc(_resolve(name))):
                return []
        except (ImportError, AttributeError):
            pass  # the test itself reports the missing object
    return _pending(names, [number])


def test_every_equation_has_a_code_line():
    claimed = [n for equations, _ in CODE_LINES for n in equations]
    assert sorted(claimed) == sorted(DEFINED), "equations without a Code: line after them"
    assert all(equations for equations, _ in CODE_LINES), "a Code: line with no equation"
    assert sum(len(names) for _, names in CODE_LINES) >= 40


@pytest.mark.parametrize("equations,name", [
    pytest.param(equations, name, id=f"eq{equations[0]}-{name.rsplit('.', 1)[-1]}",
                 marks=_pending([name], equations))
    for equations, names in CODE_LINES for name in names
])
def test_code_line_names_an_object_citing_its_equation(equations, name):
    obj = _resolve(name)  # raises if the object does not exist
    cited = _cited(inspect.getdoc(obj))
    assert cited & set(equations), (
        f"the docstring of {name} cites {sorted(cited) or 'no equation'}; its Code: line in "
        f"docs/math.md follows eqs. {list(equations)}: cite one of them as 'eq. (N)'")


@pytest.mark.parametrize("number,names", [
    pytest.param(number, names, id=f"eq{number}", marks=_pending_equation(number, names))
    for equations, names in CODE_LINES for number in equations
])
def test_every_equation_is_cited_by_a_function_of_its_code_line(number, names):
    citing = [name for name in names if number in _cited(inspect.getdoc(_resolve(name)))]
    assert citing, f"eq. ({number}) is cited by none of its Code: line's {list(names)}"


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
