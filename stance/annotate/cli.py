"""`stance annotate INPUT... --claim TEXT --output labels.jsonl`: arguments and the run.

Heavy imports (torch, Flask, the learner) wait until the command runs, so `stance --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sentences import Sentence
    from .session import AnnotationSession
    from .store import LabelStore

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `stance annotate`."""
    from ..predict.options import INPUTS_HELP

    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=INPUTS_HELP + " (read as stance predict reads them)",
    )
    p.add_argument("--claim", required=True, help="the claim every sentence is labelled against")
    p.add_argument(
        "--output", "-o", required=True, help="labels .jsonl: created, or resumed if it exists"
    )
    p.add_argument("--model", help="run directory whose predictions are the first suggestions")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    p.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    p.add_argument(
        "--random-share",
        type=_share,
        default=0.2,
        help="share of random picks among the least-sure ones (keeps labels representative)",
    )
    p.add_argument(
        "--retrain-every",
        type=_positive_int,
        default=5,
        help="retrain the suggestion head after this many new labels",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random picks")
    p.add_argument(
        "--max-article-bytes",
        type=_positive_int,
        default=None,
        help="larger articles are refused (default: as stance predict)",
    )


def run_cli(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; 0 when every input was used, 1 when any failed (2: raised errors)."""
    from pathlib import Path

    from ..data.segment import normalise
    from ..errors import StanceError
    from ..predict.options import DEFAULT_MAX_ARTICLE_BYTES
    from .sentences import read_sentences
    from .store import LabelStore

    if Path(args.output).suffix.lower() != ".jsonl":
        raise StanceError(f"{args.output}: the labels file must end in .jsonl")
    if args.host in WILDCARD_HOSTS:
        raise StanceError(
            f"--host {args.host!r}: bind to one address (127.0.0.1, or this machine's LAN "
            "address): the server accepts only requests that name it in their Host header"
        )
    claim = normalise(args.claim)
    if not claim:
        raise StanceError("--claim is empty")
    # Everything that can be refused is checked before the slow part (reading and embedding
    # the sentences, loading models): a busy port or a bad --model answers at once.
    _check_port(args.host, args.port)
    if args.model:
        from ..preflight import check_model_dir

        check_model_dir(args.model, claim)
    max_bytes = args.max_article_bytes or DEFAULT_MAX_ARTICLE_BYTES
    sentences, failures = read_sentences(args.inputs, max_bytes)
    if not sentences:
        raise StanceError("no sentence to label: every input failed")
    store = LabelStore(args.output, claim)
    session = _session(args, sentences, store)
    _serve(args, session, len({s.article_id for s in sentences}))
    return 1 if failures else 0


def _check_port(host: str, port: int) -> None:
    """Refuse a port another program holds (0: the server picks a free one later)."""
    import socket

    from ..errors import StanceError

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((host, port))
        except OSError as e:
            raise StanceError(
                f"cannot listen on {host}:{port}: {e.strerror or e} (--port 0 picks a free port)"
            ) from None


def _session(
    args: argparse.Namespace, sentences: list[Sentence], store: LabelStore
) -> AnnotationSession:
    from .learner import LogisticHead, MiniLMEmbedder, ModelScorer
    from .session import AnnotationSession

    initial = None
    if args.model:
        from ..inference.engine import StancePredictor

        # Loaded now, so a bad run directory is reported before the server starts.
        predictor = StancePredictor(args.model, claim=store.claim)
        initial = (f"model {args.model}", ModelScorer(predictor))
    session = AnnotationSession(
        sentences,
        store,
        learner=LogisticHead(MiniLMEmbedder()),
        initial=initial,
        random_share=args.random_share,
        retrain_every=args.retrain_every,
        seed=args.seed,
    )
    session.start()
    return session


def _serve(args: argparse.Namespace, session: AnnotationSession, articles: int) -> None:
    from ..errors import StanceError
    from .server import create_app, make_server

    app = create_app(session)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as e:
        raise StanceError(
            f"cannot listen on {args.host}:{args.port}: {e.strerror or e} (--port 0 picks a "
            "free port)"
        ) from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    total = len(session.sentences)
    left = session.queue.left
    print(
        f"stance annotate: {total} sentences of {articles} articles, {left} to label; "
        f"labels -> {args.output}",
        flush=True,
    )
    print(
        f"open http://{host}:{server.server_port}/  (Ctrl-C stops; every label is saved)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:  # also on SIGTERM (SystemExit): every label is on disk already
        server.server_close()
        logger.info("stopped; %d rows in %s", len(session.store), args.output)
