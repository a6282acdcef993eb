"""LP-FT of a sentence body's top layers over cached lower layers (`TopLayers`).

With the lowest `fewshot.freeze_layers` layers frozen (and no dropout in them), their output
for a text never changes, so it is computed once per text (`TopLayers.hidden_states`) and
training runs only the top layers on it. On all-mpnet-base-v2 with 10 of 12 layers frozen this
is why `make train` can afford LP-FT on the 2-core CPU (BENCHMARKS.md, "LP-FT of the top
layers"): the accelerate loop (`stance.training.loop.fit`) runs all 12 layers forward every
step. Used by `train_sentence_model` (`fewshot.cache_frozen: true`, without CUDA) and the CV
table's top-layer recipes (stance.evaluation.cvtop), so both train the same way. What differs
from the accelerate loop: no dropout in the frozen layers, MPNet's shared relative position
bias stays frozen, rows of equal length batched together (no padding), CPU float32 only.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..config import RunConfig
from ..labels import LABELS


def _run_layer(encoder, layer, h: torch.Tensor) -> torch.Tensor:
    """One encoder layer on unpadded states (every row the same length: no mask needed)."""
    if hasattr(encoder, "compute_position_bias"):  # MPNet: relative position bias per layer
        out = layer(h, None, encoder.compute_position_bias(h))
    else:  # BERT (the tiny test body)
        out = layer(h, None)
    return out[0] if isinstance(out, tuple) else out


class TopLayers(torch.nn.Module):
    """A sentence-transformer body whose lowest `frozen` encoder layers are run once per text.

    `states` holds each text's hidden states after the frozen layers (its real tokens only);
    `embed` runs the top layers on them, rows of equal length together (so without padding),
    and mean-pools and L2-normalises as the body does: with the top layers untouched it gives
    the body's own embeddings. `encode` has sentence-transformers' signature, so
    `stance.fewshot` (probe, context features, predict_proba) drives it as a body.
    """

    def __init__(self, body, frozen: int, states: dict[str, torch.Tensor]):
        super().__init__()
        encoder = body[0].auto_model.encoder
        # Not a submodule: its shared parts (MPNet's relative position bias, the lower layers)
        # stay as the cached states saw them; only `layers` train.
        self._encoder = (encoder,)
        self.layers = torch.nn.ModuleList(encoder.layer[frozen:])
        self.states = states

    @staticmethod
    def hidden_states(body, frozen: int, texts: list[str]) -> dict[str, torch.Tensor]:
        """Each text's states after the lowest `frozen` layers (inference, body's max length)."""
        word = body[0]
        order = sorted(set(texts) - {""}, key=len)
        out: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for i in tqdm(range(0, len(order), 32), desc=f"states after layer {frozen}"):
                batch = order[i : i + 32]
                enc = word.tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=body.max_seq_length,
                    return_tensors="pt",
                )
                hs = word.auto_model(
                    input_ids=enc["input_ids"],
                    attention_mask=enc["attention_mask"],
                    output_hidden_states=True,
                ).hidden_states[frozen]
                for j, t in enumerate(batch):
                    out[t] = hs[j, : int(enc["attention_mask"][j].sum())].clone()
        return out

    def embed(self, texts: list[str]) -> torch.Tensor:
        by_len: dict[int, list[int]] = {}
        for i, t in enumerate(texts):
            by_len.setdefault(len(self.states[t]), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(texts)
        for idx in by_len.values():
            h = torch.stack([self.states[texts[i]] for i in idx])
            for layer in self.layers:
                h = _run_layer(self._encoder[0], layer, h)
            for i, e in zip(idx, h.mean(dim=1), strict=True):
                out[i] = e
        return torch.nn.functional.normalize(torch.stack(out).float(), dim=-1)

    def encode(self, texts: list[str], batch_size: int = 32, **_) -> np.ndarray:
        step = max(batch_size, 256)  # long chunks: more rows of equal length together
        with torch.inference_mode():
            parts = [self.embed(texts[i : i + step]) for i in range(0, len(texts), step)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def length_batches(lengths: list[int], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of rows of (mostly) equal length, as the package's length grouping."""
    order = sorted(rng.permutation(len(lengths)).tolist(), key=lambda i: lengths[i])
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def top_lpft(cfg: RunConfig, model, ds) -> None:
    """LP-FT of the top layers and head (stance.train's loss, optimiser and schedule)."""
    from ..training.loop import weighted_loss
    from ..training.setup import class_weights, make_optimizer

    t = cfg.train
    texts, labels = list(ds["text"]), torch.tensor(ds["label"])
    weights = torch.tensor(ds["weight"], dtype=torch.float32)
    cls_weight = (
        class_weights(labels.tolist(), weights.tolist())
        if t.class_weights
        else torch.ones(len(LABELS))
    )
    lengths = [len(model.body.states[x]) for x in texts]
    rng = np.random.default_rng(t.seed)
    steps = int(np.ceil(len(texts) / t.batch_size)) * int(np.ceil(t.epochs))
    optimizer, scheduler = make_optimizer(model, t, steps)
    model.train()
    progress = tqdm(total=steps, desc="LP-FT of the top layers", unit="step")
    for _ in range(int(np.ceil(t.epochs))):
        for batch in length_batches(lengths, t.batch_size, rng):
            logits = model.head(model.body.embed([texts[i] for i in batch]))
            loss = weighted_loss(logits, labels[batch], weights[batch], cls_weight)
            loss.backward()
            if t.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    progress.close()
    model.eval()


def lpft_top_adapt(model, cfg: RunConfig, ds):
    """LP-FT of `model`'s top layers and head in place (its probe already fitted), on the
    cached states of its `fewshot.freeze_layers` lower layers. Returns a view of the same
    weights whose body runs the top layers on those states (features equal to the model's own
    to ~1e-7), so the caller can re-fit the head without running the whole body again."""
    f = cfg.fewshot
    texts = sorted({*ds["text"], *ds["prev_text"], *ds["next_text"]} - {""})
    states = TopLayers.hidden_states(model.body, f.freeze_layers, texts)
    tuned = type(model)(TopLayers(model.body, f.freeze_layers, states), model.config)
    tuned.head = model.head  # one head: trained here, kept by `model`
    top_lpft(cfg, tuned, ds)
    return tuned
