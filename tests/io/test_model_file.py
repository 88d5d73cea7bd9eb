"""Model files: round trip, and refusal of newer, truncated, tampered and pickle-bearing files."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

import innverse
from innverse.flows import coupling_flow
from innverse.io import FORMAT_VERSION, ModelFileError, info, load, save


class TinyModel(nn.Module):
    """A conditional coupling flow with standardisation buffers, rebuilt from its config."""

    def __init__(self, features: int, context: int, coupling: str, shift: list[float]) -> None:
        super().__init__()
        self.args = {"features": features, "context": context, "coupling": coupling, "shift": shift}
        self.flow = coupling_flow(features, context, blocks=2, hidden=(8,), coupling=coupling, seed=3)
        self.register_buffer("mean", torch.tensor(shift))

    def config(self) -> dict:
        return dict(self.args)

    @classmethod
    def from_config(cls, config: dict) -> TinyModel:
        return cls(**config)

    def sample(self, n: int, c: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return self.flow.sample(n, c, generator=g) + self.mean


KINDS = {"TinyModel": TinyModel}


def _trained(coupling: str = "affine") -> TinyModel:
    torch.manual_seed(0)
    model = TinyModel(2, 3, coupling, [0.5, -1.0])
    with torch.no_grad():  # move weights away from their initial values
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_round_trip_reproduces_samples_exactly(tmp_path: Path, coupling: str) -> None:
    model = _trained(coupling)
    path = save(model, tmp_path / "sub" / "model.safetensors", kinds=KINDS)
    again = load(path, kinds=KINDS)
    assert not again.training
    c = torch.randn(4, 3)
    assert torch.equal(model.sample(50, c, seed=7), again.sample(50, c, seed=7))
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    meta = info(path)
    assert meta["kind"] == "TinyModel" and meta["format_version"] == FORMAT_VERSION
    assert meta["config"]["coupling"] == coupling
    assert meta["innverse_version"] == innverse.__version__


def test_file_is_standard_safetensors(tmp_path: Path) -> None:
    from safetensors import safe_open

    model = _trained()
    path = save(model, tmp_path / "m.safetensors", kinds=KINDS)
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())
        envelope = json.loads(f.metadata()["innverse"])
    assert envelope["config"]["features"] == 2 and len(envelope["sha256"]) == 64


def _rewrite_envelope(path: Path, change) -> None:
    """Edit the JSON envelope in place, keeping the file a valid safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    envelope = json.loads(header["__metadata__"]["innverse"])
    change(envelope)
    header["__metadata__"]["innverse"] = json.dumps(envelope)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    _rewrite_envelope(path, lambda e: e.update(format_version=FORMAT_VERSION + 1, innverse_version="9.0"))
    with pytest.raises(ModelFileError, match=r"newer innverse \(9\.0, model format version 2\).*Upgrade"):
        load(path, kinds=KINDS)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    raw = path.read_bytes()
    for cut in (len(raw) - 1, len(raw) // 2, 20, 5):
        path.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError, match="truncated"):
            load(path, kinds=KINDS)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="integrity check"):
        load(path, kinds=KINDS)


def test_tampered_config_is_refused(tmp_path: Path) -> None:
    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    _rewrite_envelope(path, lambda e: e["config"].update(shift=[0.0, 0.0]))
    with pytest.raises(ModelFileError, match="integrity check"):
        load(path, kinds=KINDS)


def test_trailing_bytes_are_refused(tmp_path: Path) -> None:
    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    path.write_bytes(path.read_bytes() + b"\x00" * 16)
    with pytest.raises(ModelFileError, match="trailing bytes"):
        load(path, kinds=KINDS)


class Boom:
    """Unpickling this would run code; the loader must never get that far."""

    def __reduce__(self):
        return (Path("never-created-by-unpickling").touch, ())


def test_pickle_and_torch_save_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"weights": Boom()}))
    with pytest.raises(ModelFileError, match=r"pickle.*never unpickles"):
        load(pkl, kinds=KINDS)
    pt = tmp_path / "model.pt"
    torch.save({"state": _trained().state_dict(), "evil": Boom()}, pt)
    with pytest.raises(ModelFileError, match=r"torch\.save.*never unpickles"):
        load(pt, kinds=KINDS)
    assert not (tmp_path / "never-created-by-unpickling").exists()


def test_foreign_and_unknown_files_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(3)}, str(bare))
    with pytest.raises(ModelFileError, match="not an innverse model"):
        load(bare)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, not a model at all")
    with pytest.raises(ModelFileError, match="not an innverse model"):
        load(junk)
    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    with pytest.raises(ModelFileError, match=r"kind 'TinyModel'.*kinds="):
        load(path)  # a file cannot name a class to import; the caller must supply it
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.safetensors")


def test_save_rejects_unsavable_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"cannot save a torch\.nn\.modules\.linear\.Linear"):
        save(nn.Linear(2, 2), tmp_path / "x.safetensors")

    class NoJSON(TinyModel):
        def config(self) -> dict:
            return {"f": object()}

    with pytest.raises(TypeError, match="not JSON-serialisable"):
        save(NoJSON(2, 3, "affine", [0.0, 0.0]), tmp_path / "x.safetensors", kinds={"NoJSON": NoJSON})
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_wrong_weights_for_config_is_a_clear_error(tmp_path: Path) -> None:
    class Wider(TinyModel):
        @classmethod
        def from_config(cls, config: dict) -> TinyModel:
            return TinyModel(3, config["context"], config["coupling"], [0.0, 0.0, 0.0])

    path = save(_trained(), tmp_path / "m.safetensors", kinds=KINDS)
    with pytest.raises(ModelFileError, match="do not fit"):
        load(path, kinds={"TinyModel": Wider})
