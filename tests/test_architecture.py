"""The package's shape, checked from its source (no server): what may import what, where the
private names of the Singer SDK are used, and that the package has one retry loop.

docs/architecture.md describes the same rules in prose.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from tap_microsoft365 import sdk_compat

PACKAGE = Path(__file__).resolve().parent.parent / "tap_microsoft365"
# Private SDK members the tap touches; only sdk_compat.py may name them.
PRIVATE_SDK_NAMES = frozenset(
    {
        "_sync_records",
        "_generate_record_messages",
        "_write_record_message",
        "_tap",
        "_write_state_message",
        "_write_activate_version_message",
        "_increment_stream_state",
        "_stream_version",
        "_request",
        "_validate_config",
        "_state_writer",
    }
)


def modules() -> dict[str, ast.Module]:
    """Dotted module name -> parsed source, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


def imports(module: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The package's modules `module` imports, type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative
                package = module.split(".")
                if not (PACKAGE / Path(*package[1:]) / "__init__.py").exists():
                    package = package[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], node.module])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known and name != module}


def test_the_installed_sdk_has_every_private_name_the_tap_relies_on() -> None:
    gone = sdk_compat.missing()
    assert not gone, (
        f"singer-sdk no longer has {', '.join(gone)}, which tap_microsoft365/sdk_compat.py "
        f"relies on (checked against {sdk_compat.SDK_VERSION_CHECKED}): adapt sdk_compat.py to "
        "the new SDK, or pin the SDK version"
    )


def test_private_sdk_names_are_used_only_in_sdk_compat() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "sdk_compat.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute | ast.FunctionDef):
                name = node.attr if isinstance(node, ast.Attribute) else node.name
            if name in PRIVATE_SDK_NAMES:
                offenders.append(f"{relative}:{getattr(node, 'lineno', '?')} {name}")
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("singer_sdk")
                and any(part.startswith("_") for part in (node.module or "").split("."))
            ):
                offenders.append(f"{relative}:{node.lineno} {node.module}")
    assert not offenders, f"private SDK names outside sdk_compat.py: {offenders}"


def test_only_the_entry_point_imports_the_tap_class() -> None:
    trees = modules()
    known = set(trees)
    importers = sorted(
        name for name, tree in trees.items() if "tap_microsoft365.tap" in imports(name, tree, known)
    )
    assert importers == ["tap_microsoft365.__main__"], importers


def test_no_import_cycles_type_only_imports_included() -> None:
    trees = modules()
    known = set(trees)
    graph = {name: imports(name, tree, known) for name, tree in trees.items()}
    cycles = []

    def visit(name: str, path: list[str], done: set[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                cycles.append([*path[path.index(target) :], target])
            elif target not in done:
                visit(target, [*path, target], done)
        done.add(name)

    finished: set[str] = set()
    for name in sorted(graph):
        if name not in finished:
            visit(name, [name], finished)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("call", ["sleep", "next_wait"])
def test_one_retry_loop(call: str) -> None:
    # Every retry waits in `Transport.retrying`; pacing and hand-over waits are events and
    # conditions, never a sleep.
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        sites += [
            f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == call
        ]
    expected = [] if call == "sleep" else ["graph/transport.py"]
    assert [site.split(":")[0] for site in sites] == expected, sites


def test_no_source_cites_notes_outside_the_repository() -> None:
    # Comments state the fact or link Microsoft's page: a maintainer has no copy of documents
    # beside the repository. A relative path going up (`../`) must name, from its own file's
    # folder, something of this repository: a file in it, or one it makes and git ignores.
    root = PACKAGE.parent.resolve()

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    listed = git("ls-files", "*.py", "*.sql", "*.md", "*.yml", "*.sh", "*.toml").stdout.split()
    assert listed
    upward = re.compile(r"(?:\.\./)+[\w.-][\w./-]*")

    def of_the_repository(name: str, path: str) -> bool:
        target = (root / name).parent.joinpath(path).resolve()
        if not target.is_relative_to(root):
            return False
        relative = str(target.relative_to(root))
        return target.exists() or git("check-ignore", "-q", relative).returncode == 0

    citing = [
        f"{name}: {path}"
        for name in listed
        if (root / name).is_file()
        for path in upward.findall((root / name).read_text(encoding="utf-8"))
        if not of_the_repository(name, path)
    ]
    assert citing == []
