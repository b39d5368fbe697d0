"""What pruning bought: exact sparsity and removable-parameter counts, compressed sizes, no files left."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import weightlab
from weightlab.core.edits import PruneMagnitude
from weightlab.core.errors import WeightLabError
from weightlab.core.model import ModelFile
from weightlab.core.savings import gzip_size, removable_parameters, savings
from weightlab.formats import save_model


def layer(cls: str, name: str, inputs: list[str] | None = None, **config) -> dict:
    entry = {"class_name": cls, "config": {"name": name, **config}}
    if inputs is not None:  # a functional model (Keras 3's inbound_nodes)
        entry["inbound_nodes"] = [
            {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [i, 0, 0]}} for i in inputs]}
        ]
    return entry


def sequential(*entries: dict) -> dict:
    return {"class_name": "Sequential", "config": {"name": "m", "layers": list(entries)}}


def dense_values() -> dict[str, np.ndarray]:
    """d1 (5 -> 4, relu) -> dropout -> d2 (4 -> 3, relu) -> d3 (3 -> 2, softmax); no zeros."""
    rng = np.random.default_rng(0)
    return {
        "d1/kernel": rng.uniform(0.5, 1, (5, 4)).astype("float32"),
        "d1/bias": rng.uniform(0.5, 1, 4).astype("float32"),
        "d2/kernel": rng.uniform(0.5, 1, (4, 3)).astype("float32"),
        "d2/bias": rng.uniform(0.5, 1, 3).astype("float32"),
        "d3/kernel": rng.uniform(0.5, 1, (3, 2)).astype("float32"),
        "d3/bias": rng.uniform(0.5, 1, 2).astype("float32"),
    }


def dead_state(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """d1 neuron 1 dead; d1 neuron 2 has a zero kernel column but a bias (alive); d2 neuron 0 dead; d3 neuron 1 dead."""
    s = {k: v.copy() for k, v in values.items()}
    s["d1/kernel"][:, 1] = 0
    s["d1/bias"][1] = 0
    s["d1/kernel"][:, 2] = 0
    s["d2/kernel"][:, 0] = 0
    s["d2/bias"][0] = -0.0  # negative zero is zero
    s["d3/kernel"][:, 1] = 0
    s["d3/bias"][1] = 0
    return s


def dense_model(middle: list[dict] | None = None, d1_activation: str = "relu", values=None) -> ModelFile:
    middle = [layer("Dropout", "drop", rate=0.5)] if middle is None else middle
    config = sequential(
        layer("InputLayer", "x", batch_shape=[None, 5]),
        layer("Dense", "d1", activation=d1_activation),
        *middle,
        layer("Dense", "d2", activation="relu"),
        layer("Dense", "d3", activation="softmax"),
    )
    return ModelFile.from_arrays(
        values or dense_values(), "m.keras", format="keras",
        classes={"d1": "Dense", "d2": "Dense", "d3": "Dense"}, config=config,
    )  # fmt: skip


def test_removable_counts_on_dense_layers():
    model = dense_model()
    state = dead_state(dense_values())
    # d1: neuron 1 (5 kernel entries + 1 bias); neuron 2 keeps its bias, so it is not removable.
    # d2: its dead neuron 0 (4 + 1) plus the input row 1 reading d1's neuron 1, less entry [1, 0]
    #     counted already with its column: 5 + (3 - 1) = 7.
    # d3: the input row 0 reading d2's neuron 0 (2 entries); its own dead output 1 has no reader.
    assert removable_parameters(model, state) == {"d1": 6, "d2": 7, "d3": 2}
    assert removable_parameters(model) == {}


def test_savings_numbers_are_exact():
    values = dense_values()
    model = dense_model(values=values)
    after = dead_state(values)
    after["d1/kernel"][0, 0] = np.nan  # NaN is not zero
    result = savings(model, {}, after)
    rows = {r.layer: r for r in result.layers}
    assert list(rows) == ["d1", "d2", "d3"]  # layers with weights, in model order
    assert (rows["d1"].params, rows["d1"].kernel_params) == (24, 20)
    assert (rows["d1"].zeros_before, rows["d1"].zeros_after) == (0, 10 + 1)
    assert (rows["d1"].kernel_zeros_after, rows["d2"].zeros_after, rows["d2"].kernel_zeros_after) == (10, 5, 4)
    assert (rows["d3"].zeros_after, rows["d3"].kernel_zeros_after) == (4, 3)
    assert result.params == 24 + 15 + 8 and result.kernel_params == 20 + 12 + 6
    assert result.sparsity_before == 0.0
    assert result.sparsity_after == pytest.approx((11 + 5 + 4) / 47)
    assert result.kernel_sparsity_after == pytest.approx((10 + 4 + 3) / 38)
    assert rows["d1"].kernel_sparsity_after == pytest.approx(0.5)
    assert (result.removable_before, result.removable_after) == (0, 6 + 7 + 2)
    assert result.gzip_before is None and result.gzip_ratio is None
    # before and after swapped: the same figures the other way round
    back = savings(model, after, None)
    assert (back.removable_before, back.removable_after) == (15, 0)
    assert back.sparsity_before == result.sparsity_after
    js = result.to_json()
    assert js["overall"]["zeros_after"] == 20 and js["overall"]["removable_after"] == 15
    assert js["layers"][0]["layer"] == "d1" and js["layers"][0]["kernel_sparsity_after"] == pytest.approx(0.5)
    assert js["gzip_bytes"] == {"before": None, "after": None, "ratio": None}
    table = result.table()
    assert table.splitlines()[0].split() == ["layer", "params", "sparsity", "kernel", "sparsity", "removable"]
    assert "total" in table and "0 -> 15" in table and "0.0 % -> 42.6 %" in table


@pytest.mark.parametrize(
    ("middle", "d1_activation", "why"),
    [
        ([layer("BatchNormalization", "bn", axis=-1)], "relu", "a BatchNorm turns a zero channel into a constant"),
        ([layer("Dropout", "drop")], "sigmoid", "sigmoid(0) is 0.5"),
        ([layer("Activation", "act", activation="softmax")], "relu", "softmax mixes channels"),
        ([layer("Reshape", "r", target_shape=[4])], "relu", "a layer not known to keep channels"),
    ],
)
def test_nothing_counted_where_removal_would_change_the_output(middle, d1_activation, why):
    values = dense_values()
    if middle[0]["class_name"] == "BatchNormalization":
        values = {**{k: v for k, v in values.items() if k.startswith("d1")}, "bn/gamma": np.ones(4, "float32"),
                  **{k: v for k, v in values.items() if not k.startswith("d1")}}  # fmt: skip
    model = dense_model(middle, d1_activation, values)
    state = dead_state(dense_values())
    found = removable_parameters(model, state)
    assert "d1" not in found, why
    assert found["d2"] == 5  # d2's own dead neuron only: no row reads a removable d1 neuron
    assert found["d3"] == 2


def test_branches_merges_groups_and_missing_architecture():
    values = dense_values()
    values["d4/kernel"] = np.ones((4, 2), "float32")
    functional = {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": [
                layer("InputLayer", "x", []),
                layer("Dense", "d1", ["x"], activation="relu"),
                layer("Dense", "d2", ["d1"], activation="relu"),
                layer("Dense", "d4", ["d1"], activation="relu"),  # d1 feeds two layers
                layer("Dense", "d3", ["d2"], activation="softmax"),
            ],
        },
    }
    model = ModelFile.from_arrays(values, "m.keras", format="keras", config=functional)
    state = dead_state(dense_values())
    assert removable_parameters(model, state) == {"d2": 5, "d3": 2}
    assert removable_parameters(ModelFile.from_arrays(values, "m.keras", format="keras"), state) == {}


def test_convolutions_through_pooling():
    rng = np.random.default_rng(1)
    values = {
        "a/kernel": rng.uniform(0.5, 1, (3, 3, 2, 4)).astype("float32"),
        "a/bias": rng.uniform(0.5, 1, 4).astype("float32"),
        "b/kernel": rng.uniform(0.5, 1, (3, 3, 4, 5)).astype("float32"),
        "g/kernel": rng.uniform(0.5, 1, (3, 3, 2, 6)).astype("float32"),
        "h/kernel": rng.uniform(0.5, 1, (1, 1, 3, 2)).astype("float32"),
    }
    config = sequential(
        layer("Conv2D", "a", activation="relu", groups=1),
        layer("MaxPooling2D", "pool"),
        layer("ZeroPadding2D", "pad"),
        layer("Conv2D", "b", activation="linear", use_bias=False),
        layer("Flatten", "flat"),
        layer("Conv2D", "g", groups=2),
        layer("Conv2D", "h"),
    )
    model = ModelFile.from_arrays(values, "m.keras", format="keras", config=config)
    state = {k: v.copy() for k, v in values.items()}
    state["a/kernel"][..., 3] = 0
    state["a/bias"][3] = 0
    state["b/kernel"][..., 0] = 0  # b feeds a Flatten: not counted
    state["g/kernel"][..., 0] = 0  # grouped convolution: not counted
    # a's filter 3: 3*3*2 kernel entries + 1 bias; b's input channel 3: 3*3*5 entries.
    assert removable_parameters(model, state) == {"a": 19, "b": 45}


def test_unknown_names_and_wrong_shapes():
    model = dense_model()
    with pytest.raises(WeightLabError, match="no tensor named 'd9/kernel'"):
        savings(model, {}, {"d9/kernel": np.zeros((5, 4))})
    with pytest.raises(ValueError, match=r"d1/kernel: shape \(4, 5\)"):
        savings(model, {"d1/kernel": np.zeros((4, 5))}, {})


# -- compressed size -----------------------------------------------------------------------


def tfmot_gzipped_model_size(file):
    """TF Model Optimization's pruning guide, ``get_gzipped_model_size``, verbatim (bar the clean-up)."""
    _, zipped_file = tempfile.mkstemp(".zip")
    with zipfile.ZipFile(zipped_file, "w", compression=zipfile.ZIP_DEFLATED) as f:
        f.write(file)
    size = os.path.getsize(zipped_file)
    os.remove(zipped_file)
    return size


def test_gzip_size_is_the_guides_measure(tmp_path, monkeypatch):
    zeros, noise = tmp_path / "zeros.bin", tmp_path / "noise.bin"
    zeros.write_bytes(bytes(100_000))
    noise.write_bytes(np.random.default_rng(0).bytes(100_000))
    monkeypatch.chdir(tmp_path)  # the guide names the entry by the path it is given
    for p in (zeros, noise):
        assert gzip_size(p) == tfmot_gzipped_model_size(p.name)
    assert gzip_size(zeros) < 1_000 < 100_000 < gzip_size(noise)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_pruned_file_compresses_smaller_and_no_file_is_left(tmp_path, monkeypatch, demo_paths, fmt):
    user = tmp_path / "user"
    user.mkdir()
    model_path = Path(shutil.copy(demo_paths[fmt], user))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    session = weightlab.open(model_path)
    try:
        session.apply(PruneMagnitude(target="*/kernel", sparsity=0.5))
        half = session.edited_arrays()
        session.apply(PruneMagnitude(target="*/kernel", sparsity=0.8))
        result = savings(session.model, half, session.edited_arrays(), saver=save_model)
        stored = savings(session.model, {}, half, saver=save_model)
    finally:
        session.model.close()
    assert stored.gzip_after < stored.gzip_before  # 50 % zeros compress better than none
    assert result.gzip_after < result.gzip_before == stored.gzip_after
    assert 0.78 < result.kernel_sparsity_after < 0.82 and 0.48 < result.kernel_sparsity_before < 0.52
    assert list(user.iterdir()) == [model_path]  # nothing written beside the user's file
    assert list(scratch.iterdir()) == []  # the private temporary folders are gone
    assert "gzip-compressed file:" in result.table()


def test_temporary_folder_is_removed_when_the_saver_fails(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def failing(model, changed, out):
        Path(out).write_bytes(b"partial")
        raise WeightLabError("cannot save: disk full", out)

    with pytest.raises(WeightLabError, match="disk full"):
        savings(dense_model(), {}, {}, saver=failing)
    assert list(scratch.iterdir()) == []


def test_the_compressed_size_line_says_larger_when_the_file_grew():
    from weightlab.core.savings import Savings

    assert "(2.00x smaller)" in Savings(layers=(), gzip_before=2000, gzip_after=1000).table()
    grew = Savings(layers=(), gzip_before=1000, gzip_after=1250).table()
    assert "(1.25x larger)" in grew and "smaller" not in grew
