"""Tests for stance.inference.engine's int8 path: Int8Linear arithmetic and what it guarantees."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stance.data.segment import split_sentences
from stance.inference import engine as E
from stance.inference import int8 as Q
from stance.inference import kernels as K
from stance.inference import runtime as R
from stance.predict import run as P

ROOT = Path(__file__).resolve().parents[1]


def _linear(d_in: int = 48, d_out: int = 20, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out)


def test_int8_linear_is_integer_arithmetic_with_row_and_channel_scales() -> None:
    lin = _linear()
    x = torch.randn(2, 5, 48)  # (B, T, in)
    x[1, 3] *= 50  # an outlier token
    q = Q.Int8Linear(lin)
    # Reference: the same quantisation spelled out in int64 and float64.
    w = lin.weight.detach().double()
    w_scale = w.abs().amax(1) / 127
    w_int = torch.round(w / w_scale[:, None]).long()
    rows = x.reshape(-1, 48).double()
    x_scale = rows.abs().amax(1, keepdim=True) / 127
    x_int = torch.round(rows / x_scale).long()
    expected = (x_int @ w_int.T).double() * x_scale * w_scale + lin.bias.detach().double()
    got = q(x)
    assert got.shape == (2, 5, 20) and got.dtype == torch.float32
    torch.testing.assert_close(got.double().reshape(-1, 20), expected, rtol=1e-5, atol=1e-5)


def test_int8_linear_is_close_to_float() -> None:
    lin = _linear(384, 96)
    x = torch.randn(64, 384)
    exact, approx = lin(x).detach(), Q.Int8Linear(lin)(x)
    # 8 bits per operand: about 1% relative error on Gaussian data.
    assert ((approx - exact).norm() / exact.norm()).item() < 0.02


def test_int8_linear_rows_do_not_see_each_other() -> None:
    """Per-row scales: an outlier elsewhere in the batch leaves a row's result bit-identical
    (per-tensor dynamic quantisation would coarsen every row to the outlier's scale)."""
    q = Q.Int8Linear(_linear())
    row = torch.randn(1, 48)
    alone = q(row)
    with_outlier = q(torch.cat([row, 1000 * torch.randn(1, 48)]))[:1]
    assert torch.equal(alone, with_outlier)


def test_quantize_int8_swaps_only_the_chosen_layers() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3)))
    Q.quantize_int8(model, only=lambda name: name != "2.0")
    assert isinstance(model[0], Q.Int8Linear)
    assert type(model[2][0]) is nn.Linear


def test_int8_predictor_answers_do_not_depend_on_batch_mates(tiny_model_dir: Path) -> None:
    q = P.StancePredictor(tiny_model_dir, device="cpu", quantize="int8")
    assert isinstance(q.net, K.FastBertClassifier)
    sentences = split_sentences(
        sorted((ROOT / "seeds").glob("*.txt"))[0].read_text(encoding="utf-8")
    )
    batched = q.classify(sentences)
    one_by_one = np.concatenate([q.classify([s]) for s in sentences[:8]])
    # Different padding changes float sums in attention by ulps, not the answers.
    np.testing.assert_allclose(one_by_one, batched[:8], atol=1e-4)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_transformers_forward_path_quantizes_too(tiny_model_dir: Path, quantize: str) -> None:
    fast = P.StancePredictor(tiny_model_dir, device="cpu")
    slow = P.StancePredictor(tiny_model_dir, device="cpu", fast=False, quantize=quantize)
    assert isinstance(slow.net, K.TransformersForward)
    probe = ["Russia says troops are leaving.", "NATO has seen no sign of that."]
    np.testing.assert_allclose(slow.classify(probe), fast.classify(probe), atol=0.05)


def test_allocator_helpers_use_glibc_on_linux() -> None:
    if platform.libc_ver()[0] == "glibc":
        assert R._LIBC is not None
        assert R._LIBC.mallopt(R._M_MMAP_THRESHOLD, 32 << 20) == 1  # accepted: 32 MB is legal
    R.tune_allocator()  # both must be harmless anywhere
    R.release_memory()


def _stub_nets_on(monkeypatch, device: torch.device) -> list[torch.device]:
    """Stub both networks' forwards: assert every input is on `device`, record it, and
    return CPU logits (meta tensors hold no numbers, so the stub makes some up)."""
    seen: list[torch.device] = []

    def stub(self, **batch: torch.Tensor) -> torch.Tensor:
        for name, tensor in batch.items():
            if tensor is not None:
                assert tensor.device == device, f"{name} on {tensor.device}, net on {device}"
                seen.append(tensor.device)
        return torch.zeros(batch["input_ids"].shape[0], 3)

    monkeypatch.setattr(K.FastBertClassifier, "forward", stub)
    monkeypatch.setattr(K.TransformersForward, "forward", stub)
    return seen


@pytest.mark.parametrize("fast", [True, False])
def test_every_batch_reaches_the_net_on_the_predictors_device(
    tiny_model_dir: Path, monkeypatch, fast: bool
) -> None:
    """Issue #13: batches are collated on the CPU; the load-time probe batch and every
    prediction batch must be moved to the model's device (on CUDA the probe was not, and
    every GPU prediction failed). `meta` stands in for a device that is not the CPU."""
    meta = torch.device("meta")
    seen = _stub_nets_on(monkeypatch, meta)
    predictor = P.StancePredictor(tiny_model_dir, device=meta, fast=fast)
    assert predictor.device == meta
    assert next(predictor.model.parameters()).device == meta
    probs = predictor.classify(["Russia says troops are leaving.", "NATO saw no sign of it."])
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs, 1 / 3)  # softmax of the stub's zeros
    assert seen and set(seen) == {meta}


def test_few_shot_int8_quantises_the_feed_forward_linears_only():
    from stance.inference.kernels import ffn_layer

    assert ffn_layer("model.body.0.model.encoder.layer.3.intermediate.dense")
    assert ffn_layer("model.body.0.model.encoder.layer.3.output.dense")  # mpnet and BERT FFN out
    assert not ffn_layer("model.body.0.model.encoder.layer.3.attention.output.dense")  # BERT
    assert not ffn_layer("model.body.0.model.encoder.layer.3.attention.attn.q")  # mpnet
    assert not ffn_layer("model.head")


def test_tokenising_ahead_on_threads_changes_nothing(tiny_model_dir: Path) -> None:
    """The CUDA path tokenises windows ahead on threads; forced on here, with windows of 3
    so there are several, it must give the inline path's answers in input order."""
    sentences = [f"Sentence {i} says {'troops leave ' * (i % 5)}now." for i in range(17)]
    inline = P.StancePredictor(tiny_model_dir, window=3, batch_size=2)
    assert inline.encoder.threads == 0  # the CPU tokenises in turn
    ahead = P.StancePredictor(tiny_model_dir, window=3, batch_size=2)
    ahead.encoder.threads = 2
    np.testing.assert_allclose(ahead.classify(sentences), inline.classify(sentences), atol=1e-6)
    np.testing.assert_allclose(
        inline.classify(sentences),
        np.concatenate([inline.classify([s]) for s in sentences]),
        atol=1e-5,
    )


def test_collate_pads_flat_and_leaves_out_a_mask_nobody_needs(tiny_model_dir: Path) -> None:
    predictor = P.StancePredictor(tiny_model_dir)
    predictor.encoder.bucket = 4
    batch = predictor.encoder.collate([[5, 6, 7], [8, 9]], [[0, 0, 1], [0, 1]])
    pad = predictor.encoder.pad_id
    # Rows rounded up to 4 with copies of the first row; length rounded up to 4 with padding.
    assert batch["input_ids"].tolist() == [[5, 6, 7, pad], [8, 9, pad, pad]] + [[5, 6, 7, pad]] * 2
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]] + [[1, 1, 1, 0]] * 2
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 0], [0, 1, 0, 0]] + [[0, 0, 1, 0]] * 2
    predictor.encoder.bucket = 1
    full = predictor.encoder.collate([[5, 6], [8, 9]], [[0, 1], [0, 1]])
    assert "attention_mask" not in full  # no padding: the encoders skip masking
    with torch.inference_mode():
        no_mask = predictor.net(**full)
        ones = predictor.net(**full, attention_mask=torch.ones(2, 2, dtype=torch.long))
    torch.testing.assert_close(no_mask, ones)


def _in_context_loop(logits: np.ndarray, neighbours, weight: float, bias: np.ndarray):
    """The per-sentence loop before issue 23, the reference for the vectorised form."""
    out = logits.copy()
    for i, near in enumerate(neighbours):
        near = [j for j in near if j >= 0]
        if near:
            out[i] += weight * (logits[near].mean(0) - bias)
    return out


def test_context_mixing_is_the_loops_arithmetic_bit_for_bit() -> None:
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    n = 500
    logits = rng.normal(size=(n, 3)).astype(np.float32) * 7
    neighbours = [tuple(int(j) for j in rng.integers(-1, n, 2)) for _ in range(n)]
    neighbours[:3] = [(-1, -1), (-1, 4), (5, -1)]
    self = SimpleNamespace(context_weight=0.3, _head_bias=np.float32([0.5, -1.25, 0.1]))
    got = P.StancePredictor._in_context(self, logits, neighbours)
    want = _in_context_loop(logits, neighbours, 0.3, self._head_bias)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(got[0], logits[0]) and not np.array_equal(got[1], logits[1])
    empty = np.zeros((0, 3), np.float32)
    assert P.StancePredictor._in_context(self, empty, []).shape == (0, 3)


def _record_runs(q, monkeypatch) -> dict[str, list[int]]:
    """Rows of each window `q` runs: on its network ("net") or, for int8's near ties, on the
    float32 one ("float32")."""
    runs: dict[str, list[int]] = {"net": [], "float32": []}
    run_window = q._rows_logits

    def spy(window, progress, net=None):
        runs["net" if net is None else "float32"].append(len(window))
        return run_window(window, progress, net)

    monkeypatch.setattr(q, "_rows_logits", spy)
    return runs


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_repeated_sentences_run_once_with_the_same_answers(
    tiny_model_dir: Path, quantize: str, monkeypatch
) -> None:
    q = P.StancePredictor(tiny_model_dir, device="cpu", quantize=quantize)
    sentences = ["Russia says troops are leaving.", "NATO has seen no sign of that."]
    repeated = [sentences[i % 2] for i in range(7)]
    run = _record_runs(q, monkeypatch)["net"]  # rows of each window the network runs
    seen: list[int] = []
    probs = q.classify_detailed(repeated, progress=seen.append)[0]
    assert run == [2] and sum(seen) == 7  # two rows run, all seven counted
    expected = q.classify(sentences)[[i % 2 for i in range(7)]]
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_int8_near_ties_are_settled_in_float32(tiny_model_dir: Path, monkeypatch) -> None:
    probe = ["Russia says troops are leaving.", "NATO has seen no sign of that.", "Hi."]
    exact = P.StancePredictor(tiny_model_dir, device="cpu", fast=False).classify(probe)
    q = P.StancePredictor(tiny_model_dir, device="cpu", quantize="int8")
    assert q._float32 is not None
    monkeypatch.setattr(E, "TIE_MARGIN", 0.0)  # no row is a tie: int8 throughout
    int8 = q.classify(probe)
    assert not np.allclose(int8, exact, atol=1e-6, rtol=0)
    monkeypatch.setattr(E, "TIE_MARGIN", 1.0)  # every row is: float32 throughout
    np.testing.assert_allclose(q.classify(probe), exact, atol=1e-5)


def test_int8_of_the_reference_itself_has_no_float32_left(tiny_model_dir: Path) -> None:
    q = P.StancePredictor(tiny_model_dir, device="cpu", quantize="int8", fast=False)
    assert q._float32 is None and isinstance(q.net, K.TransformersForward)
    assert len(q.classify(["One sentence."])) == 1


def test_int8_ties_are_judged_after_context(tiny_model_dir: Path, monkeypatch) -> None:
    """A few-shot model reads its neighbours: a near tie re-runs with them, in float32."""
    q = P.StancePredictor(tiny_model_dir, device="cpu", quantize="int8")
    monkeypatch.setattr(q, "context_weight", 0.5)
    monkeypatch.setattr(q, "_head_bias", np.zeros(3, dtype=np.float32), raising=False)
    items = ["Russia says troops are leaving.", "NATO has seen no sign of that.", "Hi."]
    neighbours = [(-1, 1), (0, 2), (1, -1)]
    reran = _record_runs(q, monkeypatch)["float32"]
    monkeypatch.setattr(E, "TIE_MARGIN", 0.0)
    int8 = q.classify_detailed(items, neighbours=neighbours)[0]
    assert reran == []
    probs = int8.copy()
    probs[1] = [0.4, 0.4, 0.2]  # the middle row is a near tie: it and both neighbours re-run
    logits = np.zeros((3, 3), dtype=np.float32)
    monkeypatch.setattr(E, "TIE_MARGIN", 0.05)
    q._settle_ties(items, logits, probs, neighbours)
    assert reran == [3]
