"""Extract the demo sentiment set from the vaderSentiment 3.3.2 source archive.

Reproduce with:

    pip download --no-deps --no-binary :all: vadersentiment==3.3.2 -d /tmp/vader
    python scripts/make_demo_sentiment.py /tmp/vader/vaderSentiment-3.3.2.tar.gz

The selection is deterministic: same archive, same output bytes.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import random
import tarfile
from pathlib import Path

INNER_ARCHIVE = "additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIE_FILE = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
POSITIVE_MIN = 1.5
NEGATIVE_MAX = -1.5
MIN_CHARS = 20
MAX_CHARS = 200
PER_LABEL = 150
SEED = 2014
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/assay/data/demo/sentiment.jsonl"


def read_movie_snippets(sdist: Path) -> list[tuple[str, float, str]]:
    """(id, mean rating, text) rows of the movie review ground-truth file."""
    with tarfile.open(sdist) as outer:
        inner_member = next(m for m in outer.getmembers() if m.name.endswith(INNER_ARCHIVE))
        inner_bytes = outer.extractfile(inner_member).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        raw = inner.extractfile(MOVIE_FILE).read()  # type: ignore[union-attr]
    rows = []
    for line in raw.decode("utf-8").splitlines():
        snippet_id, rating, text = line.split("\t")
        rows.append((snippet_id, float(rating), clean(text)))
    return rows


def clean(text: str) -> str:
    # The snippets were NLTK-tokenised upstream, which turned double quotes into '', and a few
    # still carry HTML entities (&amp;) from the web pages they came from.
    return html.unescape(text.replace("''", '"')).strip()


def label_of(rating: float) -> str | None:
    if rating >= POSITIVE_MIN:
        return "positive"
    if rating <= NEGATIVE_MAX:
        return "negative"
    return None


def select(rows: list[tuple[str, float, str]]) -> list[dict[str, object]]:
    rng = random.Random(SEED)
    chosen: list[dict[str, object]] = []
    for label in ("positive", "negative"):
        pool = [
            {"id": f"movie-{i}", "text": t, "label": label, "rating": round(r, 4)}
            for i, r, t in rows
            if label_of(r) == label and MIN_CHARS <= len(t) <= MAX_CHARS
        ]
        chosen.extend(rng.sample(pool, PER_LABEL))
    rng.shuffle(chosen)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="vaderSentiment-3.3.2.tar.gz")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    records = select(read_movie_snippets(args.sdist))
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} records to {args.out}")


if __name__ == "__main__":
    main()
