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
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # cnnopt/ (this module lives in cnnopt/common/)


def _resolve(dotted: str, package_dir: Path) -> list[tuple[Path, str]]:
    """The files that importing package module ``dotted`` (e.g. "judge.model") runs: the
    ``__init__.py`` of every subpackage on the way and the module itself. [] if none exists."""
    parts = dotted.split(".")
    out = []
    for i in range(1, len(parts)):
        init = package_dir.joinpath(*parts[:i], "__init__.py")
        if not init.is_file():
            return []
        out.append((init, ".".join(parts[:i])))
    module = package_dir.joinpath(*parts[:-1], parts[-1] + ".py")
    init = package_dir.joinpath(*parts, "__init__.py")
    if module.is_file():
        return [*out, (module, dotted)]
    if init.is_file():
        return [*out, (init, dotted)]
    return []


def _imported(tree: ast.AST, current: str | None, is_package: bool = False) -> set[str]:
    """Dotted names (inside the package) of the modules imported anywhere in ``tree``
    (inside functions too); a name may also be an attribute, which ``_resolve`` drops.

    ``current`` is the importing module's dotted name inside the package (None for a script;
    ``is_package`` when it is a subpackage's ``__init__``): it resolves relative imports
    (``from . import io``, ``from ..errors import X``, ``from .model import fit``).
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(".".join(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                here = current.split(".") if is_package else current.split(".")[:-1]
                up = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                base = ".".join([*up, *([node.module] if node.module else [])])
            elif node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
                base = node.module.split(".", 1)[1] if "." in node.module else ""
            else:
                continue
            if base:
                found.add(base)
            # from cnnopt import io / from . import model / from .judge import claims
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return found


def _data_files(tree: ast.AST, folder: Path) -> set[Path]:
    """Files of ``folder`` (the module's own) whose names appear as string constants in
    ``tree``."""
    data = {p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".py"}
    return {folder / node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in data}


def closure(script, package_dir=PACKAGE_DIR) -> list[Path]:
    """The files of the package that ``script`` runs: every module it imports, directly or
    not, through subpackages too, the ``__init__.py`` files on the way, and the data files
    those modules name. Sorted."""
    package_dir = Path(package_dir).resolve()
    files: set[Path] = set()
    todo: list[tuple[Path, str | None]] = [(Path(script), None)]
    seen: set[str] = set()
    while todo:
        path, name = todo.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if name is not None:
            files.add(path)
            files |= _data_files(tree, path.parent)
        for dotted in sorted(_imported(tree, name, path.name == "__init__.py") - seen):
            seen.add(dotted)
            for file, module in _resolve(dotted, package_dir):
                if file not in files:
                    todo.append((file, module))
                    files.add(file)
    if files:
        files.add(package_dir / "__init__.py")
    return sorted(files, key=lambda f: f.relative_to(package_dir).as_posix())


#: Modules that decide which device a job runs on and what its log says, never what it
#: computes: the hash takes their names but not their text, so an edit to them reruns nothing.
NEUTRAL = frozenset({"common/gpus.py", "common/logs.py"})


def version(script, package_dir=PACKAGE_DIR) -> str:
    """A short hash of the script and of every package file it runs (see ``closure``; of a
    ``NEUTRAL`` module, its name only)."""
    package_dir = Path(package_dir).resolve()
    digest = hashlib.sha256()
    for path in [Path(script), *closure(script, package_dir)]:
        name = path.name if path == Path(script) else path.relative_to(package_dir).as_posix()
        text = b"" if name in NEUTRAL else path.read_bytes()
        digest.update(name.encode() + b"\0" + text + b"\0")
    return digest.hexdigest()[:16]
