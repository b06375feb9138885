"""`python -m bench.novelty`: how well story linking works, and what it costs per item.

Quality: precision and recall of `Linker` on the labelled pairs of `bench.novelty_data`,
built at run time from ../shared/data/sentfin: thresholds were chosen on `train.csv`, the
figures to report are those of `valid.csv`, and a threshold sweep is drawn as a chart.
Without the data, the committed hand-written fixture is used (and the output says so).

Cost, measured in one run so that the ratio holds on a shared machine: the classifier's
time per item (the real model, in this process, batches of `--batch`) against the store's
extra time per item with linking on (`NewsStore.store` with and without a linker, on a
database that already holds `--history` distinct headlines of the last 24 h), interleaved
over `--rounds`. Each measured batch is fresh headlines plus `--copies` of re-titled stored
ones (the rewrite rules of `bench.novelty_data`), as a feed with syndication
looks. The target is linking <= 10 % of the classifier.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.novelty_data import Pair, build_pairs, read_headlines, rewrite
from bench.novelty_eval import Scores, evaluate
from monitor.novelty import Linker, NoveltyPolicy, StoryItem

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "sentfin"
FIXTURE = REPO / "tests" / "fixtures" / "novelty" / "pairs.csv"
RESULTS = Path(__file__).resolve().parent / "results"
THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.novelty", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=SHARED, help="folder with train.csv, valid.csv")
    p.add_argument("--skip-cost", action="store_true", help="quality only (no model needed)")
    p.add_argument("--batch", type=int, default=128, help="items per classify/store batch")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--history", type=int, default=5000, help="items already stored (24 h)")
    p.add_argument(
        "--copies",
        type=float,
        default=0.25,
        help="share of each batch that re-titles a stored item",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("FINMON_BENCH_PG_URL"),
        help="measure the store on this PostgreSQL too: a scratch database, emptied first",
    )
    p.add_argument("--chart", type=Path, default=RESULTS / "novelty-thresholds.png")
    return p.parse_args(argv)


def quality(data: Path, chart: Path | None) -> dict[str, Any]:
    """Precision/recall on the generated pairs (train: tuning, valid: reported)."""
    if not (data / "valid.csv").is_file():
        print(f"no labelled data at {data}: using the hand-written fixture {FIXTURE.name}")
        with FIXTURE.open(newline="", encoding="utf-8") as handle:
            pairs = [
                Pair(r["a"], r["b"], r["same"] == "1", "fixture") for r in csv.DictReader(handle)
            ]
        return {"fixture": _report(evaluate(Linker(), pairs))}
    splits = {
        name: build_pairs(read_headlines([data / f"{name}.csv"])) for name in ("train", "valid")
    }
    out: dict[str, Any] = {}
    for name, pairs in splits.items():
        scores = evaluate(Linker(), pairs)
        out[name] = _report(scores)
        print(
            f"{name}: {len(pairs)} pairs  precision {scores.precision:.4f}  "
            f"recall {scores.recall:.4f}  (fp {scores.fp}, fn {scores.fn})"
        )
        for kind, counts in scores.kinds().items():
            print(f"    {kind:12s} linked {counts['linked']:5d}  apart {counts['apart']:5d}")
    sweep = {j: evaluate(Linker(NoveltyPolicy(jaccard=j)), splits["train"]) for j in THRESHOLDS}
    out["sweep_train"] = {str(j): _report(s) for j, s in sweep.items()}
    if chart is not None:
        _chart(sweep, chart)
        print(f"chart: {chart}")
    return out


def _report(scores: Scores) -> dict[str, Any]:
    return {
        "precision": round(scores.precision, 4),
        "recall": round(scores.recall, 4),
        "tp": scores.tp,
        "fp": scores.fp,
        "fn": scores.fn,
        "tn": scores.tn,
        "by_kind": scores.kinds(),
    }


def _chart(sweep: dict[float, Scores], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    xs = list(sweep)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(xs, [sweep[x].precision for x in xs], marker="o", label="precision")
    ax.plot(xs, [sweep[x].recall for x in xs], marker="o", label="recall")
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1, label="precision target")
    ax.axhline(0.90, color="grey", linestyle="--", linewidth=1, label="recall target")
    ax.axvline(NoveltyPolicy().jaccard, color="black", linewidth=0.8, label="shipped")
    ax.set_xlabel("Jaccard threshold (containment 0.75 kept)")
    ax.set_ylim(0.85, 1.0)
    ax.set_title("Story linking on the SEntFiN train pairs")
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cost(args: argparse.Namespace, headlines: list[str]) -> dict[str, Any]:
    """Per-item seconds: classifier, store without and with linking (interleaved rounds)."""
    from sqlalchemy import text

    from finmon.runtime import load_classifier
    from monitor.db.engine import make_engine, upgrade
    from monitor.db.store import NewsStore
    from monitor.model.interface import ModelInput
    from monitor.settings import load_settings

    settings = load_settings()
    classifier = load_classifier(settings)
    rng = random.Random(16)
    now = datetime.now(UTC)
    distinct = list(dict.fromkeys(headlines))
    rng.shuffle(distinct)
    stored, unseen = distinct[: args.history], distinct[args.history :]
    needed = args.rounds * args.batch
    if len(unseen) < needed:
        raise SystemExit(f"need {args.history + needed} distinct headlines, have {len(distinct)}")
    fresh = iter(unseen)
    urls = {"sqlite": f"sqlite:///{tempfile.mkdtemp(prefix='finmon-novelty-')}/bench.sqlite3"}
    if args.pg_url:
        urls["postgresql"] = args.pg_url
    stores: dict[str, tuple[NewsStore, NewsStore]] = {}
    for name, url in urls.items():
        upgrade(url)
        engine = make_engine(url)
        if name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE news_items, trend_windows CASCADE"))
        plain, linked = (
            NewsStore(engine, settings.windows.sizes),
            NewsStore(engine, settings.windows.sizes, Linker()),
        )
        history = [_item(f"h{i}", text, now, rng) for i, text in enumerate(stored)]
        for offset in range(0, len(history), 500):
            linked.store(history[offset : offset + 500], now=now)
        stores[name] = (plain, linked)
    timings: dict[str, list[float]] = {"classifier": []}
    for name in stores:
        timings[f"store_{name}"] = []
        timings[f"store_{name}_linked"] = []
    timings["linker_pure"] = []
    for round_ in range(args.rounds):
        texts = [
            rewrite(rng.choice(stored), rng, 1)[0] if rng.random() < args.copies else next(fresh)
            for _ in range(args.batch)
        ]
        inputs = [ModelInput(t, None) for t in texts]
        timings["classifier"].append(
            _per_item(lambda i=inputs: classifier.classify(i), len(texts))  # type: ignore[misc]
        )
        for name, (plain, linked) in stores.items():
            for label, store in (("", plain), ("_linked", linked)):
                batch = [_item(f"r{round_}{label}{i}", t, now, rng) for i, t in enumerate(texts)]
                timings[f"store_{name}{label}"].append(
                    _per_item(
                        lambda s=store, b=batch: s.store(b, now=now),  # type: ignore[misc]
                        len(batch),
                    )
                )
        items = [StoryItem(f"p{i}", now, t) for i, t in enumerate(texts)]
        cold = Linker()  # an empty fingerprint cache: every headline hashed
        timings["linker_pure"].append(
            _per_item(lambda c=cold, i=items: c.link(i, []), len(items))  # type: ignore[misc]
        )
        print(f"round {round_ + 1}/{args.rounds}")
    medians = {k: statistics.median(v) for k, v in timings.items()}
    out: dict[str, Any] = {"seconds_per_item": {k: round(v, 7) for k, v in medians.items()}}
    for name in stores:
        extra = medians[f"store_{name}_linked"] - medians[f"store_{name}"]
        out[f"linking_{name}_over_classifier"] = round(extra / medians["classifier"], 4)
        print(
            f"{name}: classifier {medians['classifier'] * 1e3:.3f} ms/item, store "
            f"{medians[f'store_{name}'] * 1e3:.3f} -> {medians[f'store_{name}_linked'] * 1e3:.3f}"
            f" ms/item with linking: +{extra / medians['classifier']:.1%} of the classifier"
        )
    print(
        f"pure linking {medians['linker_pure'] * 1e3:.3f} ms/item: "
        f"{medians['linker_pure'] / medians['classifier']:.1%} of the classifier"
    )
    close = getattr(classifier, "close", None)
    if close:
        close()
    return out


def _per_item(run: Callable[[], object], items: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / items


def _item(item_id: str, headline: str, now: datetime, rng: random.Random) -> Any:
    from monitor.contract import NewsItem
    from monitor.model.interface import Classification
    from monitor.pipeline_types import ClassifiedItem

    published = now - timedelta(seconds=rng.randrange(86_400))
    verdict = Classification("Markets", 0.9, "neutral", 0.0, {"neutral": 1.0}, "bench")
    news = NewsItem(item_id, published, headline, content_hash=item_id)
    return ClassifiedItem(replace(news), verdict)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("note: figures measured now on a machine shared with other jobs; ratios only")
    results: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat()}
    results["quality"] = quality(args.data, args.chart)
    if not args.skip_cost:
        pool = (
            [t for t, _ in read_headlines([args.data / "train.csv", args.data / "valid.csv"])]
            if (args.data / "valid.csv").is_file()
            else [r["a"] for r in csv.DictReader(FIXTURE.open(encoding="utf-8"))]
        )
        results["cost"] = cost(args, pool)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"novelty-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
