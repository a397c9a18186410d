"""Builds nfkit's browsable API reference with pdoc (``make docs``; docs/api.md).

    python docs/build_api.py [OUTPUT_DIR]      # default: build/api (ignored by git)

Before rendering, every header class's docstring gets a table of its fields, made from its
``FIELDS`` declarations (the one source of truth: name, offset, width, what it means), so
the reference shows them the way ``help()`` does not.  The build fails -- exit 1, each
problem printed -- on any warning pdoc or Python emits while importing and rendering, and
on any link in the output to a page or anchor that does not exist.
"""

from __future__ import annotations

import html.parser
import sys
import warnings
from pathlib import Path
from urllib.parse import urldefrag

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))



def public_modules() -> list[str]:
    """nfkit and every submodule whose dotted path has no ``_`` part.  Listed one by one:
    pdoc follows only the submodules a package's ``__all__`` names, and nfkit's names
    classes and functions."""
    import importlib
    import pkgutil

    import nfkit
    names = ["nfkit"]
    for info in pkgutil.walk_packages(nfkit.__path__, "nfkit."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            importlib.import_module(info.name)
            names.append(info.name)
    return names


def resolve_lazy_names(modules: list[str]) -> None:
    """nfkit and nfkit.testing load some of their names on first use (``__getattr__``:
    the runtime pulls in pydantic, the strategies hypothesis); pdoc reads a module's names
    from its namespace, so the reference build loads them first (only in this process)."""
    for name in modules:
        mod = sys.modules[name]
        for attr in getattr(mod, "__all__", ()):
            if attr not in vars(mod):
                setattr(mod, attr, getattr(mod, attr))


def pdoc_specs(modules: list[str]) -> list[str]:
    """``modules`` less those pdoc adds by itself (the submodules a package's ``__all__``
    names): listing one twice is a warning."""
    import pdoc.extract
    covered: set[str] = set()
    specs = []
    for name in modules:
        if name not in covered:
            specs.append(name)
            covered.update(pdoc.extract.walk_specs([name]))
    return specs


def unlink_private_bases(out: Path) -> int:
    """pdoc lists the members a class inherits from a private base (``_Strict``) with a
    link to it, but documents no private class: such a link is made plain text.  How many."""
    import re
    n = 0
    link = re.compile(r'<a href="[^"#]*#_[A-Za-z0-9_.]*">(.*?)</a>', re.S)
    for page in out.rglob("*.html"):
        text, k = link.subn(r"\1", page.read_text())
        if k:
            page.write_text(text)
            n += k
    return n


def field_table(cls: type) -> str:
    """A Markdown table of ``cls``'s declared fields (not its aliases twice)."""
    from nfkit.packets.fields import Field
    fields: tuple[Field, ...] = cls.FIELDS      # type: ignore[attr-defined]
    rows = ["| field | bytes | bits | type | meaning |", "|---|---|---|---|---|"]
    for f in fields:
        where = f"{f.offset}" if f.width == 1 else f"{f.offset}-{f.offset + f.width - 1}"
        bits = f"mask {f.mask:#x}" if f.is_masked else f"{8 * f.width}"
        kind = f.enum.__name__ if f.enum is not None else f.kind
        notes = [f.doc] if f.doc else []
        if f.derived:
            notes.append("computed by `reconcile`")
        if f.alias:
            notes.append("another view of bits declared above")
        rows.append(f"| `{f.name}` | {where} | {bits} | {kind} | {'; '.join(notes)} |")
    return "\n".join(rows)


def add_field_tables() -> list[str]:
    """Append the fields table to every header class's docstring; their names."""
    import nfkit.packets as packets
    from nfkit.packets.base import Packet
    done = []
    for name in packets.__all__:
        cls = getattr(packets, name)
        if isinstance(cls, type) and issubclass(cls, Packet) and cls.__dict__.get("FIELDS"):
            cls.__doc__ = (f"{(cls.__doc__ or '').rstrip()}\n\n"
                           f"**Fields** (declared in `FIELDS`; each is a property):\n\n"
                           f"{field_table(cls)}\n")
            done.append(name)
    return done


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            if k == "href" and v and tag == "a":
                self.hrefs.append(v)


def broken_links(out: Path) -> list[str]:
    """Links between the generated pages whose page or anchor does not exist."""
    pages: dict[Path, _Links] = {}
    for page in out.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        pages[page.resolve()] = parser
    broken = []
    for page, parser in pages.items():
        for href in parser.hrefs:
            if "://" in href or href.startswith(("mailto:", "javascript:")):
                continue
            target, anchor = urldefrag(href)
            dest = (page.parent / target).resolve() if target else page
            if dest not in pages and not dest.exists():
                broken.append(f"{page.relative_to(out.resolve())}: {href} (no such page)")
            elif anchor and dest in pages and anchor not in pages[dest].ids:
                broken.append(f"{page.relative_to(out.resolve())}: {href} (no such anchor)")
    return broken


def build(out: Path) -> list[str]:
    """Render the reference into ``out``; the problems found (empty: a clean build)."""
    import pdoc
    import pdoc.render
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        add_field_tables()
        modules = public_modules()
        resolve_lazy_names(modules)
        pdoc.render.configure(docformat="restructuredtext", show_source=True, search=True,
                              footer_text="nfkit API reference")
        pdoc.pdoc(*pdoc_specs(modules), output_directory=out)
    unlink_private_bases(out)
    problems += [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    problems += [f"broken link: {b}" for b in broken_links(out)]
    return problems


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "build" / "api"
    problems = build(out)
    for p in problems:
        print(p, file=sys.stderr)
    print(f"API reference: {out / 'index.html'}" + (f"; {len(problems)} problem(s)" if problems else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
