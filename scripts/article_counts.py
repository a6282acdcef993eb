"""Print the per-article label counts of a statement file as the datasheet's Markdown table.

python scripts/article_counts.py data/withdrawal-articles.jsonl [--files data/articles]
    [--predicted out/summary.json] [--ambiguities]

One row per article (in file order): supports, doubts, neutral, labelled, skip and all rows,
the issue's article score (share of supports minus share of doubts among labelled rows) and
the `stance_score` that `stance predict` reports ((supports - doubts) / (supports + doubts)).
The file is validated by `stance.data.statements.read_statements` first, so a bad row stops it.

With --predicted (the summary.json of `stance predict` on the same articles), a second table
sets the gold scores beside the predicted ones (over the sentences the model counted as on
the claim) and prints the Pearson correlation of each score across articles. With
--ambiguities, the rows whose note names an "ambiguity" of the guide, as the datasheet lists them.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stance.data.statements import read_statements  # noqa: E402
from stance.labels import LABELS  # noqa: E402
from stance.predict.summary import stance_score  # noqa: E402

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


def _scores(c: Counter) -> tuple[float, float | None]:
    return share_score(c), stance_score(dict(c))


def compare(counts: dict[str, Counter], summary_path: Path) -> str:
    """Gold against predicted article scores, and their Pearson correlation across articles."""
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    predicted = {a["article_id"]: a for a in summary["articles"]}
    lines = [
        "| article | gold share | predicted share | gold stance_score | predicted stance_score |",
        "| --- | --- | --- | --- | --- |",
    ]
    pairs: list[tuple[float, float, float | None, float | None]] = []
    for article, c in counts.items():
        a = predicted[article]  # a KeyError names an article the summary lacks
        p = Counter(a["counts"])
        p["labelled"] = sum(a["counts"].values())
        pairs.append((*_scores(c), *_scores(p)))
        cells = ["-" if v is None else f"{v:+.2f}" for v in pairs[-1]]
        lines.append(f"| {article} | {cells[0]} | {cells[2]} | {cells[1]} | {cells[3]} |")
    lines.append("")
    for name, gold, pred in (("share", 0, 2), ("stance_score", 1, 3)):
        kept = [(x[gold], x[pred]) for x in pairs if x[gold] is not None and x[pred] is not None]
        r = np.corrcoef(np.array(kept).T)[0, 1] if len(kept) > 2 else float("nan")
        lines.append(f"Pearson r, gold vs predicted {name}: {r:.3f} ({len(kept)} articles)")
    return "\n".join(lines)


def ambiguities(path: Path) -> str:
    """The datasheet's 'Known ambiguities' table: labelled rows whose note names an ambiguity."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8-sig").splitlines() if line]
    noted = [r for r in rows if r.get("note") and not r.get("skip")]
    lines = [f"{len(noted)} labelled rows carry a note.", "", "| id | label | reason |"]
    lines.append("| --- | --- | --- |")
    for r in noted:
        if "ambiguity" in r["note"]:
            lines.append(f"| {r['id']} | {r['label']} | {r['note'].replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("statements", type=Path, help="a statement file with article_id on its rows")
    p.add_argument("--files", type=Path, help="folder of the articles, to name each file")
    p.add_argument("--predicted", type=Path, help="summary.json of `stance predict`")
    p.add_argument("--ambiguities", action="store_true", help="also the ambiguity-note table")
    args = p.parse_args()
    counts = article_counts(args.statements)
    print(markdown(counts, args.files))
    if args.predicted:
        print("\n" + compare(counts, args.predicted))
    if args.ambiguities:
        print("\n" + ambiguities(args.statements))
