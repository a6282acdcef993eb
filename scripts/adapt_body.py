"""Domain-adaptive tuning of a sentence body on the unlabelled news in ../shared (issue #22,
part 4; stance/kinds/domain.py): unsupervised SimCSE on FNC-1 body sentences and Emergent
headlines, saved as a directory a config names as `model.base` (configs/withdrawal-news.yaml).

python scripts/adapt_body.py --output models/mpnet-news [--shared ../shared] [--base mpnet]
    [--sentences 4000] [--epochs 1] [--batch-size 32] [--lr 3e-5] [--freeze-layers 0]
"""

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from stance.data.unlabelled import news_sentences
from stance.errors import StanceError
from stance.kinds.domain import DomainArgs, adapt_body

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--output", type=Path, required=True, help="new body directory")
    p.add_argument("--shared", type=Path, default=Path("../shared"))
    for f in dataclasses.fields(DomainArgs):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ns = vars(p.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    output, shared = ns.pop("output"), ns.pop("shared")
    args = DomainArgs(**ns)
    try:
        adapt_body(args, news_sentences(shared, args.sentences, args.seed), output)
    except StanceError as e:
        sys.exit(f"adapt_body: {e}")
