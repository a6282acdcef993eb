"""The results page's headline table: the Emergent cross-encoders on the official test split,
and their claim check on the seed sentences, written as one docs snippet.

    python scripts/headline_results.py [RUN_DIR ...] [--test data/emergent/test.jsonl] \\
        [--check-data data/withdrawal.jsonl] [--markdown docs/snippets/headline-emergent.md]

Each RUN_DIR (default: models/emergent models/emergent-mpnet) is scored on --test as
`stance evaluate` scores it, then on --check-data (the seed sentences) with `--claim-check`
of the claim negated and reversed. A run directory that does not exist is skipped with a
warning and named in the snippet; when none exists nothing is written (exit 1). Needs
`make emergent` (the Emergent corpus and models/emergent) and `configs/emergent-mpnet.yaml`
trained; about 20 minutes a model on a 2-core CPU. The work is stance.evaluation.headline's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stance.errors import StanceError  # noqa: E402
from stance.evaluation.headline import (  # noqa: E402
    CHECK_DATA,
    DEFAULT_MODELS,
    DEFAULT_SNIPPET,
    DEFAULT_TEST,
    write_headline,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), metavar="RUN_DIR")
    p.add_argument("--test", default=DEFAULT_TEST, help=f"test file (default: {DEFAULT_TEST})")
    p.add_argument(
        "--check-data",
        default=CHECK_DATA,
        help=f"the claim check's statements, one claim (default: {CHECK_DATA})",
    )
    p.add_argument(
        "--markdown", default=DEFAULT_SNIPPET, help=f"snippet to write (default: {DEFAULT_SNIPPET})"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        body = write_headline(args.markdown, args.models, args.test, args.check_data)
    except StanceError as e:
        logging.getLogger("stance").error("%s", e)
        return 2
    if body is None:
        return 1
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
