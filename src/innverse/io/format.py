"""The innverse model file: one safetensors file whose header carries a versioned JSON envelope.

A model file is a standard safetensors file (readable by any safetensors tool):

.. code-block:: text

    [8 bytes: little-endian header length N][N bytes: JSON header][tensor bytes]

The JSON header maps every tensor name to its dtype, shape and byte range, and its
``__metadata__`` entry ``"innverse"`` holds the envelope (itself JSON)::

    {"format": "innverse-model", "format_version": 1, "innverse_version": "0.1.0",
     "kind": "PosteriorEstimator", "config": {...architecture, standardisation, prior...},
     "sha256": "<digest of the canonical config and every tensor>"}

Loading reads the header first, refuses what is not an innverse model (pickles, ``torch.save``
archives), a newer format, a truncated file, or contents whose digest does not match, and only
then parses the tensors. Nothing is ever unpickled.

References:
    safetensors format specification, https://github.com/huggingface/safetensors
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._files import atomic_write, current_umask

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "current_umask", "read_envelope", "read_model_file",
           "write_model_file", "digest"]

FORMAT_NAME = "innverse-model"
#: Bump when the envelope changes incompatibly; readers refuse versions above their own.
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header size
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
           "U8": torch.uint8, "BOOL": torch.bool}


class ModelFileError(ValueError):
    """A model file that cannot be loaded safely: not ours, truncated, tampered, or too new."""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def digest(config_part: dict[str, Any], tensors: dict[str, Tensor]) -> str:
    """SHA-256 of the canonical JSON of ``config_part`` and every tensor (name, dtype, shape, bytes).

    Independent of the order tensors are laid out in the file, so it checks what is loaded, not how
    it was written.
    """
    h = hashlib.sha256(_canonical(config_part))
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype!s}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_model_file(path: str | os.PathLike[str], kind: str, config: dict[str, Any],
                     tensors: dict[str, Tensor], innverse_version: str) -> Path:
    """Write ``tensors`` and the envelope atomically (temp file in the same folder + ``os.replace``)."""
    from safetensors.torch import save as st_save

    path = Path(path)
    bad = [k for k, v in tensors.items() if not isinstance(v, Tensor)]
    if bad:
        raise TypeError(f"innverse.save: state entries {bad} are not tensors")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    unsupported = sorted({str(v.dtype) for v in tensors.values()} - {str(d) for d in _DTYPES.values()})
    if unsupported:
        raise TypeError(f"innverse.save: unsupported tensor dtypes {unsupported}")
    body = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "innverse_version": innverse_version, "kind": kind, "config": config}
    try:
        _canonical(body)
    except (TypeError, ValueError) as err:
        raise TypeError(f"innverse.save: the {kind} config is not JSON-serialisable ({err})") from err
    envelope = dict(body, sha256=digest(body, tensors))
    data = st_save(tensors, metadata={"innverse": json.dumps(envelope, sort_keys=True)})

    def write(handle: Any) -> None:
        if hasattr(os, "fchmod"):  # the temporary file is 0600; give the file what the umask allows, like open()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
        handle.write(data)

    return atomic_write(path, write)


def _sniff_foreign(path: Path, head: bytes) -> None:
    """Refuse pickles and ``torch.save`` archives by their magic bytes, before anything else."""
    if head[:4] == b"PK\x03\x04":
        raise ModelFileError(
            f"innverse.load: {path} is a zip archive (what torch.save writes), which holds a pickle; "
            "innverse never unpickles files because unpickling can run arbitrary code. If you trust "
            "it, read it with torch.load(..., weights_only=True) and save the model with innverse.save")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        raise ModelFileError(
            f"innverse.load: {path} is a Python pickle; innverse never unpickles files because "
            "unpickling can run arbitrary code. Save models with innverse.save instead")


def _read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """Parse and validate the safetensors header; return (header, header_end, file_size)."""
    if not path.is_file():
        raise FileNotFoundError(f"innverse.load: no model file at {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        _sniff_foreign(path, head)
        if len(head) < 8:
            raise ModelFileError(f"innverse.load: {path} is truncated ({size} bytes; not even a header)")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER:
            raise ModelFileError(f"innverse.load: {path} is not an innverse model file "
                                 f"(declared header of {n} bytes; not a safetensors file)")
        raw = f.read(n)
    if len(raw) < n:
        raise ModelFileError(f"innverse.load: {path} is truncated: the header needs {n} bytes, "
                             f"the file has {size - 8}; copy the file again")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"innverse.load: {path} is not an innverse model file "
                             f"(its header is not valid JSON: {err})") from err
    if not isinstance(header, dict):
        raise ModelFileError(f"innverse.load: {path} is not an innverse model file (bad header)")
    return header, 8 + n, size


def read_envelope(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The envelope (kind, config, versions) of a model file, without reading its tensors."""
    path = Path(path)
    header, _, _ = _read_header(path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or "innverse" not in meta:
        raise ModelFileError(f"innverse.load: {path} is a safetensors file but not an innverse model "
                             "(no 'innverse' metadata); it holds bare weights without an architecture")
    try:
        envelope = json.loads(meta["innverse"])
    except (TypeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"innverse.load: {path} has a corrupted innverse envelope ({err})") from err
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT_NAME:
        raise ModelFileError(f"innverse.load: {path} is not an innverse model file "
                             f"(format {envelope.get('format') if isinstance(envelope, dict) else None!r})")
    version = envelope.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"innverse.load: {path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"innverse.load: {path} was written by a newer innverse "
            f"({envelope.get('innverse_version', '?')}, model format version {version}); this "
            f"innverse reads format versions up to {FORMAT_VERSION}. Upgrade innverse to load it")
    for key, typ in (("kind", str), ("config", dict), ("sha256", str)):
        if not isinstance(envelope.get(key), typ):
            raise ModelFileError(f"innverse.load: {path} has a corrupted envelope: "
                                 f"'{key}' must be a {typ.__name__}")
    return envelope


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read and verify a model file; return ``(envelope, tensors)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    path = Path(path)
    envelope = read_envelope(path)
    header, start, size = _read_header(path)
    ends = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or info.get("dtype") not in _DTYPES):
            raise ModelFileError(f"innverse.load: {path} has a corrupted entry for tensor {name!r}")
        ends.append(int(offsets[1]))
    expected = start + max(ends, default=0)
    if size < expected:
        raise ModelFileError(f"innverse.load: {path} is truncated: {size} bytes, the header declares "
                             f"{expected}; the file was cut off (copy or download it again)")
    if size > expected:
        raise ModelFileError(f"innverse.load: {path} has {size - expected} unexpected trailing bytes; "
                             "it was modified after it was written")
    try:
        tensors = st_load(path.read_bytes())
    except SafetensorError as err:
        raise ModelFileError(f"innverse.load: {path} is corrupted: {err}") from err
    body = {k: v for k, v in envelope.items() if k != "sha256"}
    if digest(body, tensors) != envelope["sha256"]:
        raise ModelFileError(
            f"innverse.load: {path} failed its integrity check (SHA-256 of the configuration and "
            "weights does not match the one recorded when it was saved): the file was modified or "
            "damaged. Do not use it; save the model again from its source")
    return envelope, tensors
