"""stance.inference.int8: the int8 kernel chosen by what the CPU offers, and the int8 linears."""

import logging

import numpy as np
import pytest
import torch

from stance.errors import StanceError
from stance.inference import int8 as I8
from stance.inference.engine import StancePredictor


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch):
    monkeypatch.delenv("STANCE_INT8_KERNEL", raising=False)
    I8.int8_kernel.cache_clear()
    yield
    I8.int8_kernel.cache_clear()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "int_mm"),
        ({"avx2", "avx_vnni"}, "int_mm"),
        ({"avx2", "amx_int8"}, "int_mm"),
        ({"avx2", "fma"}, "none"),  # AVX2 without VNNI: _int_mm ~50x slower than float32
    ],
)
def test_x86_flags_decide_the_kernel(monkeypatch, flags, expected):
    monkeypatch.setattr(I8, "_cpu_flags", lambda: flags)
    assert I8.int8_kernel() == expected


def test_without_flags_a_timed_probe_decides(monkeypatch):
    monkeypatch.setattr(I8, "_cpu_flags", lambda: None)
    monkeypatch.setattr(I8, "_probe_int_mm", lambda: False)
    assert I8.int8_kernel() == "none"
    I8.int8_kernel.cache_clear()
    monkeypatch.setattr(I8, "_probe_int_mm", lambda: True)
    assert I8.int8_kernel() == "int_mm"


def test_the_choice_is_made_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(I8, "_cpu_flags", lambda: calls.append(1) or {"avx2"})
    assert I8.int8_kernel() == I8.int8_kernel() == "none"
    assert len(calls) == 1


def test_the_environment_forces_a_kernel_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("STANCE_INT8_KERNEL", "fbgemm")
    assert I8.int8_kernel() == "fbgemm"
    I8.int8_kernel.cache_clear()
    monkeypatch.setenv("STANCE_INT8_KERNEL", "vnni")
    with pytest.raises(StanceError, match="STANCE_INT8_KERNEL"):
        I8.int8_kernel()


def test_int8_linear_matches_the_old_formula_and_float32_closely():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96)
    x = torch.randn(2, 5, 64)
    ours = I8.Int8Linear(linear)(x)
    # The formula before the one-pass max: abs().amax(), then a float copy and a multiply.
    rows = x.reshape(-1, 64)
    scale = rows.abs().amax(1, keepdim=True).clamp_min_(1e-12).div_(127)
    q = (rows / scale).round_().to(torch.int8)
    old = torch._int_mm(q, I8.Int8Linear(linear).weight_t).float().mul_(scale)
    old = torch.addcmul(linear.bias.detach(), old, I8.Int8Linear(linear).weight_scale)
    assert torch.equal(ours, old.view(2, 5, 96))
    with torch.no_grad():
        assert (ours - linear(x)).norm() / linear(x).norm() < 0.02


def test_dynamic_int8_linear_is_close_to_float32():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96)
    x = torch.randn(3, 7, 64)
    with torch.no_grad():
        ours, theirs = I8.DynamicInt8Linear(linear)(x), linear(x)
    assert ours.shape == theirs.shape
    assert (ours - theirs).norm() / theirs.norm() < 0.05


@pytest.mark.parametrize("kernel", ["int_mm", "fbgemm", "none"])
def test_every_kernel_runs_and_none_falls_back_to_float32(
    monkeypatch, caplog, tiny_model_dir, kernel
):
    monkeypatch.setenv("STANCE_INT8_KERNEL", kernel)
    texts = ["Troops are going home.", "No sign of a pullback, NATO said on Wednesday."]
    fp32 = StancePredictor(tiny_model_dir).classify(texts)
    with caplog.at_level(logging.WARNING, logger="stance.inference.int8"):
        int8 = StancePredictor(tiny_model_dir, quantize="int8")
    probs = int8.classify(texts)
    if kernel == "none":
        assert int8.precision == "float32" and "running float32" in caplog.text
        np.testing.assert_array_equal(probs, fp32)
    else:
        assert int8.precision in ("int8", "int8-fbgemm")
        np.testing.assert_allclose(probs, fp32, atol=0.05)
