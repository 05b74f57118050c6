"""Generate docs/reference.md: every flag, every built-in backend option, every claim config field.

Everything comes from the code (the argument parser, the backends' declared options, the
claim configuration's JSON schema), so the reference cannot drift. ``--check`` exits 1 when
the committed file differs from what would be generated (the nox ``docs`` session runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "reference.md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings or action.dest == "help":
            continue
        flag = ", ".join(f"`{o}`" for o in action.option_strings)
        default = action.default
        if isinstance(default, bool):
            default = str(default).lower()
        shown = "" if default in (None, "", [], "false") else f"`{default}`"
        if action.choices:
            flag += " " + "\\|".join(str(c) for c in action.choices)
        rows.append(f"| {flag} | {_cell(shown)} | {_cell(action.help or '')} |")
    return rows


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options() -> list[str]:
    from dranet_core.backends import BUILTIN_ORDER, available_backends, declared_options

    rows = ["| option | default | meaning |", "|---|---|---|"]
    installed = available_backends()
    for name in BUILTIN_ORDER:
        for opt in declared_options(installed[name].load()):
            default = opt.default
            if isinstance(default, tuple):
                default = ":".join(str(p) for p in default) or "(the distribution's)"
            rows.append(f"| `{opt.name}` | `{default}` | {_cell(opt.help)} |")
    return rows


def _type(schema: dict[str, Any]) -> str:
    kinds = schema.get("type", "")
    if isinstance(kinds, list):
        kinds = [k for k in kinds if k != "null"]
        kinds = kinds[0] if len(kinds) == 1 else " or ".join(kinds)
    if kinds == "array" and "items" in schema:
        return f"list of {_type(schema['items'])}"
    return str(kinds or "any")


def _fields(schema: dict[str, Any], prefix: str, rows: list[str]) -> None:
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        rule = []
        for bound in ("minimum", "maximum", "maxLength", "maxItems"):
            if bound in sub:
                rule.append(f"{bound} {sub[bound]}")
        if "enum" in sub:
            rule.append("one of " + ", ".join(f"`{v}`" for v in sub["enum"] if v is not None))
        rows.append(f"| `{path}` | {_type(sub)} | {_cell(sub.get('description', ''))} | {'; '.join(rule)} |")
        if "properties" in sub:
            _fields(sub, path + ".", rows)
        items = sub.get("items", {})
        if isinstance(items, dict) and "properties" in items:
            _fields(items, path + "[].", rows)


def _field_docs(source: str) -> dict[str, list[tuple[str, str, str]]]:
    """Class name -> [(field, annotation, docstring)] from the source of settings.py."""
    import ast

    out: dict[str, list[tuple[str, str, str]]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: list[tuple[str, str, str]] = []
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                nxt = body[i + 1] if i + 1 < len(body) else None
                doc = ""
                if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                    doc = " ".join(str(nxt.value.value).split())
                fields.append((stmt.target.id, ast.unparse(stmt.annotation), doc))
        out[node.name] = fields
    return out


def _settings() -> list[str]:
    import attrs

    from dranet_core import settings

    docs = _field_docs(Path(settings.__file__).read_text())
    rows: list[str] = []
    for name in settings.__all__:
        cls = getattr(settings, name)
        if not (isinstance(cls, type) and attrs.has(cls)) or name == "DebugSettings":
            continue  # DebugSettings: test seams, not for users
        rows += [f"### `{name}`", "", " ".join((cls.__doc__ or "").split()), ""]
        rows += ["| field | type | default | meaning |", "|---|---|---|---|"]
        defaults = {a.name: a.default for a in attrs.fields(cls)}
        for field, annotation, doc in docs.get(name, []):
            default = defaults.get(field, attrs.NOTHING)
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                shown = f"`{default.factory.__name__}()`"
            elif default is attrs.NOTHING:
                shown = "required"
            elif isinstance(default, Path):
                shown = f"`{default}`"
            else:
                shown = f"`{default!r}`"
            rows.append(f"| `{field}` | `{_cell(annotation)}` | {_cell(shown)} | {_cell(doc)} |")
        rows.append("")
    return rows


def generate() -> str:
    from dranet_core.cli import build_parser
    from dranet_core.config import config_json_schema

    commands = _subparsers(build_parser())
    config_rows = ["| field | type | meaning | rule |", "|---|---|---|---|"]
    _fields(config_json_schema(), "", config_rows)
    parts = [
        "# Reference",
        "",
        "Generated from the code by `scripts/gen_config_reference.py`; do not edit by hand.",
        "",
        "## `dranet run` flags",
        "",
        "`dranet run` is also the default command. Durations take Go syntax (`500ms`, `2s`, `1m30s`).",
        "An invalid value stops the driver before it starts, with exit status 2 and one line naming",
        "the flag.",
        "",
        *_flags(commands["run"]),
        "",
        "## `dranet inventory` flags",
        "",
        *_flags(commands["inventory"]),
        "",
        "## `dranet demo` flags",
        "",
        *_flags(commands["demo"]),
        "",
        "## Backend options",
        "",
        "Given as `--backend-option <backend>.<key>=<value>` (repeatable) to `dranet run` and",
        "`dranet inventory`. An unknown backend or key, or a value the option's parser refuses,",
        "stops the command before it starts, naming the option.",
        "",
        *_options(),
        "",
        "## Claim configuration",
        "",
        "The `parameters` of an opaque config for driver `dra.net` (see [configuration](configuration.md)",
        "for examples and how configs merge). `a[].b` is field `b` of each item of list `a`.",
        "",
        *config_rows,
        "",
        "## Settings (library)",
        "",
        "`dranet_core.Settings` and its groups, for a driver composed from the library; the",
        "command line builds them from the flags above.",
        "",
        *_settings(),
    ]
    return "\n".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if docs/reference.md is out of date")
    args = ap.parse_args()
    text = generate()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run python scripts/gen_config_reference.py")
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
