"""A linear head fitted to fixed features: L2-regularised multinomial logistic regression.

Once an encoder is trained, the best linear head over its pooled vectors is the solution of
a convex problem. Fine-tuning only approaches it: a few epochs of stochastic steps, with
dropout, a teacher's soft labels and the other task's batches pulling on the shared encoder.
:func:`fit_linear_head` solves it (L-BFGS, float64) for the gold labels alone. Features are
standardised for the solver (so one penalty suits every column's scale) and the scaling is
folded back into the weights: the result is a plain linear layer over the raw pooled vector,
served exactly as the head it replaces.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

# Columns with a smaller spread than this are treated as constant: they carry no signal and
# would blow up when divided by their deviation.
_MIN_STD = 1e-6


def fit_linear_head(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    l2: float,
    weights: np.ndarray | None = None,
    max_iter: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """``(weight, bias)``, shapes ``(n_classes, dim)`` and ``(n_classes,)`` in float32, that
    minimise the weighted mean cross-entropy of ``features @ weight.T + bias`` against
    ``labels`` plus ``l2 / 2`` times the squared norm of the weights over standardised
    features (the bias is not penalised). ``weights`` (one per row, default equal) are
    normalised to sum to one and also weigh the standardisation (mean and spread), so a
    row given twice and a row of double weight are the same problem. Deterministic: the
    same inputs give the same head.

    Raises ``ValueError`` when a class has no row: its weights would be undetermined."""
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError("features must be (rows, dim) with one label per row")
    missing = sorted(set(range(n_classes)) - {int(y) for y in np.unique(labels)})
    if missing:
        raise ValueError(f"no training row for class(es) {missing}: their head is undetermined")
    x = torch.from_numpy(np.asarray(features, dtype=np.float64))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    w = torch.ones(len(y), dtype=torch.float64) if weights is None else torch.tensor(weights)
    w = w.to(torch.float64) / w.sum()
    mean = w @ x
    std = (w @ (x - mean).pow(2)).sqrt().clamp_min(_MIN_STD)
    z = (x - mean) / std
    weight = torch.zeros((n_classes, x.shape[1]), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        solver.zero_grad()
        loss = (w * functional.cross_entropy(z @ weight.T + bias, y, reduction="none")).sum()
        loss = loss + l2 / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    solver.step(objective)
    with torch.no_grad():
        raw_weight = weight / std
        raw_bias = bias - raw_weight @ mean
    return raw_weight.float().numpy(), raw_bias.float().numpy()
