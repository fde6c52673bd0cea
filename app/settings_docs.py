"""`python -m app.settings_docs`: write README's configuration table and `.env.example` from the
registry in app/settings.py, so the docs list exactly the variables the app reads.

`--check` writes nothing and exits 1 naming the files that are out of date (tests/test_settings.py
runs the same check).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from app.config import PROJECT_ROOT
from app.settings import Settings, accepted, doc_default

README = PROJECT_ROOT / "README.md"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
TABLE_START = "<!-- settings:start: generated from app/settings.py by `python -m app.settings_docs` -->"
TABLE_END = "<!-- settings:end -->"
ENV_EXAMPLE_HEADER = """\
# Every setting the app reads, each optional. Copy this file to .env and uncomment a line to change
# a default; a variable set in the environment wins over .env, and an empty one means its default.
# Generated from app/settings.py by `python -m app.settings_docs`: edit there, not here.
"""


def env_value(name: str) -> str:
    """The default as a .env line writes it; empty where it is computed (empty means unset)."""
    field = Settings.model_fields[name]
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if field.default is None or extra.get("shown_default") is not None:
        return ""
    if isinstance(field.default, bool):
        return str(field.default).lower()
    if isinstance(field.default, float) and field.default.is_integer():
        return str(int(field.default))
    return str(field.default)


def settings_table() -> str:
    """README's table: variable, default, what it accepts, what it means."""
    rows = ["| variable | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        value = env_value(name)
        default = f"`{value}`" if value else doc_default(name) or "–"
        cells = [f"`{name}`", default, accepted(field), str(field.description)]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def env_example() -> str:
    """`.env.example`: per variable, its meaning and what it accepts, then the line to uncomment."""
    blocks = [ENV_EXAMPLE_HEADER]
    for name, field in Settings.model_fields.items():
        text = f"{name}: {field.description}. Takes {accepted(field)}."
        if not env_value(name) and doc_default(name):
            text += f" Default: {doc_default(name)}."
        lines = textwrap.wrap(text, width=98, break_on_hyphens=False)
        blocks.append("".join(f"# {line}\n" for line in lines) + f"# {name}={env_value(name)}\n")
    return "\n".join(blocks)


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the settings markers replaced by the table."""
    before, found, rest = readme.partition(TABLE_START)
    _, ended, after = rest.partition(TABLE_END)
    if not (found and ended):
        raise ValueError(f"README.md has no {TABLE_START} ... {TABLE_END} markers")
    return f"{before}{TABLE_START}\n{settings_table()}\n{TABLE_END}{after}"


def stale_documents(readme: Path = README, env_file: Path = ENV_EXAMPLE) -> list[Path]:
    """The documents whose text differs from what the registry generates."""
    expected = {readme: readme_with_table(readme.read_text()), env_file: env_example()}
    return [path for path, text in expected.items() if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    args = parser.parse_args(argv)
    stale = stale_documents()
    if args.check:
        for path in stale:
            print(f"{path.name} is out of date: run python -m app.settings_docs", file=sys.stderr)
        return 1 if stale else 0
    README.write_text(readme_with_table(README.read_text()))
    ENV_EXAMPLE.write_text(env_example())
    return 0


if __name__ == "__main__":
    sys.exit(main())
