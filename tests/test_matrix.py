"""Every model kind through every user path, on batches with and without padding.

Kinds: the cross-encoder (pairs) and the few-shot sentence kind, both tiny. Paths: `stance
predict` on .txt, .html, .jsonl and stdin; `stance evaluate`; `stance cv`; `stance annotate`'s
suggestions (ModelScorer); the Python API; `transformers.pipeline` (cross-encoder: the
sentence kind is no transformers model). Batches: one sentence, identical sentences, sentences
of one token length, a sentence over max_length, nothing left after the relevance filter.
Precisions: float32 and int8. Devices: the CPU, and `meta` standing in for an accelerator
(the networks' forward on meta tensors; int8 there is refused, as on any non-CPU device).
The few-shot kind crashed on every unpadded batch before the forward contract
(stance.inference.kernels) covered it, and no test sent it through one.
"""

from __future__ import annotations

import copy
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stance import cli
from stance.errors import StanceError
from stance.inference.engine import FAST_NETS, StancePredictor
from stance.inference.kernels import TransformersForward
from stance.labels import LABELS
from stance.predict.outputs import EXIT_NOTHING_READ, EXIT_PARTIAL

CLAIM = "Russia is withdrawing its troops from near Ukraine's borders."
LONG = " ".join(["The troops returned to their bases after the drills near the border."] * 30)
# Article texts, each a batch shape the engine must survive.
BATCHES = {
    "one sentence": "Russia says its troops are going home.",
    "identical sentences": " ".join(["Russia says its troops are going home."] * 5),
    "same token length": "Troops troops troops. Border border border. Drills drills drills.",
    "over max_length": LONG,
    "nothing on claim": "Football scores were announced. The weather in Paris was sunny.",
}
PRECISIONS = ("none", "int8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Run directories of both kinds: the tiny cross-encoder and a trained tiny few-shot."""
    sentence = tmp_path_factory.mktemp("matrix") / "sentence"
    config = ROOT / "configs" / "tiny-fewshot.yaml"
    argv = ["train", "--config", str(config), f"data.train=[{{path: {DATA}}}]"]
    assert cli.main([*argv, f"output_dir={sentence}"]) == 0
    return {"pairs": tiny_model_dir, "sentence": sentence}


@pytest.fixture(scope="module")
def predictors(runs) -> dict[tuple[str, str], StancePredictor]:
    return {(k, q): StancePredictor(runs[k], quantize=q) for k in runs for q in PRECISIONS}


def predict(model: Path, *args: object) -> int:
    return cli.main(["predict", "--model", str(model), "--device", "cpu", *map(str, args)])


def rows_of(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if "label" in r]


def check_rows(rows: list[dict], sentences: int) -> None:
    assert len(rows) == sentences
    for r in rows:
        assert r["label"] in LABELS
        assert sum(r[f"p_{x}"] for x in LABELS) == pytest.approx(1, abs=1e-4)


def sentences_in(text: str) -> int:
    from stance.data.segment import split_sentences

    return len(split_sentences(text))


@pytest.mark.parametrize("quantize", PRECISIONS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_predict_txt_html_jsonl_and_stdin(runs, kind, batch, quantize, tmp_path, monkeypatch):
    text = BATCHES[batch]
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    page = (
        f"<html><head><title>t</title></head><body><article><p>{text}</p></article></body></html>"
    )
    (tmp_path / "b.html").write_text(page, encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "c", "text": text}) + "\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode()), "utf-8"))
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    inputs = [tmp_path / "a.txt", tmp_path / "c.jsonl", "-"]
    args = ["--quantize", quantize, "--output", out, "--summary", summary]
    assert predict(runs[kind], *inputs, *args) == 0
    check_rows(rows_of(out), 3 * sentences_in(text))
    assert len(json.loads(summary.read_text())["articles"]) == 3
    html_out = tmp_path / "html.jsonl"
    assert (
        predict(runs[kind], tmp_path / "b.html", "--quantize", quantize, "--output", html_out) == 0
    )
    assert rows_of(html_out)  # the page's text, however the extractor cuts it


@pytest.mark.parametrize("quantize", PRECISIONS)
@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_evaluate_every_batch_shape(runs, kind, quantize, tmp_path, capsys):
    from stance.data.segment import split_sentences

    for name, text in BATCHES.items():
        data = tmp_path / f"{name.replace(' ', '-')}.jsonl"
        rows = [
            {"id": f"r{i}", "text": s, "label": LABELS[i % 3]}
            for i, s in enumerate(split_sentences(text))
        ]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        argv = ["evaluate", "--model", str(runs[kind]), "--data", str(data)]
        assert cli.main([*argv, "--quantize", quantize]) == 0, name
        assert "macro" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_python_api_and_annotate_suggestions(predictors, kind, precision, batch):
    from stance.annotate.learner import ModelScorer

    predictor = predictors[kind, precision]
    preds = predictor.predict([BATCHES[batch]])
    assert len(preds) == sentences_in(BATCHES[batch])
    assert {p.label for p in preds} <= set(LABELS)
    bucket, predictor.encoder.bucket = predictor.encoder.bucket, 1  # unpadded batches too
    try:
        unbucketed = predictor.predict([BATCHES[batch]])
    finally:
        predictor.encoder.bucket = bucket
    assert [p.label for p in unbucketed] == [p.label for p in preds]
    probs = ModelScorer(predictor).predict_proba([p.text for p in preds])  # annotate's suggestions
    assert probs.shape == (len(preds), len(LABELS))


@pytest.mark.parametrize("batch", BATCHES)
def test_transformers_pipeline_reads_the_cross_encoder(runs, predictors, batch):
    from transformers import pipeline

    from stance.data.segment import split_sentences

    pipe = pipeline("text-classification", model=str(runs["pairs"]), device="cpu")
    sentences = split_sentences(BATCHES[batch])
    out = pipe([{"text": CLAIM, "text_pair": s} for s in sentences], truncation=True)
    ours = predictors["pairs", "none"].classify(sentences)
    assert [o["label"] for o in out] == [LABELS[i] for i in ours.argmax(-1)]


@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_cv_with_one_sentence_and_identical_sentence_articles(kind, tmp_path, capsys):
    rows = []
    for a, text in enumerate(BATCHES.values()):
        for i, sentence in enumerate(text.split(". ")[:6]):
            label = LABELS[(a + i) % 3]
            rows.append({"id": f"{a}-{i}", "article_id": f"a{a}", "sentence_index": i,
                         "text": sentence, "label": label})  # fmt: skip
    data = tmp_path / "cv.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = ROOT / "configs" / ("tiny-fewshot.yaml" if kind == "sentence" else "tiny.yaml")
    argv = ["cv", "--config", str(config), f"data.train=[{{path: {data}}}]", "train.epochs=1"]
    assert cli.main([*argv, "--seeds", "1"]) == 0
    assert "pooled" in capsys.readouterr().out.lower()


def meta_batches(predictor: StancePredictor) -> list[dict[str, torch.Tensor]]:
    """Every batch shape above as the engine collates it (mask left out where unpadded), with
    the predictor's length buckets and without (buckets of 8 pad most batches)."""
    batches = []
    encoder = copy.copy(predictor.encoder)
    for text in BATCHES.values():
        sentences = predictor.predict([text])
        for encoder.bucket in sorted({1, predictor.encoder.bucket}):
            window = encoder.encode_window(predictor._prepare([p.text for p in sentences]))
            batches += [batch for _, batch in encoder.batches(window, predictor.batch_size)]
    assert any("attention_mask" not in b for b in batches)  # the unpadded case is covered
    assert any("attention_mask" in b for b in batches)
    return batches


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_forward_contract_on_meta(predictors, kind, dtype):
    """The networks the engine runs, on `meta` standing in for a device, in its GPU dtype
    too: logits (B, 3) with or without a mask. The fast forwards (what the engine runs on an
    accelerator) take every batch; the transformers reference only unmasked ones (pairs),
    since transformers reads a mask back to the host (`mask.all()`), which meta cannot do."""
    predictor = predictors[kind, "none"]
    model = copy.deepcopy(predictor.model).to("meta", dtype)
    fast = [k(model) for k in FAST_NETS if k.supports(model)]
    assert len(fast) == 1  # both kinds have a fast forward to check
    for net in [*fast, TransformersForward(model)]:
        for batch in meta_batches(predictor):
            reference = isinstance(net, TransformersForward)
            if reference and ("attention_mask" in batch or kind == "sentence"):
                continue  # a mask (the sentence body always gets one) is read back
            with torch.inference_mode():
                logits = net(**{k: v.to("meta") for k, v in batch.items()})
            assert logits.device.type == "meta"
            assert tuple(logits.shape) == (batch["input_ids"].shape[0], len(LABELS))


@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_forward_contract_no_mask_means_no_padding(predictors, kind):
    """On the CPU: leaving the mask out gives the logits of an all-ones mask, for every
    network either kind runs (reference, fast, int8)."""
    for precision in PRECISIONS:
        predictor = predictors[kind, precision]
        encoder = copy.copy(predictor.encoder)
        encoder.bucket = 1  # no rounding up, so no padding at all
        window = encoder.encode_window(predictor._prepare(["One sentence."] * 3))
        batch = encoder.batch(window, np.arange(len(window)))
        assert "attention_mask" not in batch
        masked = {**batch, "attention_mask": torch.ones_like(batch["input_ids"])}
        for net in (predictor.net, TransformersForward(predictor.model)):
            with torch.inference_mode():
                torch.testing.assert_close(net(**batch), net(**masked))


def test_int8_on_a_non_cpu_device_is_refused_with_the_reason(runs):
    with pytest.raises(StanceError, match="--device cpu"):
        StancePredictor(runs["sentence"], quantize="int8", device="meta")


SEED_SENTENCES = [
    json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()[:20]
]
ARTICLE_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    st.lists(st.sampled_from(SEED_SENTENCES), max_size=6).map(" ".join),
    st.sampled_from(list(BATCHES.values())),
)


@pytest.fixture(scope="module")
def by_batch_size(runs) -> dict[tuple[str, int], StancePredictor]:
    return {(k, b): StancePredictor(runs[k], batch_size=b) for k in runs for b in (1, 64)}


def by_sentence(results) -> dict[tuple[str, int], np.ndarray]:
    return {
        (p.article_id, p.sentence_index): np.array([p.probs[x] for x in LABELS]) for p in results
    }


def assert_same_answers(a: dict, b: dict) -> None:
    """The same sentences, probabilities equal to float32 noise, the same labels except where
    the top two are tied within that noise."""
    assert a.keys() == b.keys()
    for key, p in a.items():
        np.testing.assert_allclose(p, b[key], atol=1e-4)
        top = np.sort(p)[-2:]
        if top[1] - top[0] > 1e-3:
            assert p.argmax() == b[key].argmax(), key


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(texts=st.lists(ARTICLE_TEXT, min_size=1, max_size=4))
@pytest.mark.parametrize("kind", ["pairs", "sentence"])
def test_predict_never_raises_and_labels_ignore_batch_size_and_order(
    runs, by_batch_size, kind, texts, tmp_path
):
    articles = [{"id": f"a{i}", "text": t} for i, t in enumerate(texts)]
    data = tmp_path / "articles.jsonl"
    data.write_text("".join(json.dumps(a) + "\n" for a in articles), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.unlink(missing_ok=True)
    rc = predict(runs[kind], data, "--output", out, "--no-relevance")
    # 1: an input was refused (an empty article), 3: every input was; reported, not raised.
    assert rc in (0, EXIT_PARTIAL, EXIT_NOTHING_READ)
    assert out.is_file() == (rc != EXIT_NOTHING_READ)
    big, small = by_batch_size[kind, 64], by_batch_size[kind, 1]
    first = by_sentence(big.predict(articles))
    assert_same_answers(first, by_sentence(small.predict(articles)))
    assert_same_answers(first, by_sentence(big.predict(articles[::-1])))
