"""The package dependency rule: a pipeline stage imports only the stages before it.

Order (bottom first): core, llm, data, annotate, encoders, meanfield, transition, policy, simulate,
evaluate, experiment, cli. Imports inside functions (lazy ones) count like module-level ones: a lazy
back-edge is still a cycle waiting for the next refactor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mfmdp"
ORDER = ("core", "llm", "data", "annotate", "encoders", "meanfield", "transition", "policy", "simulate",
         "evaluate", "experiment", "cli", "__main__")
# packages outside the pipeline: data files and prompt texts, importable from anywhere
ANYWHERE = {"configs", "prompts"}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "mfmdp" or len(parts) < 2:
        return None
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in `path`, at module level or inside functions."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
    return found


def stage_edges() -> list[tuple[str, str, str]]:
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        source = stage_of(module_name(path)) or "__init__"
        for target, line in imported_modules(path):
            stage = stage_of(target)
            if stage is not None and stage != source:
                edges.append((source, stage, f"{path.relative_to(SRC.parent)}:{line}"))
    return edges


def test_every_package_has_a_place_in_the_order():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages - set(ORDER) - ANYWHERE == set(), "add the new package to ORDER (and to the README's rule)"


def test_no_stage_imports_a_later_stage():
    rank = {name: i for i, name in enumerate(ORDER)}
    wrong = [f"{where}: {src} imports {dst}" for src, dst, where in stage_edges()
             if src in rank and dst in rank and rank[dst] > rank[src]]
    assert wrong == []


def test_the_rule_is_checked_for_real(tmp_path, monkeypatch):
    """The checker sees a lazy back-edge inside a function (it is not a test that cannot fail)."""
    fake = tmp_path / "mfmdp" / "data"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("def f():\n    from mfmdp.simulate.loop import simulate\n    from . import errors\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path / "mfmdp")
    assert ("data", "simulate") in {(s, d) for s, d, _ in stage_edges()}
    assert stage_of(imported_modules(fake / "bad.py")[1][0]) == "data"  # a relative import resolved


@pytest.mark.parametrize("stage, allowed", [("core", set()), ("encoders", {"core"})])
def test_the_bottom_imports_no_stage(stage, allowed):
    """core imports no stage; encoders only core (the Spec base of EncoderSpec), so both could sit lower."""
    assert [e for e in stage_edges() if e[0] == stage and e[1] not in ANYWHERE | allowed] == []


def test_the_policy_reads_f_psi_only_through_its_api():
    """policy/ sees the transition model through transition.api (sessions, teacher-forced prefixes)
    and builds its inputs with transition.features, never the Event Transformer's internals, so
    another f_psi can be dropped in."""
    inside = [f"{path.relative_to(SRC.parent)}:{line}: {target}"
              for path in sorted((SRC / "policy").rglob("*.py"))
              for target, line in imported_modules(path)
              if target.startswith("mfmdp.transition")
              and target not in ("mfmdp.transition.api", "mfmdp.transition.features")]
    assert inside == []
