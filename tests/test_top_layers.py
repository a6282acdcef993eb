"""LP-FT of the top layers over cached lower layers (stance.kinds.top_layers), on the tiny body."""

import json

import numpy as np
import pytest
import torch
from conftest import DATA, ROOT

from stance.cli import main
from stance.config import load_config
from stance.data.statements import load_statements
from stance.kinds.sentence_model import load_body, predict_proba, train_sentence_model
from stance.kinds.top_layers import TopLayers

CONFIG = ROOT / "configs" / "tiny-fewshot.yaml"
CACHED = ["fewshot.freeze_layers=1", "fewshot.cache_frozen=true", "fewshot.context_weight=0.3"]


def tiny(*overrides: str):
    return load_config(CONFIG, [f"data.train=[{{path: {DATA}}}]", *overrides])


def test_top_layers_reproduce_the_body_embeddings():
    cfg = tiny()
    texts = ["Russia pulls back some units.", "Satellite images show no withdrawal.", "Hi."]
    body = load_body(cfg, texts)
    ref = body.encode(texts, normalize_embeddings=True)
    top = TopLayers(body, 1, TopLayers.hidden_states(body, 1, texts))
    assert sum(p.numel() for p in top.parameters()) > 0
    np.testing.assert_allclose(top.encode(texts), ref, atol=1e-5)


@pytest.fixture(scope="module")
def trained():
    ds = load_statements(DATA)
    frozen = train_sentence_model(tiny("fewshot.adapt=none", "fewshot.context_weight=0.3"), ds)
    torch.manual_seed(0)
    return ds, frozen, train_sentence_model(tiny(*CACHED, "train.lr=1e-2"), ds)


def test_cached_lpft_trains_the_top_layers_only(trained):
    _, frozen, tuned = trained
    before, after = dict(frozen.body.named_parameters()), dict(tuned.body.named_parameters())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("layer.1." in k for k in changed), sorted(changed)[:5]
    assert all(p.device.type == "cpu" and p.requires_grad for p in tuned.parameters())
    assert not tuned.training


def test_the_refitted_head_reads_the_whole_body_as_it_read_the_top_layer_view(trained):
    # The head was re-fitted on the top-layer view's features; the saved model runs the whole
    # body on tokens: both must give the same probabilities.
    ds, _, tuned = trained
    texts = list(ds["text"])
    view = TopLayers(tuned.body, 1, TopLayers.hidden_states(tuned.body, 1, texts))
    with torch.inference_mode():
        ref = torch.softmax(tuned.head(torch.from_numpy(view.encode(texts))), dim=-1).numpy()
    np.testing.assert_allclose(predict_proba(tuned, texts), ref, atol=1e-4)


def test_cached_lpft_through_train_and_predict_on_a_one_sentence_article(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--config", str(CONFIG), f"data.train=[{{path: {DATA}}}]",
                 *CACHED, f"output_dir={run}"]) == 0  # fmt: skip
    assert load_config(run / "config.yaml").fewshot.cache_frozen
    article = tmp_path / "one.txt"
    article.write_text("Russia says its troops are going home.\n", encoding="utf-8")
    out = tmp_path / "p.jsonl"
    assert main(["predict", "--model", str(run), str(article), "--output", str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["label"] in ("supports", "doubts", "neutral")


def test_with_a_gpu_the_accelerate_loop_trains_even_when_asked_to_cache(monkeypatch):
    # GPU first: the cached path is a CPU path (float32); with CUDA the loop (bf16) runs.
    import stance.training.loop as loop
    from stance.kinds import sentence_model

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(loop, "fit", lambda cfg, model, tok, ds: calls.append(len(ds)))
    ds = load_statements(DATA)
    model = sentence_model.train_sentence_model(tiny(*CACHED), ds)
    assert calls == [len(ds)]  # the loop, once, on every row
    frozen = [p for n, p in model.body.named_parameters() if "layer.0." in n]
    assert frozen and all(p.requires_grad for p in frozen)  # unfrozen again after it
