"""Complaint classifier on the labelled development set: quality figures and speed.

Run from the project root::

    .venv/bin/python bench/classify_dev.py [--data PATH]

It prints precision, recall and F1 of ``complaint``; per-topic precision, recall and F1
counted on posts; the share of posts whose topic set matches exactly; every
misclassified post (text, expected, got); and the time per post, the median of five
runs over the whole set. The data defaults to ``shared/data/complaints-id/dev.jsonl``
next to the repository. Exits 2 when the data file is missing or unreadable, else 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.social.classify import TOPICS, Classification, classify

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/complaints-id/dev.jsonl"
TIMING_RUNS = 5


@dataclass(frozen=True, slots=True)
class Post:
    text: str
    expected: Classification


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    support: int


def load_posts(path: Path) -> list[Post]:
    """The labelled posts of a JSONL file. Raises ``OSError`` or ``ValueError`` if unreadable."""
    posts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            expected = Classification(bool(row["complaint"]), tuple(row["topics"]))
            posts.append(Post(str(row["text"]), expected))
    return posts


def scores(expected: Sequence[bool], got: Sequence[bool]) -> Scores:
    """Precision, recall and F1 of the positive class (0.0 when undefined)."""
    tp = sum(e and g for e, g in zip(expected, got, strict=True))
    precision = tp / sum(got) if any(got) else 0.0
    recall = tp / sum(expected) if any(expected) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, sum(expected))


def seconds_per_post(texts: Sequence[str]) -> float:
    """Median over ``TIMING_RUNS`` runs of the wall time per post."""
    runs = []
    for _ in range(TIMING_RUNS):
        start = time.perf_counter()
        for text in texts:
            classify(text)
        runs.append((time.perf_counter() - start) / len(texts))
    return statistics.median(runs)


def report(posts: Sequence[Post]) -> None:
    """Print every figure for ``posts``."""
    got = [classify(post.text) for post in posts]
    complaint = scores([p.expected.complaint for p in posts], [g.complaint for g in got])
    print(f"posts: {len(posts)}  complaints: {complaint.support}")
    print(_line("complaint", complaint))
    for topic in TOPICS:
        expected = [topic in p.expected.topics for p in posts]
        print(_line(f"  {topic}", scores(expected, [topic in g.topics for g in got])))
    exact = sum(p.expected == g for p, g in zip(posts, got, strict=True))
    print(f"exact topic-set match: {exact}/{len(posts)} = {exact / len(posts):.3f}")
    wrong = [(p, g) for p, g in zip(posts, got, strict=True) if p.expected != g]
    print(f"\nmisclassified ({len(wrong)}):")
    for post, verdict in wrong:
        kind = "complaint" if post.expected.complaint != verdict.complaint else "topics"
        print(f"- [{kind}] {post.text}")
        print(f"    expected: {_verdict(post.expected)}  got: {_verdict(verdict)}")
    per_post = seconds_per_post([p.text for p in posts])
    print(f"\ntime per post: {per_post * 1e6:.1f} us (median of {TIMING_RUNS} runs)")


def _line(name: str, s: Scores) -> str:
    return f"{name:<10} P={s.precision:.3f} R={s.recall:.3f} F1={s.f1:.3f} (n={s.support})"


def _verdict(c: Classification) -> str:
    return f"{c.complaint} {list(c.topics)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled JSONL file")
    args = parser.parse_args(argv)
    try:
        posts = load_posts(args.data)
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot read the labelled posts at {args.data}: {exc}", file=sys.stderr)
        return 2
    if not posts:
        print(f"no labelled posts in {args.data}", file=sys.stderr)
        return 2
    report(posts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
