"""Agreement between the committed labels and the blind second labelling pass.

python scripts/label_agreement.py [--statements data/withdrawal-written.jsonl
    data/labels-pass2/statements.jsonl] [--articles data/withdrawal-articles.jsonl
    data/labels-pass2/articles.jsonl] [--passages data/withdrawal-targeted.jsonl
    data/labels-pass2/targeted.jsonl]

Prints, per file and over both files, raw agreement and Cohen's kappa; for the articles both
with `skip` as a fourth category and on the rows both passes labelled. Then the confusion of
the disagreements (committed -> pass 2) and the disagreeing ids. The datasheet's agreement
figures come from this script, so they are never typed by hand.

python scripts/label_agreement.py --changes OLD NEW
    counts the rows whose label differs between two versions of one file, by the rule their
    note names (e.g. OLD from `git show <commit>:data/withdrawal-articles.jsonl`).
"""

import argparse
import json
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = "skip"


def committed_labels(path: Path) -> dict[str, str]:
    """id -> label of a committed statement file; skip rows read as 'skip'."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out[row["id"]] = SKIP if row.get("skip") else row["label"]
    return out


def pass2_labels(path: Path) -> dict[str, str]:
    """id -> label of a second-pass file (fields id, label, unsure, why)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {r["id"]: r["label"] for r in rows}


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters over the same items: (p_o - p_e) / (1 - p_e)."""
    if len(a) != len(b) or not a:
        raise ValueError("two equally long, non-empty label lists are needed")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca.keys() | cb.keys()) / (n * n)
    # Both raters always using one and the same category: agreement is total, not chance.
    return 1.0 if expected == 1.0 else (observed - expected) / (1 - expected)


def pairs(first: dict[str, str], second: dict[str, str], both_labelled: bool) -> list[tuple]:
    """(id, committed, pass 2) in committed order; every committed id must be in pass 2."""
    missing = [i for i in first if i not in second]
    if missing:
        raise KeyError(f"pass 2 lacks {len(missing)} ids, e.g. {missing[:3]}")
    out = [(i, first[i], second[i]) for i in first]
    return [p for p in out if SKIP not in p[1:]] if both_labelled else out


def report(name: str, rows: list[tuple]) -> str:
    a, b = [r[1] for r in rows], [r[2] for r in rows]
    agree = sum(x == y for x, y in zip(a, b, strict=True))
    kappa = cohen_kappa(a, b)
    return f"{name}: {agree}/{len(rows)} agree ({agree / len(rows):.1%}), kappa {kappa:.3f}"


def disagreements(rows: list[tuple]) -> list[str]:
    off = [r for r in rows if r[1] != r[2]]
    lines = ["confusion of disagreements (committed -> pass 2):"]
    for (x, y), n in sorted(Counter((r[1], r[2]) for r in off).items()):
        lines.append(f"  {x} -> {y}: {n}")
    lines.append("disagreeing ids: " + (", ".join(r[0] for r in off) or "none"))
    return lines


def changes(old: Path, new: Path) -> str:
    """Rows whose label differs between two versions of a file, counted by the rule in the note."""
    before, after = committed_labels(old), committed_labels(new)
    notes = {
        json.loads(line)["id"]: json.loads(line).get("note", "")
        for line in new.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    changed = [i for i in after if before.get(i) != after[i]]
    by_rule: Counter[str] = Counter()
    for i in changed:
        rule = re.search(r"rule (\d+)", notes[i])
        by_rule[f"rule {rule.group(1)}" if rule else "no numbered rule"] += 1
    lines = [f"{new.name}: {len(changed)} labels changed"]
    lines += [f"  {k}: {n}" for k, n in sorted(by_rule.items())]
    lines += [f"  {i}: {before.get(i)} -> {after[i]}" for i in changed]
    return "\n".join(lines)


def main(
    statements: tuple[Path, Path],
    articles: tuple[Path, Path],
    passages: tuple[Path, Path] | None = None,
) -> str:
    st = pairs(committed_labels(statements[0]), pass2_labels(statements[1]), False)
    ar_all = pairs(committed_labels(articles[0]), pass2_labels(articles[1]), False)
    ar_lab = pairs(committed_labels(articles[0]), pass2_labels(articles[1]), True)
    lines = [
        report("statements", st),
        report("articles, skip as a fourth category", ar_all),
        report("articles, rows both passes labelled", ar_lab),
        report("both files, skip as a category", st + ar_all),
        report("both files, rows both labelled", st + ar_lab),
    ]
    both = st + ar_all
    if passages is not None:  # the targeted passages (no skip rows): a file of their own
        pa = pairs(committed_labels(passages[0]), pass2_labels(passages[1]), False)
        lines += [report("targeted passages", pa), report("all three files", both + pa)]
        both += pa
    return "\n".join([*lines, *disagreements(both)])


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--statements",
        nargs=2,
        type=Path,
        default=(
            ROOT / "data/withdrawal-written.jsonl",
            ROOT / "data/labels-pass2/statements.jsonl",
        ),
    )
    p.add_argument(
        "--articles",
        nargs=2,
        type=Path,
        default=(
            ROOT / "data/withdrawal-articles.jsonl",
            ROOT / "data/labels-pass2/articles.jsonl",
        ),
    )
    p.add_argument(
        "--passages",
        nargs=2,
        type=Path,
        default=(
            ROOT / "data/withdrawal-targeted.jsonl",
            ROOT / "data/labels-pass2/targeted.jsonl",
        ),
    )
    p.add_argument(
        "--changes",
        nargs=2,
        type=Path,
        metavar=("OLD", "NEW"),
        help="instead: the label changes between two versions of a file, by rule",
    )
    args = p.parse_args()
    if args.changes:
        print(changes(*args.changes))
    else:
        print(main(tuple(args.statements), tuple(args.articles), tuple(args.passages)))
