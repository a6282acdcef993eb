"""Checks that answer before anything slow (torch, a model, reading every input) runs:
a typo or a missing folder should not take seconds to report."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import StanceError

logger = logging.getLogger("stance")

# What `stance import` reads and where it comes from (named when the folder is missing).
CORPUS_SOURCES = {
    "emergent": "the Emergent corpus (Ferreira & Vlachos, NAACL 2016): "
    "url-versions-2015-06-14-clean-train.csv and ...-clean-test.csv, from "
    "https://github.com/willferreira/mscproject (folder data/emergent)",
    "fnc1": "the FNC-1 corpus (Fake News Challenge stage 1): train_stances.csv, "
    "train_bodies.csv (and competition_test_*.csv), from "
    "https://github.com/FakeNewsChallenge/fnc-1",
}


def check_corpus_dir(src: str, corpus: str) -> None:
    """`stance import`'s folder: when missing, say what it should hold and where it is from."""
    if not Path(src).is_dir():
        raise StanceError(
            f"{src}: no such folder. It should hold {CORPUS_SOURCES[corpus]}. "
            "../shared is a data folder some checkouts have beside the repository; it is not "
            "part of it: download the files, then pass their folder (for `make emergent`: "
            "make emergent SHARED=DIR, with the files in DIR/data/emergent)"
        )


def check_model_dir(path: str, claim: str | None = None) -> None:
    """Model directory errors (missing, unfinished, pickle-only) and a claim a few-shot model
    cannot judge, before torch loads: a typo should not take seconds to report."""
    from .kinds.registry import get_kind
    from .labels import claim_key
    from .rundir.files import load_run

    run = load_run(path)
    other_claim = claim is not None and claim_key(claim) != claim_key(run.saved_claim or "")
    if not get_kind(run.kind).pairs and other_claim:
        raise StanceError(
            f"{path} is a few-shot model of one claim ({run.saved_claim!r}); it cannot "
            f"judge {claim!r}. Train one for that claim, or use a cross-encoder model."
        )


def nothing_readable(inputs: list[str]) -> bool:
    """True (each failure logged) when every input is a path that does not exist: answered
    before the model loads. Other bad inputs are found, and skipped, as the run reads them."""
    from .predict.inputs import iter_inputs
    from .predict.options import STDIN

    if any(name == STDIN or Path(name).exists() for name in inputs):
        return False
    for failure in iter_inputs(inputs):
        logger.error("%s", getattr(failure, "error", failure))
    logger.error("nothing could be read: no output written")
    return True
