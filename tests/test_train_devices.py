"""Training placement: the CPU on request, several devices through tf.distribute.MirroredStrategy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_engine import files, op_determinism_restored  # noqa: F401 - fixtures

from weightlab.core.errors import EngineError
from weightlab.core.training import FinetuneSpec

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

from weightlab._tf import headless  # noqa: E402

#: Two logical CPU devices stand in for two GPUs (set before TensorFlow's first op, so in a child process).
MIRRORED = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, "tests")
from test_train_engine import _data, _mlp
from weightlab._tf import headless, train
from weightlab.core.training import FinetuneSpec
d = sys.argv[1]
_mlp().save(f"{d}/m.keras")
x, y = _data(256, 1)
np.savez(f"{d}/t.npz", x=x, y=y)
k = train.open_trainable(f"{d}/m.keras").stored["hidden/kernel"].copy()
k[np.abs(k) < np.median(np.abs(k))] = 0
train._gpu_devices = lambda: [d.name for d in tf.config.list_logical_devices("CPU")]
spec = FinetuneSpec(train=f"{d}/t.npz", epochs=2, batch_size=32, lr=0.01, seed=0)
one = headless.finetune(f"{d}/m.keras", spec, {"hidden/kernel": k})
two = headless.finetune(f"{d}/m.keras", spec, {"hidden/kernel": k}, gpus=2)
print(json.dumps({
    "device": two.device,
    "names": sorted(one.arrays) == sorted(two.arrays),
    "maxdiff": max(float(np.abs(one.arrays[n] - two.arrays[n]).max()) for n in one.arrays),
    "masked": bool(np.all(two.arrays["hidden/kernel"][k == 0] == 0)),
    "losses": [[e.loss for e in one.history], [e.loss for e in two.history]],
}))
"""


def test_mirrored_strategy_trains_as_one_device(tmp_path):
    """gpus=2: MirroredStrategy over two devices gives one device's training (masks kept) within float round-off."""
    done = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["device"] == "2 x CPU" and out["names"] and out["masked"]
    assert out["maxdiff"] < 1e-5
    assert out["losses"][0] == pytest.approx(out["losses"][1], rel=1e-5)


def test_cpu_on_request_and_missing_gpus(files):  # noqa: F811 - the fixture
    spec = FinetuneSpec(train=str(files["train"]), epochs=1, seed=0)
    r = headless.finetune(files["mlp"], spec, gpus=0)
    assert r.device == "CPU" and r.arrays
    seen = len(tf.config.list_logical_devices("GPU"))
    with pytest.raises(
        EngineError, match=f"training on {seen + 1} GPU\\(s\\) was asked for; TensorFlow sees {seen}"
    ) as info:
        headless.finetune(files["mlp"], spec, gpus=seen + 1)
    assert str(files["mlp"]) in str(info.value)  # names the model file, as the other errors do
    with pytest.raises(EngineError, match="gpus must be a number of GPUs") as info:
        headless.finetune(files["mlp"], spec, gpus=-1)
    assert str(files["mlp"]) in str(info.value)
