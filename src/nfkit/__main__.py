"""``python -m nfkit``: the ``nfkit`` command (for environments without the console script
on PATH, e.g. a venv that is not activated)."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nfkit")
