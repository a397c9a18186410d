"""Write the typed-accessor blocks of the header classes from their ``FIELDS``.

    python -m nfkit.packets._stubs           # rewrite the blocks in src/nfkit/packets/*.py
    python -m nfkit.packets._stubs --check   # exit 1 if any block is out of date

Why blocks in the classes rather than ``.pyi`` stubs: a stub file replaces its module for a
type checker, so a stub per header module would have to repeat every method and constant by
hand -- a second source of truth that rots.  A block inside the class adds only the field
names, generated from the one ``Field`` declaration, and leaves the rest to the real code.
See :mod:`._fieldtypes` for what the names mean to a type checker.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

from ._fieldtypes import KIND_TYPES
from .base import Packet

__all__ = ["render", "module_paths", "main"]

HERE = Path(__file__).resolve().parent
IMPORT = ("from . import _fieldtypes as _ft  "
          "# typed field accessors (python -m nfkit.packets._stubs)")
BEGIN = "# -- typed accessors, generated from FIELDS by python -m nfkit.packets._stubs"
END = "# -- end of generated accessors"


def module_paths() -> list[Path]:
    """The header modules (every module of the package that declares fields)."""
    return sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_")
                  and p.stem not in ("fields", "base", "constants", "dissect"))


def _generated(prop: object) -> bool:
    """A property that ``install_accessors`` made (not one the class body defines)."""
    fget = getattr(prop, "fget", None)
    return isinstance(prop, property) and fget is not None \
        and fget.__code__.co_filename.startswith("<nfkit field")


def _field_lines(cls: type[Packet]) -> list[str]:
    return [f"{f.name} = _ft.{KIND_TYPES[f.kind]}()" for f in cls.__dict__["FIELDS"]
            if _generated(cls.__dict__.get(f.name))]


def _classes(modname: str) -> dict[str, list[str]]:
    mod = importlib.import_module(modname)
    out = {}
    for obj in vars(mod).values():
        if (isinstance(obj, type) and issubclass(obj, Packet) and obj.__module__ == modname
                and "FIELDS" in obj.__dict__ and not obj.__dict__.get("_readonly_variant")):
            lines = _field_lines(obj)
            if lines:
                out[obj.__qualname__] = lines
    return out


def _strip(lines: list[str]) -> list[str]:
    out, inside = [], False
    for line in lines:
        s = line.strip()
        if s.startswith(BEGIN):
            inside = True
        elif inside and s.startswith(END):
            inside = False
        elif not inside and line.rstrip("\n") != IMPORT:
            out.append(line)
    return out


def render(path: Path) -> str:
    """The module's source with its generated blocks as its classes' FIELDS say now."""
    lines = _strip(path.read_text().splitlines(keepends=True))
    blocks = _classes(f"{__package__}.{path.stem}")
    tree = ast.parse("".join(lines))
    inserts: dict[int, list[str]] = {}          # after line number (1-based) -> lines
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in blocks:
            fields = [s for s in node.body if isinstance(s, (ast.Assign, ast.AnnAssign))
                      and any(isinstance(t, ast.Name) and t.id == "FIELDS"
                              for t in (s.targets if isinstance(s, ast.Assign) else [s.target]))]
            ind = " " * node.body[0].col_offset
            body = [f"{ind}{BEGIN}\n", f"{ind}if _ft.TYPE_CHECKING:  # pragma: no cover\n"]
            body += [f"{ind}    {x}\n" for x in blocks[node.name]]
            body.append(f"{ind}{END}\n")
            inserts[fields[0].end_lineno or 0] = body
    if inserts:
        last_import = 0
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                last_import = node.end_lineno or 0
            elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                break
        inserts.setdefault(last_import, []).insert(0, IMPORT + "\n")
    out: list[str] = []
    for i, line in enumerate(lines, 1):
        out.append(line)
        out += inserts.get(i, [])
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for path in module_paths():
        new = render(path)
        if new != path.read_text():
            stale.append(path.name)
            if not check:
                path.write_text(new)
    if stale:
        verb = "out of date" if check else "rewritten"
        print(f"typed accessors {verb}: {', '.join(stale)}", file=sys.stderr)
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
