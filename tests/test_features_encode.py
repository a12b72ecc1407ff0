"""The encode runner end to end: tiny real models, real Parquet, real DuckDB."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from PIL import Image

from conftest_features import (  # noqa: F401  (fixtures)
    make_catalog, bert_spec, save_timm_checkpoint, settings, tiny_bert_dir, tiny_timm_ckpt, timm_spec, write_products,
)
from features.encode import encode
from features.encoders import load_encoder
from features.identity import encoder_id
from features.settings import EncodeSettings
from features.store import EmbeddingStore, EncoderMismatch
from warehouse.atomic import TMP_PREFIX, visible_parquet_files


def keys_of(wh, eid) -> list[tuple[str, str]]:
    files = visible_parquet_files(wh.embeddings_dir(eid))
    if not files:
        return []
    listed = ", ".join(f"'{f}'" for f in files)
    return duckdb.connect().execute(f"SELECT product_id, content_hash FROM read_parquet([{listed}])").fetchall()


def test_incremental_and_changed_content(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    wh, rows = make_catalog(tmp_path, 20)
    encs = {"image": timm_spec(tiny_timm_ckpt), "title": bert_spec(tiny_bert_dir)}
    first = encode(wh, encs, settings(), progress=False)
    assert [(r.name, r.candidates, r.encoded, r.already_stored) for r in first] == [("image", 20, 20, 0), ("title", 20, 20, 0)]
    assert first[0].chunks_written == 3 and first[0].dim > 0 and first[1].dim == 32
    assert first[0].read_seconds > 0 and first[0].inference_seconds > 0 and first[0].write_seconds > 0

    t = time.perf_counter()
    again = encode(wh, encs, settings(), progress=False)
    assert [(r.encoded, r.already_stored, r.load_seconds) for r in again] == [(0, 20, 0.0), (0, 20, 0.0)]
    assert time.perf_counter() - t < 5

    rows[3]["title"] = "black leather bag"
    rows[7]["title"] = "slim fit white shirt"
    write_products(wh, rows)
    changed = encode(wh, encs, settings(), progress=False)
    assert [(r.name, r.encoded) for r in changed] == [("image", 0), ("title", 2)]
    title_keys = keys_of(wh, changed[1].encoder_id)
    assert len(title_keys) == 22 and len(set(title_keys)) == 22
    # reading by current content gives every product a fresh vector
    store = EmbeddingStore(wh, changed[1].encoder_id)
    from warehouse.tables import read_products

    p = read_products(wh, columns=["product_id", "title_sha256"])
    _, mask = store.read_matrix(p["product_id"].to_pylist(), p["title_sha256"].to_pylist())
    assert mask.all()


def test_stored_vectors_equal_direct_forward(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    wh, rows = make_catalog(tmp_path, 11)
    encs = {"image": timm_spec(tiny_timm_ckpt), "title": bert_spec(tiny_bert_dir)}
    reports = encode(wh, encs, settings(batch_size=3, chunk_rows=5, precision="fp32"), progress=False)
    ids = [r["product_id"] for r in rows]
    for rep, spec in zip(reports, encs.values()):
        enc = load_encoder(spec)
        with torch.inference_mode():
            if spec.input == "image":
                x = torch.stack([enc.preprocess(Image.open(r["image_path"]).convert("RGB")) for r in rows])
                direct = enc.model(x).numpy()
            else:  # one title at a time: no padding at all
                direct = np.concatenate([enc.forward(enc.tokenize([r["title"]])).numpy() for r in rows])
        stored, mask = EmbeddingStore(wh, rep.encoder_id).read_matrix(ids)
        assert mask.all() and stored.dtype == np.float32
        np.testing.assert_allclose(stored, direct, atol=1e-5)


def test_missing_and_corrupt_images_with_workers(tmp_path, tiny_timm_ckpt):
    wh, rows = make_catalog(tmp_path, 12)
    rows[1].update(image_path=None, image_status="none")
    rows[2].update(image_path=str(tmp_path / "gone.jpg"), image_status="missing")
    rows[4]["title"] = None
    write_products(wh, rows)
    Path(rows[5]["image_path"]).write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")  # corrupt after ingest
    encs = {"image": timm_spec(tiny_timm_ckpt)}
    (rep,) = encode(wh, encs, settings(num_workers=2, batch_size=3, chunk_rows=4), progress=False)
    assert rep.skipped_no_input == 2 and rep.candidates == 10
    assert [f[0] for f in rep.failed] == ["p0005"] and rep.failed[0][1]
    assert rep.encoded == 9
    stored = {k[0] for k in keys_of(wh, rep.encoder_id)}
    assert stored == {r["product_id"] for r in rows} - {"p0001", "p0002", "p0005"}
    # a failed image is retried next run (still missing from the store), and fails again, alone
    (again,) = encode(wh, encs, settings(num_workers=0), progress=False)
    assert again.encoded == 0 and [f[0] for f in again.failed] == ["p0005"]


def test_encoder_change_is_a_new_id_never_mixed(tmp_path, tiny_timm_ckpt):
    wh, _ = make_catalog(tmp_path, 6)
    (a,) = encode(wh, {"image": timm_spec(tiny_timm_ckpt)}, settings(), progress=False)
    old_files = {f: f.stat().st_mtime_ns for f in visible_parquet_files(wh.embeddings_dir(a.encoder_id))}
    other = save_timm_checkpoint(tmp_path / "retrained.pth", seed=7)
    (b,) = encode(wh, {"image": timm_spec(other)}, settings(), progress=False)
    assert b.encoder_id != a.encoder_id and b.encoded == 6 and b.already_stored == 0
    assert {f: f.stat().st_mtime_ns for f in visible_parquet_files(wh.embeddings_dir(a.encoder_id))} == old_files
    va, _ = EmbeddingStore(wh, a.encoder_id).read_matrix(["p0000"])
    vb, _ = EmbeddingStore(wh, b.encoder_id).read_matrix(["p0000"])
    assert not np.allclose(va, vb)
    # a chunk of one encoder dropped into another's dataset is refused, not read
    stray = next(iter(old_files))
    (wh.embeddings_dir(b.encoder_id) / stray.name).write_bytes(stray.read_bytes())
    with pytest.raises(EncoderMismatch):
        encode(wh, {"image": timm_spec(other)}, settings(), progress=False)


def test_shards_are_disjoint_and_complete(tmp_path, tiny_bert_dir):
    wh, _ = make_catalog(tmp_path, 15)
    encs = {"title": bert_spec(tiny_bert_dir)}
    got = [encode(wh, encs, settings(), shard=(i, 3), progress=False)[0] for i in range(3)]
    assert sum(r.candidates for r in got) == 15 and sum(r.encoded for r in got) == 15
    keys = keys_of(wh, got[0].encoder_id)
    assert len(keys) == len(set(keys)) == 15


KILL_SCRIPT = """
import sys
from features.encode import encode
from features.settings import EncodeSettings, EncoderSpec
from warehouse.layout import open_warehouse
wh = open_warehouse(sys.argv[1])
spec = EncoderSpec(family="resnet", model="resnet50", pretrained="random", input="image")
encode(wh, {"image": spec}, EncodeSettings(batch_size=2, num_workers=1, threads=1, chunk_rows=4), progress=False)
"""


def test_kill_9_mid_run_then_resume(tmp_path):
    wh, rows = make_catalog(tmp_path, 40)
    from features.settings import EncoderSpec

    spec = EncoderSpec(family="resnet", model="resnet50", pretrained="random", input="image")
    eid = encoder_id(spec)
    d = wh.embeddings_dir(eid)
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    proc = subprocess.Popen([sys.executable, str(script), str(wh.root)], start_new_session=True)
    try:
        deadline = time.time() + 90
        while not visible_parquet_files(d) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = {f: f.read_bytes() for f in visible_parquet_files(d)}
    assert before and len(before) < 10
    done_before = {k[0] for k in keys_of(wh, eid)}
    assert len(done_before) % 4 == 0  # whole chunks only

    (rep,) = encode(wh, {"image": spec}, settings(batch_size=8, chunk_rows=16), progress=False)
    assert rep.already_stored == len(done_before) and rep.encoded == 40 - len(done_before)
    after = visible_parquet_files(d)
    assert all(f in after and f.read_bytes() == b for f, b in before.items())  # committed chunks kept, not redone
    keys = keys_of(wh, eid)
    assert len(keys) == len(set(keys)) == 40
    assert not [p for p in d.rglob(f"{TMP_PREFIX}*")]


def _scheduler_policy(image) -> torch.Tensor:
    """A 'preprocess' that reports the scheduling policy of the process that decodes."""
    return torch.tensor([float(os.sched_getscheduler(0))])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux-only")
def test_decoding_workers_run_at_idle_priority_unless_told(tmp_path):
    from features.reader import image_batches

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (8, 8), (i, 0, 0)).save(paths[-1])
    ids = [str(i) for i in range(4)]

    def policies(idle: bool) -> set[int]:
        batches = image_batches(ids, ids, [str(p) for p in paths], _scheduler_policy, 2, 1, idle_workers=idle)
        return {int(v) for b in batches for v in b.inputs.flatten().tolist()}

    assert policies(True) == {os.SCHED_IDLE}
    assert policies(False) == {os.sched_getscheduler(0)} != {os.SCHED_IDLE}


def _decoder_pid(image) -> torch.Tensor:
    """A 'preprocess' that reports which process decodes."""
    return torch.tensor([os.getpid()])  # int64: any pid exactly


def test_auto_decodes_inline_when_the_model_threads_fill_every_core(tmp_path):
    from features.reader import decode_workers, image_batches

    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (8, 8), (i, 0, 0)).save(paths[-1])
    ids = [str(i) for i in range(4)]

    def decoders(threads: int) -> set[int]:
        n = decode_workers("auto", threads)
        return {int(v) for b in image_batches(ids, ids, paths, _decoder_pid, 2, n) for v in b.inputs.flatten().tolist()}

    cores = len(os.sched_getaffinity(0))
    assert decoders(threads=cores) == {os.getpid()}  # no core left: decoded between forward passes
    if cores > 1:  # a core left free: decoded by a worker beside the model
        assert os.getpid() not in decoders(threads=cores - 1)
    assert decode_workers(3, threads=cores) == 3  # an explicit number is taken as given
    with pytest.raises(ValueError):
        EncodeSettings(num_workers="many")


def test_same_content_is_encoded_once_and_copied_to_new_products(tmp_path, tiny_bert_dir, tiny_timm_ckpt):
    wh, rows = make_catalog(tmp_path, 6)
    # p0003 re-lists p0001's photo and title; p0004 shares p0001's photo only
    rows[3]["image_path"], rows[3]["title"] = rows[1]["image_path"], rows[1]["title"]
    rows[4]["image_path"] = rows[1]["image_path"]
    broken = tmp_path / "images" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    rows[0]["image_path"] = rows[5]["image_path"] = str(broken)  # one undecodable photo, twice
    write_products(wh, rows)
    encs = {"image": timm_spec(tiny_timm_ckpt), "title": bert_spec(tiny_bert_dir)}
    first = {r.name: r for r in encode(wh, encs, settings(), progress=False)}
    assert (first["image"].encoded, first["image"].reused) == (4, 2)  # p1, p2 inferred; p3, p4 copies
    assert sorted(pid for pid, _ in first["image"].failed) == ["p0000", "p0005"]  # the copy of a failure fails too
    assert (first["title"].encoded, first["title"].reused) == (6, 1)
    ids = [r["product_id"] for r in rows]
    img, found = EmbeddingStore(wh, first["image"].encoder_id).read_matrix(ids)
    assert found.tolist() == [False, True, True, True, True, False]
    assert np.array_equal(img[3], img[1]) and np.array_equal(img[4], img[1]) and not np.array_equal(img[2], img[1])

    # a new product with a photo and title already stored: copied; no title model loaded (the
    # image model loads to retry the undecodable photo, which fails again for both products)
    rows.append({"product_id": "p0100", "title": rows[2]["title"], "image_path": rows[2]["image_path"]})
    write_products(wh, rows)
    again = {r.name: r for r in encode(wh, encs, settings(), progress=False)}
    assert [(r.encoded, r.reused) for r in again.values()] == [(1, 1), (1, 1)]
    assert again["title"].load_seconds == 0.0 and len(again["image"].failed) == 2
    img, found = EmbeddingStore(wh, first["image"].encoder_id).read_matrix(["p0100", "p0002"])
    assert found.all() and np.array_equal(img[0], img[1])
