"""Sweeps on Ray (weightlab._tf.cluster): a local Ray instance gives the one-process result; Ray stays optional.

The Ray test starts its own local instance (2 CPUs, no dashboard, no fixed
ports) and skips only where Ray is not importable (``./dev test`` installs it
with the test extra).
"""

from __future__ import annotations

import ast
import glob
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from weightlab.core.errors import EngineError
from weightlab.core.sweeps import SweepSpec

ROOT = Path(__file__).resolve().parents[1]


def test_only_the_cluster_module_imports_ray():
    importers = []
    for path in sorted((ROOT / "weightlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            )  # fmt: skip
            if any(n == "ray" or n.startswith("ray.") for n in names):
                importers.append(path.relative_to(ROOT).as_posix())
    assert importers and set(importers) == {"weightlab/_tf/cluster.py"}


def test_missing_ray_is_a_clear_error(monkeypatch):
    pytest.importorskip("keras")
    from weightlab._tf import cluster

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.1,), mode="each")
    with pytest.raises(EngineError, match=r"Ray is not installed: pip install 'weightlab\[cluster\]'"):
        cluster.run_ray("model.keras", "heldout.npz", spec, address="local")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (weightlab[cluster])")
def test_local_ray_sweep_equals_the_one_process_sweep(tmp_path):
    from weightlab._tf import headless

    spec_ = importlib.util.spec_from_file_location("bench_eval", ROOT / "benchmarks" / "bench_eval.py")
    bench_eval = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(bench_eval)
    model = bench_eval.residual_cnn((8, 8, 3), widths=(4, 8, 8), blocks=(1, 1, 1), seed=2)
    x, y = bench_eval.heldout_for(model, n=160, seed=3)
    path, data = tmp_path / "res.keras", tmp_path / "res.npz"
    model.save(path)
    np.savez(data, x=x, y=y)
    spec = SweepSpec(op="clip", param="threshold", targets=("*/kernel",), values=(0.2, 0.05, 0.01), mode="each",
                     budget_pp=10.0)  # fmt: skip
    # Edits already made are the base of every point (shipped once through the object store).
    kernel = model.get_layer("head").kernel.numpy()
    edited = {"head/kernel": np.where(np.abs(kernel) < 0.02, 0, kernel).astype(kernel.dtype)}
    one = headless.sweep(path, data, spec, edited=edited, batch_size=64)
    ours = set(glob.glob(os.path.join(tempfile.gettempdir(), "wlray-*")))
    # TensorFlow's autograph writes generated source to the temporary folder and removes it only at a
    # normal exit, which a killed Ray actor never has: the actors keep theirs in folders removed at the end.
    generated = set(glob.glob(os.path.join(tempfile.gettempdir(), "__autograph_generated_file*")))
    seen = []
    on_ray = headless.sweep(path, data, spec, edited=edited, batch_size=64, workers=2, ray_address="local",
                            progress=lambda frac, msg, point: seen.append(point))  # fmt: skip
    assert [(p.target, p.value) for p in on_ray.points] == [(p.target, p.value) for p in one.points]
    for a, b in zip(one.points, on_ray.points):
        assert b.accuracy == pytest.approx(a.accuracy, abs=1e-6)
        assert b.loss == pytest.approx(a.loss, abs=1e-6)
        assert b.agreement == pytest.approx(a.agreement, abs=1e-6)
    assert on_ray.baseline.accuracy == pytest.approx(one.baseline.accuracy, abs=1e-6)
    assert on_ray.notes == one.notes and on_ray.stopped == one.stopped and on_ray.complete
    assert len(one.targets()) > 2
    assert sorted((p.target, p.value) for p in seen) == sorted((p.target, p.value) for p in one.points)
    # The local instance is gone, and so is its temporary folder.
    import ray

    assert not ray.is_initialized()
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "wlray-*"))) == ours
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "__autograph_generated_file*"))) <= generated
    assert not glob.glob(os.path.join(tempfile.gettempdir(), f"weightlab-ray-{os.getpid()}-*"))
