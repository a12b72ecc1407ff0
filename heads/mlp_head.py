"""Fusion MLP head: one shared trunk over all encoder blocks, one output layer per target.

Inputs are each block standardised on its training rows that have a vector (missing rows are 0
after standardising, i.e. the mean) plus one missing-indicator per block. With `mlp.wide` each
target also gets a linear layer straight from the inputs (wide and deep). Classification outputs
use cross-entropy masked to rows with a label; a regression target (price) has three outputs on
standardised log price: the mean (MSE) and the two interval quantiles (pinball loss), so the MLP
gives price and an interval too. Early stopping keeps the weights of the best validation loss.
With `mlp.logit_adjust` tau > 0 the cross-entropy is logit-adjusted (Menon et al., "Long-tail
learning via logit adjustment", 2021): the net trains on logits + tau * log(prior of the class on
the training rows) and predicts from the plain logits, which removes the prior's pull toward
frequent classes (tau = 1: the balanced-error optimum). Seeded: torch.manual_seed for the weights, a seeded generator for the batch order.

`mlp.ensemble` nets are trained with seeds seed, seed+1, ... and their probabilities (price
outputs) averaged: a single net's accuracy depends on its seed, the mean of several depends on
it less, for a training cost that grows with the number of nets.

`mlp.features` names the blocks the net reads (default: every block of the model). A block of
title n-grams stored as slots is tens of thousands of inputs, which makes the net several times
slower to train for no gain in accuracy (BENCHMARKS.md, "title n-grams as slots"); a config can
leave such a block to the linear member of a blend, which reads it at the cost of a sparse product.
"""
from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from heads.features import Features, Matrix, dense_rows, row_chunks
from heads.settings import TrainSettings
from heads.targets import TargetSpec


class FusionNet(nn.Module):
    """Shared trunk plus, per target, an output layer and (wide) a linear layer on the raw inputs.

    The wide part is the wide-and-deep recipe: a title word that decides a label ("Navy Blue",
    "Women") reaches the output through one weight, as in a linear TF-IDF model, while the trunk
    learns the interactions between image and text.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float, outputs: dict[str, int], wide: bool = False) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2), nn.ReLU(), nn.Dropout(dropout),
        )
        self.heads = nn.ModuleDict({f"t_{k}": nn.Linear(hidden // 2, n) for k, n in outputs.items()})
        self.wide = nn.ModuleDict({f"t_{k}": nn.Linear(in_dim, n) for k, n in outputs.items()}) if wide else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        if self.wide is None:
            return {k[2:]: layer(h) for k, layer in self.heads.items()}
        return {k[2:]: layer(h) + self.wide[k](x) for k, layer in self.heads.items()}


def _pinball(pred: torch.Tensor, y: torch.Tensor, q: float) -> torch.Tensor:
    d = y - pred
    return torch.mean(torch.maximum(q * d, (q - 1) * d))


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


BLOCK_VARIANCE = 256.0  # total variance of each encoder block at the input
STD_FLOOR = 1e-6  # stored std of inputs that are constant on the training rows
SPARSE_ZEROS = 0.5  # a block with more zeros than this share is scaled as a whole


def input_scale(x: Matrix, dense: np.ndarray | None = None, rows: np.ndarray | None = None,
                chunk_rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-input mean and std of one block on its training rows `rows` (None: every row).

    Dense embeddings: each input's own std. Sparse blocks (hashed n-grams, mostly zeros): one
    std shared by the whole block, since dividing by each input's own std would blow a title
    word seen twice in training up to a huge value. Inputs constant on the training rows get
    STD_FLOOR, which `_inverse_std` turns into a zero weight. `dense`: positions scaled by their own
    std whatever the block (the numeric values of a columns block, beside its hashed one-hots).
    The sums run over `chunk_rows` densified rows at a time in float64, so a CSR and a dense copy
    of a block give the same mean and std, and a million rows never need a second dense copy.
    """
    rows = np.arange(x.shape[0]) if rows is None else np.asarray(rows)
    d = x.shape[1]
    if len(rows) == 0:
        return np.zeros(d, dtype=np.float32), np.full(d, STD_FLOOR, dtype=np.float32)
    total, squares, zeros = np.zeros(d), np.zeros(d), 0
    for part in row_chunks(len(rows), chunk_rows):
        c = dense_rows(x, rows[part]).astype(np.float64)
        total += c.sum(axis=0)
        squares += (c * c).sum(axis=0)
        zeros += int(np.count_nonzero(c == 0))
    mean = total / len(rows)
    std = np.sqrt(np.maximum(squares / len(rows) - mean**2, 0.0))
    own = std.copy()
    if zeros / (len(rows) * d) > SPARSE_ZEROS:
        std = np.where(std > STD_FLOOR, np.sqrt((std**2).sum() / d), std)
    if dense is not None and len(dense):
        std[dense] = own[dense]
    return mean.astype(np.float32), np.maximum(std, STD_FLOOR).astype(np.float32)


class MLPHead:
    kind = "mlp"

    def __init__(self, settings: TrainSettings, specs: list[TargetSpec]) -> None:
        self.settings = settings
        self.specs = specs
        self.block_order: list[str] = []
        self.mean: dict[str, np.ndarray] = {}
        self.std: dict[str, np.ndarray] = {}
        self.y_mu: dict[str, float] = {}
        self.y_sd: dict[str, float] = {}
        self.nets: list[FusionNet] = []
        self.epochs_run: list[int] = []
        self.log_prior: dict[str, np.ndarray] = {}  # per classification target, on the training rows

    def _outputs(self) -> dict[str, int]:
        return {s.name: (len(s.classes) if s.kind == "classification" else 3) for s in self.specs}

    def in_dim(self) -> int:
        return sum(len(self.mean[e]) for e in self.block_order) + len(self.block_order)

    def _inverse_std(self, eid: str) -> np.ndarray:
        """1/std per input; 0 for inputs constant on the training rows (a hashed n-gram no training
        title has): the net never learned a weight for them, so at predict time they are noise."""
        std = self.std[eid]
        return np.where(std > STD_FLOOR, 1.0 / np.maximum(std, STD_FLOOR), 0.0).astype(np.float32)

    def _inputs(self, feats: Features, rows: np.ndarray | None = None) -> np.ndarray:
        """Standardised blocks of the rows `rows` (None: all), each scaled to the same total
        variance, plus missing indicators.

        Without the block scaling a 1280-d image block outweighs a 384-d title block 3:1 at the
        first layer whatever each is worth; scaled, every encoder starts on an equal footing.
        Built for one batch at a time: the whole standardised input of a million products would
        be a second dense copy of every block.
        """
        parts, missing = [], []
        for eid in self.block_order:
            m, f = dense_rows(feats.matrices[eid], rows), feats.found[eid]
            f = f if rows is None else f[rows]
            z = (m - self.mean[eid]) * self._inverse_std(eid) * np.float32(np.sqrt(BLOCK_VARIANCE / m.shape[1]))
            z[~f] = 0.0
            parts.append(z.astype(np.float32))
            missing.append((~f).astype(np.float32))
        return np.hstack(parts + [np.column_stack(missing)])

    def _loss_sums(self, out: dict[str, torch.Tensor], ys: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, int]]:
        """Per target with labels in the batch: (summed loss over its labelled rows, their number)."""
        sums = {}
        lo, hi = self.settings.mlp.quantiles
        tau = self.settings.mlp.logit_adjust
        for s in self.specs:
            y = ys[s.name]
            if s.kind == "classification":
                keep = y >= 0
                if keep.any():
                    logits = out[s.name][keep]
                    if tau > 0:
                        logits = logits + tau * torch.from_numpy(self.log_prior[s.name])
                    sums[s.name] = (nn.functional.cross_entropy(logits, y[keep], reduction="sum"), int(keep.sum()))
            else:
                keep = torch.isfinite(y)
                if keep.any():
                    o, t = out[s.name][keep], y[keep]
                    n = int(keep.sum())
                    sums[s.name] = (nn.functional.mse_loss(o[:, 0], t, reduction="sum")
                                    + n * (_pinball(o[:, 1], t, lo) + _pinball(o[:, 2], t, hi)), n)
        return sums

    def _loss(self, out: dict[str, torch.Tensor], ys: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum over targets of each target's mean loss over its labelled rows."""
        total = torch.zeros(())
        for value, n in self._loss_sums(out, ys).values():
            total = total + value / n
        return total

    def _val_loss(self, net: "FusionNet", feats: Features, val: np.ndarray, yva: dict[str, torch.Tensor],
                  chunk_rows: int = 8192) -> float:
        """`_loss` over every validation row, computed a chunk at a time (same value, bounded memory)."""
        sums: dict[str, list] = {}
        with torch.no_grad():
            for part in row_chunks(len(val), chunk_rows):
                out = net(torch.from_numpy(self._inputs(feats, val[part])))
                for k, (v, n) in self._loss_sums(out, {t: y[part] for t, y in yva.items()}).items():
                    acc = sums.setdefault(k, [0.0, 0])
                    acc[0] += float(v)
                    acc[1] += n
        return float(sum(v / n for v, n in sums.values()))

    def _targets(self, y: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        for s in self.specs:
            v = y[s.name][idx]
            if s.kind == "classification":
                out[s.name] = torch.from_numpy(v.astype(np.int64))
            else:
                out[s.name] = torch.from_numpy(((v - self.y_mu[s.name]) / self.y_sd[s.name]).astype(np.float32))
        return out

    def fit(self, feats: Features, y: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, log=print) -> "MLPHead":
        ms = self.settings.mlp
        blocks = [b for b in feats.blocks if b.name in ms.features] or list(feats.blocks)
        self.block_order = [b.encoder_id for b in blocks]
        for b in blocks:
            eid = b.encoder_id
            rows = train[feats.found[eid][train]]
            self.mean[eid], self.std[eid] = input_scale(feats.matrices[eid], b.numeric_positions(), rows)
        for s in self.specs:
            if s.kind == "classification":
                v = y[s.name][train]
                counts = np.bincount(v[v >= 0], minlength=len(s.classes)).astype(np.float64) + 1.0
                self.log_prior[s.name] = np.log(counts / counts.sum()).astype(np.float32)
            if s.kind == "regression":
                v = y[s.name][train]
                v = v[np.isfinite(v)]
                self.y_mu[s.name] = float(v.mean()) if len(v) else 0.0
                self.y_sd[s.name] = float(max(v.std(), 1e-6)) if len(v) else 1.0
        ytr, yva = self._targets(y, train), self._targets(y, val)
        self.nets, self.epochs_run = [], []
        with _threads(ms.threads):
            for member in range(ms.ensemble):
                net, epochs, best = self._fit_one(self.settings.seed + member, feats, train, ytr, val, yva)
                self.nets.append(net)
                self.epochs_run.append(epochs)
                log(f"  mlp {member + 1}/{ms.ensemble}: {len(train)} train rows, {epochs} epochs, best val loss {best:.4f}")
        return self

    def _fit_one(self, seed: int, feats: Features, train: np.ndarray, ytr, val: np.ndarray, yva) -> tuple[FusionNet, int, float]:
        """One seeded net, early-stopped on the validation loss: (net, epochs run, best loss).

        Each batch's inputs are standardised from the stored blocks as it is drawn (see `_inputs`).
        """
        ms = self.settings.mlp
        torch.manual_seed(seed)
        net = FusionNet(self.in_dim(), ms.hidden, ms.dropout, self._outputs(), wide=ms.wide)
        opt = torch.optim.AdamW(net.parameters(), lr=ms.lr, weight_decay=ms.weight_decay)
        gen = torch.Generator().manual_seed(seed)
        best, best_state, bad, epochs = float("inf"), copy.deepcopy(net.state_dict()), 0, 0
        for epoch in range(ms.max_epochs):
            net.train()
            order = torch.randperm(len(train), generator=gen)
            for i in range(0, len(train), ms.batch_size):
                b = order[i : i + ms.batch_size]
                xb = torch.from_numpy(self._inputs(feats, train[b.numpy()]))
                loss = self._loss(net(xb), {k: v[b] for k, v in ytr.items()})
                if not loss.requires_grad:
                    continue
                opt.zero_grad()
                loss.backward()
                opt.step()
            epochs = epoch + 1
            if len(val) == 0:
                best_state = copy.deepcopy(net.state_dict())
                continue
            net.eval()
            vl = self._val_loss(net, feats, val, yva)
            if vl < best - 1e-6:
                best, best_state, bad = vl, copy.deepcopy(net.state_dict()), 0
            else:
                bad += 1
                if bad >= ms.patience:
                    break
        net.load_state_dict(best_state)
        net.eval()
        return net, epochs, best

    def predict(self, feats: Features, batch_rows: int = 8192) -> dict[str, np.ndarray]:
        """Per target: class probabilities (n, C), or log [value, lower, upper] (n, 3)."""
        assert self.nets, "model not trained or loaded"
        chunks: dict[str, list[np.ndarray]] = {s.name: [] for s in self.specs}
        with torch.no_grad():
            for part in (row_chunks(feats.n, batch_rows) if feats.n else [np.arange(0)]):
                xb = torch.from_numpy(self._inputs(feats, part))
                outs = [net(xb) for net in self.nets]
                for s in self.specs:
                    if s.kind == "classification":
                        p = sum(torch.softmax(o[s.name], dim=1).double() for o in outs) / len(outs)
                        chunks[s.name].append(p.numpy())
                    else:
                        o = sum(o[s.name].double() for o in outs) / len(outs)
                        v = o.numpy() * self.y_sd[s.name] + self.y_mu[s.name]
                        v = np.column_stack([v[:, 0], np.minimum(v[:, 1], v[:, 0]), np.maximum(v[:, 2], v[:, 0])])
                        chunks[s.name].append(v)
        return {k: np.concatenate(v) if v else np.zeros((0, 0)) for k, v in chunks.items()}

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for i, net in enumerate(self.nets):
            files.append(f"mlp-{i}.pt")
            torch.save(net.state_dict(), directory / files[-1])
        np.savez(directory / "mlp-standardise.npz",
                 **{f"mean_{i}": self.mean[e] for i, e in enumerate(self.block_order)},
                 **{f"std_{i}": self.std[e] for i, e in enumerate(self.block_order)})
        return {"state_dicts": files, "standardise": "mlp-standardise.npz", "block_order": self.block_order,
                "in_dim": self.in_dim(), "outputs": self._outputs(), "y_mu": self.y_mu, "y_sd": self.y_sd,
                "epochs_run": self.epochs_run, "mlp_settings": json.loads(self.settings.mlp.model_dump_json())}

    @classmethod
    def load(cls, directory: Path, settings: TrainSettings, specs: list[TargetSpec], part: dict) -> "MLPHead":
        head = cls(settings, specs)
        head.block_order = list(part["block_order"])
        z = np.load(directory / part["standardise"])
        for i, e in enumerate(head.block_order):
            head.mean[e], head.std[e] = z[f"mean_{i}"], z[f"std_{i}"]
        head.y_mu, head.y_sd = dict(part["y_mu"]), dict(part["y_sd"])
        ms = settings.mlp
        files = part.get("state_dicts") or [part["state_dict"]]  # one file: a model saved before ensembles
        for f in files:
            net = FusionNet(part["in_dim"], ms.hidden, ms.dropout, dict(part["outputs"]), wide=ms.wide)
            net.load_state_dict(torch.load(directory / f, weights_only=True))
            head.nets.append(net.eval())
        epochs = part.get("epochs_run", [])
        head.epochs_run = epochs if isinstance(epochs, list) else [epochs]
        return head
