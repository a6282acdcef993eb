"""Count the labelled data: rows per article and label, skips, in each statement file.

python scripts/data_stats.py [FILE ...] [--markdown docs/snippets/seed-data.md]

Reads the raw JSON Lines (skip rows included, which the training loader drops) and prints a
Markdown table; `--markdown` also writes it as a docs snippet (date, machine, command).
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stance.labels import LABELS  # noqa: E402
from stance.util.snippets import markdown_table, write_snippet  # noqa: E402

DEFAULT_FILES = ("data/withdrawal.jsonl", "data/withdrawal-variants.jsonl")


def count_rows(path: Path) -> dict[str, Counter]:
    """{article_id: Counter of labels, with "skip" for skip rows}."""
    counts: dict[str, Counter] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        label = "skip" if row.get("skip") else row["label"]
        counts.setdefault(str(row.get("article_id", "-")), Counter())[label] += 1
    return counts


def stats_table(files: list[Path]) -> str:
    headers = ["file", "article", *LABELS, "skip", "rows"]
    rows = []
    for path in files:
        counts = count_rows(path)
        total: Counter = Counter()
        for article, c in sorted(counts.items()):
            total += c
            rows.append([f"`{path.as_posix()}`", article, *(c[k] for k in (*LABELS, "skip"))])
            rows[-1].append(sum(c.values()))
        rows.append(
            [f"`{path.as_posix()}`", "**all**", *(total[k] for k in (*LABELS, "skip"))]
            + [sum(total.values())]
        )
    return markdown_table(headers, rows)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("files", nargs="*", default=list(DEFAULT_FILES), help="statement files")
    p.add_argument("--markdown", metavar="PATH", help="also write the table as a docs snippet")
    args = p.parse_args()
    table = stats_table([Path(f) for f in args.files])
    print(table)
    if args.markdown:
        write_snippet(args.markdown, "Labelled rows per article", table)
