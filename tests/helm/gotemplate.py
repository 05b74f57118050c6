"""A small renderer of the Go text/template subset the dranet Helm chart uses, for tests.

Supported: ``{{ pipeline }}``, ``{{- ... -}}`` whitespace trimming, ``if``/``else``/``with``/
``range``/``end``, ``/* comments */``; values ``.``, ``.Values.a.b``, ``.Release.X``,
``.Chart.X``, string and integer literals; functions ``toYaml``, ``nindent``, ``default``,
``quote``, ``printf``, ``ne``, ``hasKey``; pipelines pass the left value as the last
argument. Anything else raises, so the chart cannot silently use what this does not render.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import yaml

_TAG = re.compile(r"{{(-?)\s*(.*?)\s*(-?)}}", re.S)


def _truthy(v: Any) -> bool:
    return v not in (None, False, 0, "") and not (isinstance(v, (dict, list)) and not v)


def _text(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _to_yaml(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)
    return re.sub(r"%[sdv]", lambda _m: _text(next(it)), fmt)


FUNCS: dict[str, Any] = {
    "toYaml": _to_yaml,
    "nindent": lambda n, s: "\n" + "\n".join(" " * int(n) + line for line in str(s).split("\n")),
    "default": lambda d, v: v if _truthy(v) else d,
    "quote": lambda s: json.dumps(_text(s)),
    "printf": _printf,
    "ne": lambda a, b: a != b,
    "hasKey": lambda m, k: isinstance(m, dict) and k in m,
}


class Template:
    def __init__(self, source: str) -> None:
        self.tokens = self._lex(source)

    @staticmethod
    def _lex(source: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        trim_next = False
        for m in _TAG.finditer(source):
            text = source[pos : m.start()]
            if trim_next:
                text = text.lstrip()
            if m.group(1):
                text = text.rstrip()
            out.append(("text", text))
            out.append(("action", m.group(2)))
            trim_next = bool(m.group(3))
            pos = m.end()
        tail = source[pos:]
        out.append(("text", tail.lstrip() if trim_next else tail))
        return out

    def render(self, context: dict[str, Any]) -> str:
        out, i = self._block(0, context, context)
        if i != len(self.tokens):
            raise ValueError("unbalanced {{ end }}")
        return out

    def _block(self, i: int, dot: Any, root: dict[str, Any], run: bool = True) -> tuple[str, int]:
        parts: list[str] = []
        while i < len(self.tokens):
            kind, value = self.tokens[i]
            if kind == "text":
                parts.append(value if run else "")
                i += 1
                continue
            word = value.split(None, 1)[0] if value else ""
            if word in ("end", "else"):
                return "".join(parts), i
            if value.startswith("/*"):
                i += 1
                continue
            if word in ("if", "with", "range"):
                arg = value[len(word) :].strip()
                v = self._eval(arg, dot, root) if run else None
                body_dot = v if word == "with" else dot
                if word == "range":
                    items = list(v or []) if run else []
                    start = i + 1
                    body_parts = []
                    for item in items:
                        text, end = self._block(start, item, root, True)
                        body_parts.append(text)
                    _, end = self._block(start, dot, root, False)
                    parts.append("".join(body_parts))
                    i = end + 1
                    continue
                take = run and _truthy(v)
                text, j = self._block(i + 1, body_dot, root, take)
                parts.append(text)
                if self.tokens[j][1] == "else":
                    text, j = self._block(j + 1, dot, root, run and not take)
                    parts.append(text)
                i = j + 1
                continue
            if run:
                parts.append(_text(self._eval(value, dot, root)))
            i += 1
        return "".join(parts), i

    def _eval(self, pipeline: str, dot: Any, root: dict[str, Any]) -> Any:
        value: Any = _MISSING
        for cmd in [c.strip() for c in _split_pipes(pipeline)]:
            words = shlex.split(cmd, posix=False)
            if words[0] in FUNCS:
                args = [self._arg(w, dot, root) for w in words[1:]]
                if value is not _MISSING:
                    args.append(value)
                value = FUNCS[words[0]](*args)
            elif len(words) == 1 and value is _MISSING:
                value = self._arg(words[0], dot, root)
            else:
                raise ValueError(f"unsupported template command {cmd!r}")
        return value

    @staticmethod
    def _arg(word: str, dot: Any, root: dict[str, Any]) -> Any:
        if word.startswith('"'):
            return json.loads(word)
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        if word == ".":
            return dot
        if word.startswith("."):
            v: Any = root
            for part in word[1:].split("."):
                v = v.get(part) if isinstance(v, dict) else None
            return v
        raise ValueError(f"unsupported template argument {word!r}")


_MISSING = object()


def _split_pipes(text: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "|" and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out
