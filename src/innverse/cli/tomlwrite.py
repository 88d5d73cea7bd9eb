"""Write a config (sections of scalars, strings and lists) as TOML text, with tomli-w."""

from __future__ import annotations

from typing import Any

import tomli_w

__all__ = ["to_toml"]


def to_toml(cfg: dict[str, dict[str, Any]], header: str = "") -> str:
    """TOML text for ``{section: {key: value}}`` under a comment ``header``; ``None`` values are left out.

    Raises:
        TypeError: a value TOML cannot hold.
    """
    clean = {section: {k: list(v) if isinstance(v, tuple) else v for k, v in keys.items() if v is not None}
             for section, keys in cfg.items()}
    body = tomli_w.dumps({s: keys for s, keys in clean.items() if keys})
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + body
