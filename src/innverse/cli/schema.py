"""Typed, self-explaining validation of TOML configuration tables.

A schema is ``{section: {key: Key}}``. Validation fills defaults, and turns every problem into a
:class:`UsageError` that names the file, the key (``training.epochs``), the expected type with an
example, and what was found; unknown keys are errors too (with a "did you mean" hint), because a
silently ignored typo is worse than a refusal.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

__all__ = ["Key", "describe", "validate"]

_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "integers": "a list of integers",
    "string list": "a list of strings",
    "numbers": "a list of numbers",
    "table": "a table",
    "string or table": "a string or a table",
}


@dataclass(frozen=True)
class Key:
    """One configuration key.

    Args:
        type: one of ``string``, ``integer``, ``number``, ``boolean``, ``integers``, ``numbers``,
            ``table``, ``string or table``.
        default: value used when absent (``None`` = optional and absent).
        required: absent is an error.
        example: shown in error messages, e.g. ``"epochs = 50"``.
        choices: allowed values for strings.
        minimum: smallest allowed value for numbers (and list entries).
        maximum: largest allowed value for numbers (and list entries): absurd counts are refused.
        positive: numbers must be ``> 0`` (an exclusive minimum, e.g. a learning rate).
        help: one line for ``innverse fit --help-config``.

    Numbers must be finite (TOML's ``inf`` and ``nan`` are refused).
    """

    type: str
    default: Any = None
    required: bool = False
    example: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    help: str = ""
    maximum: float | None = None
    positive: bool = False


def _found(value: Any) -> str:
    names = {str: "the string", bool: "the boolean", int: "the integer", float: "the number",
             list: "the list", dict: "a table"}
    name = names.get(type(value), type(value).__name__)
    return name if isinstance(value, dict) else f"{name} {value!r}"


def _type_ok(kind: str, v: Any) -> bool:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    is_num = is_int or isinstance(v, float)
    return {
        "string": isinstance(v, str),
        "integer": is_int,
        "number": is_num,
        "boolean": isinstance(v, bool),
        "integers": isinstance(v, list) and all(isinstance(e, int) and not isinstance(e, bool) for e in v),
        "string list": isinstance(v, list) and all(isinstance(e, str) for e in v),
        "numbers": isinstance(v, list) and all(isinstance(e, int | float) and not isinstance(e, bool)
                                               for e in v),
        "table": isinstance(v, dict),
        "string or table": isinstance(v, str | dict),
    }[kind]


def _check(file: str, name: str, key: Key, value: Any) -> Any:
    example = f" (e.g. {key.example})" if key.example else ""
    if not _type_ok(key.type, value):
        raise UsageError(f"{file}: key '{name}' must be {_TYPES[key.type]}{example}, got {_found(value)}")
    if key.choices and value not in key.choices:
        hint = difflib.get_close_matches(str(value), key.choices, n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise UsageError(f"{file}: key '{name}' must be one of {', '.join(map(repr, key.choices))}, "
                         f"got {value!r}{did}")
    if key.type in ("integer", "number", "integers", "numbers"):
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise UsageError(f"{file}: key '{name}' must be a finite number{example}, got {value!r}")
        if key.positive and any(v <= 0 for v in values):
            raise UsageError(f"{file}: key '{name}' must be > 0{example}, got {value!r}")
        if key.minimum is not None and any(v < key.minimum for v in values):
            raise UsageError(f"{file}: key '{name}' must be >= {key.minimum:g}{example}, got {value!r}")
        if key.maximum is not None and any(v > key.maximum for v in values):
            raise UsageError(f"{file}: key '{name}' must be <= {key.maximum:,}{example} (a limit against "
                             f"absurd values), got {value!r}")
    if key.type == "number":
        value = float(value)
    return value


def validate(data: dict[str, Any], schema: dict[str, dict[str, Key]], file: str,
             open_sections: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Check ``data`` (a parsed TOML document) against ``schema``; return it with defaults filled.

    Sections in ``open_sections`` are passed through unvalidated (their consumer checks them, e.g.
    a prior description).
    """
    out: dict[str, dict[str, Any]] = {}
    for section in data:
        if section not in schema and section not in open_sections:
            hint = difflib.get_close_matches(section, list(schema) + list(open_sections), n=1)
            did = f" (did you mean [{hint[0]}]?)" if hint else ""
            raise UsageError(f"{file}: unknown section [{section}]{did}; known sections: "
                             + ", ".join(f"[{s}]" for s in (*schema, *open_sections)))
        if not isinstance(data[section], dict):
            raise UsageError(f"{file}: '{section}' must be a table ([{section}] followed by keys), "
                             f"got {_found(data[section])}")
    for section in open_sections:
        if section in data:
            out[section] = dict(data[section])
    for section, keys in schema.items():
        given = dict(data.get(section, {}))
        for name in given:
            if name not in keys:
                hint = difflib.get_close_matches(name, list(keys), n=1)
                did = f" (did you mean '{section}.{hint[0]}'?)" if hint else ""
                raise UsageError(f"{file}: unknown key '{section}.{name}'{did}; keys of [{section}]: "
                                 + ", ".join(keys))
        values: dict[str, Any] = {}
        for name, key in keys.items():
            full = f"{section}.{name}"
            if name in given:
                values[name] = _check(file, full, key, given[name])
            elif key.required:
                example = f", e.g. {key.example}" if key.example else ""
                raise UsageError(f"{file}: missing key '{full}' ({_TYPES[key.type]}{example})")
            else:
                values[name] = key.default
        out[section] = values
    return out


def describe(schema: dict[str, dict[str, Key]]) -> str:
    """Human-readable listing of every section and key, for ``--help``-style output."""
    lines = []
    for section, keys in schema.items():
        lines.append(f"[{section}]")
        for name, key in keys.items():
            req = "required" if key.required else f"default {key.default!r}"
            choices = f"; one of {', '.join(key.choices)}" if key.choices else ""
            lines.append(f"  {name:<22} {_TYPES[key.type]} ({req}{choices}) {key.help}".rstrip())
    return "\n".join(lines)
