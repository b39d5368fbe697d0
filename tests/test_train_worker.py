"""The finetune and prune_retrain job kinds, end to end through the engine worker process."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import Recorder
from test_train_engine import _data, _mlp

from weightlab.core.training import FinetuneResult, FinetuneSpec, PruneRetrainResult, PruneRetrainSpec
from weightlab.engine import EngineClient, JobProgress, JobResult, ModelReady, Ready

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_worker")
    _mlp().save(d / "mlp.keras")
    for name, n, seed in (("train", 256, 1), ("heldout", 128, 3)):
        x, y = _data(n, seed)
        np.savez(d / f"{name}.npz", x=x, y=y)
    return d


@pytest.fixture
def client(files):
    rec = Recorder()
    c = EngineClient(rec)
    c.start()
    try:
        rec.wait(lambda e: isinstance(e, Ready), timeout=120)
        rid = c.open(files / "mlp.keras", files / "heldout.npz")
        assert rec.wait(lambda e: isinstance(e, ModelReady) and e.request_id == rid, timeout=120).ok
        yield c, rec
    finally:
        c.shutdown()


def _pruned(files) -> dict[str, np.ndarray]:
    from weightlab._tf.train import open_trainable

    k = open_trainable(files / "mlp.keras").stored["hidden/kernel"].copy()
    k[np.abs(k) < np.median(np.abs(k))] = 0
    return {"hidden/kernel": k}


def test_finetune_job_trains_the_window_edits(files, client):
    """The job trains the worker's mirror of the edited tensors, streams batches and epochs, equals headless."""
    from weightlab._tf import headless

    c, rec = client
    edited = _pruned(files)
    spec = FinetuneSpec(train=str(files / "train.npz"), heldout=str(files / "heldout.npz"), epochs=2, batch_size=32,
                        lr=0.01, seed=4, watch=("hidden/kernel",))  # fmt: skip
    c.evaluate({"hidden/kernel": (1, edited["hidden/kernel"])}, tag="edits")
    job = c.submit(spec)
    result = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == job, timeout=120).result
    partials = [e.partial for e in rec.seen if isinstance(e, JobProgress) and e.job_id == job and e.partial]
    assert isinstance(result, FinetuneResult)
    epochs = [p for p in partials if p.get("type") == "epoch"]
    assert [p["epoch"] for p in epochs] == [1, 2]
    assert set(epochs[0]) >= {
        "loss",
        "accuracy",
        "heldout_accuracy",
        "lr",
        "seconds",
        "tensors",
        "eta_s",
        "device",
    }
    np.testing.assert_array_equal(epochs[-1]["tensors"]["hidden/kernel"], result.arrays["hidden/kernel"])
    assert np.all(
        result.arrays["hidden/kernel"][edited["hidden/kernel"] == 0] == 0
    )  # the window's pruning kept
    assert result.final is not None and result.final["accuracy"] == epochs[-1]["heldout_accuracy"]

    expected = headless.finetune(files / "mlp.keras", spec, edited)
    assert set(expected.arrays) == set(result.arrays)
    for name, a in expected.arrays.items():
        np.testing.assert_allclose(result.arrays[name], a, atol=1e-6, err_msg=name)


def test_stopped_finetune_job_answers_with_the_kept_epoch(files, client):
    c, rec = client
    spec = FinetuneSpec(train=str(files / "train.npz"), epochs=200, batch_size=8, lr=0.01, on_cancel="last")
    job = c.submit(spec)
    rec.wait(lambda e: isinstance(e, JobProgress) and e.job_id == job and (e.partial or {}).get("type") == "epoch",
             timeout=120)  # fmt: skip
    assert c.stop_job(job)
    result = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == job, timeout=120).result
    assert result.cancelled and result.kept == "last" and 1 <= len(result.history) < 200


def test_prune_retrain_job(files, client):
    c, rec = client
    spec = PruneRetrainSpec(finetune={"train": str(files / "train.npz"), "epochs": 1,
                                      "heldout": str(files / "heldout.npz")}, rounds=2, threshold=0.05, factor=2.0)  # fmt: skip
    job = c.submit(spec)
    result = rec.wait(lambda e: isinstance(e, JobResult) and e.job_id == job, timeout=120).result
    assert isinstance(result, PruneRetrainResult)
    assert [r.round for r in result.rounds] == [1, 2]
    assert [r.threshold for r in result.rounds] == [0.05, 0.1]
    assert result.rounds[0].sparsity < result.rounds[1].sparsity
    rounds = [e.partial for e in rec.seen if isinstance(e, JobProgress) and e.job_id == job
              and (e.partial or {}).get("type") == "round"]  # fmt: skip
    assert [p["round"] for p in rounds] == [0, 1, 2]
