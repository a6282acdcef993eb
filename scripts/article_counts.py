"""Print the per-article label counts of a statement file as the datasheet's Markdown table.

python scripts/article_counts.py data/withdrawal-articles.jsonl [--files data/articles]

One row per article (in file order): supports, doubts, neutral, labelled, skip and all rows,
the issue's article score (share of supports minus share of doubts among labelled rows) and
the `stance_score` that `stance predict` reports ((supports - doubts) / (supports + doubts)).
The file is validated by `stance.data.read_statements` first, so a bad row stops it.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stance.data import read_statements  # noqa: E402
from stance.labels import LABELS  # noqa: E402
from stance.summary import stance_score  # noqa: E402

COLUMNS = (*LABELS, "labelled", "skip", "rows")


def article_counts(path: Path) -> dict[str, Counter]:
    """Counts per article id, in the order articles first appear in the file."""
    read_statements(path)  # every row valid, or an InputError naming file and line
    counts: dict[str, Counter] = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        c = counts.setdefault(str(row.get("article_id", "")), Counter())
        c["rows"] += 1
        c["skip" if row.get("skip") else row["label"]] += 1
        c["labelled"] += 0 if row.get("skip") else 1
    return counts


def share_score(c: Counter) -> float:
    return (c["supports"] - c["doubts"]) / c["labelled"] if c["labelled"] else 0.0


def markdown(counts: dict[str, Counter], files: Path | None) -> str:
    head = ["article", *(["file"] if files else []), *COLUMNS, "share score", "stance_score"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * len(head)) + " |"]
    total: Counter = Counter()
    for article, c in counts.items():
        total.update(c)
        lines.append(_row(article, c, files))
    lines.append(_row("**total**", total, files, bold=True))
    return "\n".join(lines)


def _row(article: str, c: Counter, files: Path | None, bold: bool = False) -> str:
    def fmt(v: object) -> str:
        return f"**{v}**" if bold else str(v)

    where = [f"`{files / article}.txt`" if not bold else ""] if files else []
    score = stance_score(dict(c))
    cells = [
        article,
        *where,
        *(fmt(c[k]) for k in COLUMNS),
        fmt(f"{share_score(c):+.2f}"),
        fmt("-" if score is None else f"{score:+.2f}"),
    ]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("statements", type=Path, help="a statement file with article_id on its rows")
    p.add_argument("--files", type=Path, help="folder of the articles, to name each file")
    args = p.parse_args()
    print(markdown(article_counts(args.statements), args.files))
