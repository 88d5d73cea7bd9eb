"""Write a config (sections of scalars, strings and lists) as TOML text."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["to_toml"]


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(e) for e in v) + "]"
    raise TypeError(f"to_toml: cannot write {type(v).__name__}")


def to_toml(cfg: dict[str, dict[str, Any]], header: str = "") -> str:
    """TOML text for ``{section: {key: value}}``; ``None`` values are left out."""
    lines = [f"# {line}" for line in header.splitlines()]
    for section, keys in cfg.items():
        body = [f"{k} = {_value(v)}" for k, v in keys.items() if v is not None]
        if body:
            lines += ["", f"[{section}]", *body]
    return "\n".join(lines).lstrip("\n") + "\n"
