"""Which library code a workflow script runs, and a hash of it.

A rule passes ``version(script)`` as a param, so Snakemake's params trigger reruns its jobs
when any module the script imports changes, directly or through other modules, and when a
data file those modules name (``claims.yaml``) changes. The imports are read with ``ast``
from the source, so no list of modules is kept by hand.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "cnnopt"
PACKAGE_DIR = Path(__file__).resolve().parent


def _imported(tree: ast.AST, current: str | None) -> set[str]:
    """Names of package modules imported anywhere in ``tree`` (inside functions too).

    ``current`` is the importing module's own name inside the package (None for a script):
    it resolves relative imports (``from . import io``, ``from .errors import X``).
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                base = node.module
            elif node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
                base = node.module.split(".", 1)[1] if "." in node.module else None
            else:
                continue
            if base:
                found.add(base.split(".")[0])
            else:  # from cnnopt import io, verdicts / from . import io
                found.update(alias.name for alias in node.names)
    return found


def _data_files(tree: ast.AST, package_dir: Path) -> set[Path]:
    """Files of the package directory whose names appear as string constants in ``tree``."""
    data = {p.name for p in package_dir.iterdir() if p.is_file() and p.suffix != ".py"}
    return {package_dir / node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in data}


def closure(script, package_dir=PACKAGE_DIR) -> list[Path]:
    """The files of the package that ``script`` runs: every module it imports, directly or
    not, the package's ``__init__.py``, and the data files those modules name. Sorted."""
    package_dir = Path(package_dir)
    files: set[Path] = set()
    todo = [(Path(script), None)]
    seen_modules: set[str] = set()
    while todo:
        path, name = todo.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if name is not None:
            files.add(path)
            files |= _data_files(tree, package_dir)
        for module in sorted(_imported(tree, name) - seen_modules):
            module_path = package_dir / f"{module}.py"
            if module_path.is_file():  # names imported from the package that are not modules
                seen_modules.add(module)
                todo.append((module_path, module))
    if seen_modules:
        files.add(package_dir / "__init__.py")
    return sorted(files)


def version(script, package_dir=PACKAGE_DIR) -> str:
    """A short hash of the script and of every package file it runs (see ``closure``)."""
    package_dir = Path(package_dir)
    digest = hashlib.sha256()
    for path in [Path(script), *closure(script, package_dir)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
