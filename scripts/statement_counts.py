"""Print the datasheet count tables of a statement file (labels, and topics by label).

python scripts/statement_counts.py data/withdrawal-written.jsonl

The counts in data/README.md come from this script, so they are never typed by hand.
Rows are read with stance.data.statements.read_statements (the loader the configs use); the `topic`
column, which the loader does not keep, is read from the raw lines.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stance.data.statements import read_statements  # noqa: E402
from stance.labels import LABELS  # noqa: E402


def topic_label_counts(path: Path) -> Counter[tuple[str, str]]:
    """(topic, label) -> rows, over the non-skip rows; a row without a topic counts as '-'."""
    counts: Counter[tuple[str, str]] = Counter()
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if not row.get("skip"):
                    counts[(row.get("topic", "-"), row["label"])] += 1
    return counts


def markdown(path: Path) -> str:
    statements = read_statements(path)
    labels = Counter(r["label"] for r in statements.rows)
    head = "| " + " | ".join(LABELS) + " | labelled | skip |"
    lines = [head, "|" + " ---: |" * (len(LABELS) + 2)]
    cells = [str(labels[name]) for name in LABELS]
    lines.append(f"| {' | '.join(cells)} | {len(statements.rows)} | {statements.skipped} |")
    by_topic = topic_label_counts(path)
    topics = sorted({t for t, _ in by_topic}, key=lambda t: -sum(by_topic[(t, x)] for x in LABELS))
    lines += ["", "| topic | " + " | ".join(LABELS) + " | total |", "| --- |" + " ---: |" * 4]
    for topic in topics:
        row = [by_topic[(topic, name)] for name in LABELS]
        lines.append(f"| {topic} | {' | '.join(map(str, row))} | {sum(row)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("path", type=Path, help="a statement file (JSON Lines)")
    print(markdown(p.parse_args().path))
