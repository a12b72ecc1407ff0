"""Reader: turns the products still to encode into model-ready batches.

Images are opened, decoded, resized and cropped by a DataLoader: in worker processes that
overlap the forward pass when the machine has cores the model's threads leave free, in the main
process between forward passes when it has not (`decode_workers`). Either way decoding hands over
uint8 crops, and the float conversion and normalisation run once per batch here (see
`features.image_transforms`). A file that fails to decode does not stop the batch: it comes back as
a named failure next to the batch's good rows. Titles are tokenised in the main process (fast
tokenisers; no worker start-up cost), in length-sorted batches so that padding to the longest
title of a batch pads little.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from features.image_transforms import NormalizeBatch, split_for_batching


@dataclass
class Batch:
    """Rows of one batch that made it (ids, hashes, model input) and those that did not."""

    product_ids: list[str]
    content_hashes: list[str]
    inputs: Any
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.product_ids)


class ImageFiles(Dataset):
    """(product_id, content_hash, path) rows → (product_id, content_hash, tensor | None, error | None)."""

    def __init__(self, product_ids: Sequence[str], hashes: Sequence[str], paths: Sequence[str], preprocess: Callable) -> None:
        self.product_ids = list(product_ids)
        self.hashes = list(hashes)
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[str, str, torch.Tensor | None, str | None]:
        try:
            with Image.open(self.paths[i]) as im:
                im.load()
                tensor = self.preprocess(im if im.mode == "RGB" else im.convert("RGB"))
            return self.product_ids[i], self.hashes[i], tensor, None
        except Exception as e:  # any decode error of one file must not stop the run
            return self.product_ids[i], self.hashes[i], None, f"{type(e).__name__}: {e}"


def collate_images(rows: list[tuple[str, str, torch.Tensor | None, str | None]]) -> Batch:
    good = [r for r in rows if r[2] is not None]
    inputs = torch.stack([r[2] for r in good]) if good else None
    return Batch([r[0] for r in good], [r[1] for r in good], inputs, [(r[0], r[3] or "") for r in rows if r[2] is None])


def worker_context() -> str:
    """Fork when this process is single-threaded (fast, and works from unguarded scripts).

    Forking a process that runs other threads (Prefect's API client, Dask) can leave workers with
    locks held by threads that no longer exist; there a fork server starts them clean.
    """
    return "fork" if threading.active_count() == 1 else "forkserver"


def decode_workers(num_workers: int | str, threads: int | None) -> int:
    """How many decoding processes `encode.num_workers` asks for, `auto` resolved against this machine.

    A worker only overlaps the forward pass if it has a core to itself. When the model's intra-op
    threads already take every core, a worker competes with them, and each slice of CPU it takes
    stalls all of them at the next layer's barrier. On this project's 2-core VM that slowed the
    forward pass by more than decoding inline takes (BENCHMARKS.md, Encoding: the rows with one
    worker against the `auto` ones). So `auto` gives decoding the cores the model leaves free (at
    most 4) and decodes in the main process when there are none.
    """
    if num_workers != "auto":
        return int(num_workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    used = threads or torch.get_num_threads()
    return max(0, min(4, cores - used))


def _yield_to_inference(worker_id: int) -> None:
    """Run the decoding worker at idle priority (SCHED_IDLE where Linux has it).

    The model's intra-op threads meet at a barrier after each layer, so a decoder that preempts
    one of them stalls them all. `auto` starts workers only on cores the model leaves free, but
    an explicit `encode.num_workers` can put more processes than cores on the machine; at idle
    priority a decoder then runs in the gaps the model leaves and never takes a core from it.
    Other busy processes on the machine can starve it, hence `encode.decode_priority: normal`.
    """
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


def image_batches(
    product_ids: Sequence[str],
    hashes: Sequence[str],
    paths: Sequence[str],
    preprocess: Callable,
    batch_size: int,
    num_workers: int,
    idle_workers: bool = True,
    channels_last: bool = False,
) -> Iterator[Batch]:
    """Batches of decoded images in input order, decoded by `num_workers` processes.

    `channels_last` asks for batches in that memory order (the encoder's own wish, see
    `Encoder.channels_last`), made while normalising instead of by a copy afterwards.
    """
    if not paths:
        return iter(())
    per_image, per_batch = split_for_batching(preprocess, channels_last)
    loader = DataLoader(
        ImageFiles(product_ids, hashes, paths, per_image),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_images,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
        multiprocessing_context=worker_context() if num_workers else None,
        worker_init_fn=_yield_to_inference if (num_workers and idle_workers) else None,
    )
    batches = iter(loader)  # starts the workers now, before the first batch is asked for
    return batches if per_batch is None else _finished(batches, per_batch)


def _finished(batches: Iterator[Batch], finish: NormalizeBatch) -> Iterator[Batch]:
    for b in batches:
        if b.inputs is not None:
            b.inputs = finish(b.inputs)
        yield b


def text_batches(
    product_ids: Sequence[str],
    hashes: Sequence[str],
    titles: Sequence[str],
    tokenize: Callable[[list[str]], Any],
    batch_size: int,
) -> Iterator[Batch]:
    """Tokenised batches of titles, sorted by length so each batch pads to a similar length."""
    order = sorted(range(len(titles)), key=lambda i: len(titles[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield Batch([product_ids[i] for i in idx], [hashes[i] for i in idx], tokenize([titles[i] for i in idx]))
