"""Refitted heads: an artifact whose task heads are solved afresh on its frozen encoder.

A head trained with the encoder ends where the fine-tuning run left it (see
:mod:`monitor.model.head_fit`); on the finished encoder the best linear head for the gold
labels can be solved for. :func:`refit_heads` does that for the named tasks, over the
pooled vectors of the training rows of the artifact's own split, for each penalty of a
grid, and keeps for each task the head that scores best on the held-out slices (the grid goes
on past its weak end while the best is there, :func:`search`): the new
head only if it scores above the artifact's own. The encoder is untouched, so every other
task's outputs are the original's bit for bit; temperatures are then fitted again
(:func:`monitor.model.recalibrate.derive`), and the artifact gets a name of its own.

A task's *targeted head* (``sentiment@target``, :class:`~monitor.model.network.MultiTaskModel`)
is fitted the same way on the rows asked about a target alone (an entity set's rows) and
judged on their held-out slice against the head that reads them now; kept, it serves the
targeted rows while the task's head keeps serving every other row, bit for bit.

Rows are weighted so that each of a task's views (a source's rows; for an entity set, also
its headlines without target) carries the same total weight, as the held-out selection
(:func:`monitor.model.train.selection_score`) averages the views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from monitor.model.data import has_targets
from monitor.model.head_fit import fit_linear_head
from monitor.model.held_out import HeldOut
from monitor.model.inference import pooled_features
from monitor.model.interface import TARGETED_SUFFIX
from monitor.model.metrics import score
from monitor.model.network import MultiTaskModel
from monitor.model.recalibrate import derive
from monitor.model.train import Source, TrainConfig, TrainingRefused, View, selection_score

L2_GRID = (0.1, 0.03, 0.01, 0.003, 0.001)
"""Penalties tried, half a decade apart, strongest first (the first of equal scores wins)."""

MAX_EXTRA_PENALTIES = 3
"""How far :func:`search` goes past the grid's weak end while the score keeps rising."""

_CPU = torch.device("cpu")


def refit_heads(
    artifact: Path,
    sources: Sequence[Source],
    out: Path,
    heads: Sequence[str],
    l2_grid: Sequence[float] = L2_GRID,
    max_ece: float = TrainConfig.max_ece,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Write to ``out`` ``artifact`` with the named ``heads`` refitted (each kept only if
    its held-out score rises): a task's head (``sentiment``) or its targeted head
    (``sentiment@target``, fitted on the rows with a target alone and added if the
    artifact has none). Returns its metrics with a ``refit`` record: per head the held-out
    score of the head that read those rows before (``before``) and of each penalty
    (``grid``), the penalty whose head was kept (``l2``, ``None`` when the original
    stays) and the score of the head shipped (``after``)."""
    if not heads:
        raise TrainingRefused("name at least one head to refit")

    def change(model: MultiTaskModel, held: HeldOut) -> dict[str, Any]:
        unknown = sorted({_task_of(h) for h in heads} - set(model.heads))
        if unknown:
            raise TrainingRefused(f"no head for task(s) {unknown} in {artifact}")
        # targeted heads first: a task head then knows whether it still reads targeted rows
        order = sorted(heads, key=lambda h: _task_of(h) == h)
        return {"tasks": {head: _refit(model, held, head, l2_grid) for head in order}}

    return derive(artifact, sources, out, "refit", change, max_ece=max_ece, base_dir=base_dir)


def _task_of(head: str) -> str:
    return head.removesuffix(TARGETED_SUFFIX)


def _refit(
    model: MultiTaskModel, held: HeldOut, name: str, l2_grid: Sequence[float]
) -> dict[str, Any]:
    """Refit the head ``name`` in place when a penalty of the grid scores above the head
    that reads its rows now (for a targeted head not yet there, the task's head). A
    targeted head's rows are those with a target; a task head's, every row of the task,
    less those with a target once the task has a targeted head."""
    task = _task_of(name)
    targeted = name != task

    def reads(view: View) -> bool:
        if targeted:
            return has_targets(view.train)
        # a task head beside a targeted head no longer reads the rows with a target
        return not (task in model.targeted_heads and has_targets(view.train))

    views = [v for v in held.views if v.task == task and v.gold and v.dev_features and reads(v)]
    if not views:
        rows = "rows with a target" if targeted else "rows"
        raise TrainingRefused(f"no source with held-out {rows} for task {task!r}")

    def pooled(items: Sequence[Any]) -> np.ndarray:
        return pooled_features(
            model, items, pad_id=held.pad_id, batch_size=held.cfg.eval_batch_size, device=_CPU
        )

    features = np.concatenate([pooled(v.features) for v in tqdm(views, desc=f"{name} rows")])
    labels = np.concatenate([v.train["label"].to_numpy() for v in views])
    weights = np.concatenate([np.full(len(v.train), 1.0 / len(v.train)) for v in views])
    dev = [(v, pooled(v.dev_features)) for v in views]
    current = model.targeted_heads[task] if targeted and task in model.targeted_heads else None
    head = current if current is not None else model.heads[task]
    assert isinstance(head, torch.nn.Linear)
    names = held.names[task]
    before = _held_out_score(head.weight.detach().numpy(), head.bias.detach().numpy(), dev, names)
    fitted: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def held_out_score(l2: float) -> float:
        fitted[l2] = fit_linear_head(features, labels, len(names), l2, weights)
        tqdm.write(f"{name}: penalty {l2:g}")
        return _held_out_score(*fitted[l2], dev, names)

    grid = search(held_out_score, l2_grid)
    chosen = choose(before, grid)
    if chosen is not None:
        if targeted and current is None:
            head = model.targeted_heads[task] = torch.nn.Linear(head.in_features, len(names))
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(fitted[chosen][0]))
            head.bias.copy_(torch.from_numpy(fitted[chosen][1]))
    return {
        "before": before,
        "grid": {str(l2): value for l2, value in grid.items()},
        "l2": chosen,
        "after": before if chosen is None else grid[chosen],
    }


def search(
    score_of: Callable[[float], float], grid: Sequence[float], extra: int = MAX_EXTRA_PENALTIES
) -> dict[float, float]:
    """Each penalty of ``grid`` (half a decade apart, strongest first) scored by
    ``score_of``, in order. While the weakest scored so far is the one :func:`choose` would
    pick (the best, and better than every stronger one), the search goes on past the grid's
    end, half a decade at a time (a tenth of the penalty before the weakest), up to
    ``extra`` more: an optimum at the edge of the grid is not known to be one. Returns the
    scores by penalty, in the order tried."""
    if len(grid) < 2:
        raise ValueError("a grid of penalties needs at least two")
    scores = {l2: score_of(l2) for l2 in grid}
    for _ in range(extra):
        *_, before_weakest, weakest = scores
        if _best(scores) != weakest:
            break
        weaker = float(f"{before_weakest / 10:.6g}")  # 0.0003, not 0.00030000000000000003
        scores[weaker] = score_of(weaker)
    return scores


def choose(before: float, grid: Mapping[float, float]) -> float | None:
    """The penalty whose head to keep: the best-scoring of ``grid`` (the first of equal
    scores, in the grid's order), if it scores above the original head's ``before``;
    ``None`` keeps the original."""
    best = _best(grid)
    return best if grid[best] > before else None


def _best(scores: Mapping[float, float]) -> float:
    """The best-scoring penalty; of equal scores, the first (the stronger)."""
    return max(scores, key=lambda l2: scores[l2])


def _held_out_score(
    weight: np.ndarray,
    bias: np.ndarray,
    dev: Sequence[tuple[View, np.ndarray]],
    names: Sequence[str],
) -> float:
    """The selection score of one head over a task's held-out slices."""
    scores = {
        view.name: score(
            view.dev["label"].to_numpy(), (features @ weight.T + bias).argmax(axis=1), names
        ).summary()
        for view, features in dev
    }
    return selection_score(scores)
