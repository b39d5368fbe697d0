"""The public namespace (issue 13, items 1, 5 and 6): ``weightlab.open`` of a file or a live
Keras model, ``Session.tensors``/``history``/``diff()``, ``weightlab.compare``,
``weightlab.evaluate`` with every data form, ``to_keras``, a light ``import weightlab``,
and the documented, complete ``__all__``."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import weightlab
from weightlab.core.errors import FormatError
from weightlab.core.session import EditSession, Step
from weightlab.edits import EDIT_TYPES, Clip, Scale, ZeroNeurons

ENV = {**{k: v for k, v in os.environ.items() if k != "WEIGHTLAB_DEBUG"}, "TF_CPP_MIN_LOG_LEVEL": "3"}
N = 120  # held-out samples


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small classifier trained in memory (3 classes, learnable labels), saved as .keras, its data as .npz."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 8, 8, 1)).astype("float32")
    y = np.argmax(x.reshape(N, -1) @ rng.normal(size=(64, 3)), axis=1).astype("int64")
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(6, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ],
        name="small",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("api")
    path = folder / "small.keras"
    model.save(path)
    npz = folder / "heldout.npz"
    np.savez(npz, x=x, y=y)
    return SimpleNamespace(model=model, path=path, npz=npz, x=x, y=y)


@pytest.fixture
def file_session(small):
    with weightlab.open(small.path) as s:
        yield s


@pytest.fixture
def live_session(small):
    with weightlab.open(small.model) as s:
        yield s


def _predicted(model, x) -> np.ndarray:
    return np.argmax(model.predict(x, verbose=0), axis=1)


def _weights(model) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]


# -- open ----------------------------------------------------------------------------------------


def test_open_of_a_file_and_of_the_live_model_give_the_same_tensors(small, file_session, live_session):
    assert isinstance(file_session, weightlab.Session) and isinstance(live_session, weightlab.Session)
    assert list(live_session.tensors) == list(file_session.tensors)
    assert "hidden/kernel" in file_session.tensors and "bn/moving_mean" in file_session.tensors
    for name, info in file_session.tensors.items():
        assert live_session.tensors[name].shape == info.shape, name
        assert live_session.tensors[name].trainable == info.trainable, name
        np.testing.assert_array_equal(live_session.array(name), file_session.array(name), err_msg=name)
    assert live_session.model.in_memory and live_session.model.source is small.model
    assert not file_session.model.in_memory


def test_open_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(TypeError, match="expected a model file path or a Keras model; got builtins.int"):
        weightlab.open(42)
    with pytest.raises(FormatError, match="missing.keras"):
        weightlab.open(tmp_path / "missing.keras")


# -- tensors, history, diff ------------------------------------------------------------------------


def test_tensors_is_a_read_only_mapping_of_shapes_and_dtypes(file_session):
    tensors = file_session.tensors
    assert list(tensors) == list(file_session.model.tensors)
    for name, info in tensors.items():
        values = file_session.array(name)
        assert (info.shape, info.dtype) == (values.shape, values.dtype.name), name
    assert tensors["bn/moving_mean"].trainable is False and tensors["hidden/kernel"].trainable is True
    with pytest.raises(TypeError):
        tensors["hidden/kernel"] = tensors["out/kernel"]  # type: ignore[index]
    assert file_session.model.tensors["hidden/kernel"].name == "hidden/kernel"


def test_history_lists_applied_then_undone_steps_as_a_snapshot(file_session):
    first = ZeroNeurons(target="hidden", neurons=[1])
    second = Clip(target="out/kernel", min=-0.05, max=0.05)
    assert file_session.history == ()
    file_session.apply(first)
    file_session.apply(second)
    file_session.undo()
    before = file_session.history
    assert [st.edit for st in before] == [first, second] and file_session.position == 1
    assert all(isinstance(st, Step) and st.enabled for st in before)
    assert before[0].changed == {"hidden/kernel", "hidden/bias"}
    third = Scale(target="conv/kernel", factor=0.5)
    file_session.apply(third)  # drops the undone step
    assert [st.edit for st in file_session.history] == [first, third]
    assert [st.edit for st in before] == [first, second]  # the earlier snapshot is unchanged
    file_session.set_step_enabled(0, False)
    assert [st.enabled for st in file_session.history] == [False, True]


def test_diff_measures_each_tensor_against_its_stored_values(file_session):
    stored = np.array(file_session.original("hidden/kernel"), dtype=np.float64)
    cols = [1, 4]
    file_session.apply(ZeroNeurons(target="hidden", neurons=cols))
    d = file_session.diff()
    assert isinstance(d, weightlab.ModelDiff) and (d.a_label, d.b_label) == ("original", "current")
    assert d.names() == list(file_session.tensors)
    assert d.changed().names() == ["hidden/kernel", "hidden/bias"]
    kernel = d.get("hidden/kernel")
    assert kernel is not None
    removed = stored[:, cols].astype(np.float64)
    assert kernel.changed == np.count_nonzero(removed) and kernel.size == stored.size
    assert kernel.relative_l2 == pytest.approx(np.linalg.norm(removed) / np.linalg.norm(stored), rel=1e-9)
    assert kernel.max_abs == pytest.approx(np.abs(removed).max(), rel=1e-9)
    assert all(t.changed == 0 and t.relative_l2 == 0.0 for t in d if t.name not in ("hidden/kernel", "hidden/bias"))
    file_session.undo()
    assert len(file_session.diff().changed()) == 0


def test_diff_does_not_keep_the_stored_values_it_reads(small):
    with weightlab.open(small.path) as s:
        assert s.original_nbytes == 0
        assert len(s.diff()) == len(s.tensors)
        assert s.original_nbytes == 0  # one-off reads, not cached


# -- compare ---------------------------------------------------------------------------------------


def test_compare_a_file_with_its_live_model_and_with_an_edited_session(small, file_session):
    same = weightlab.compare(small.path, small.model)
    assert same.a_label == "small.keras" and len(same) == len(file_session.tensors)
    assert len(same.changed()) == 0
    file_session.apply(ZeroNeurons(target="hidden", neurons=[0, 2]))
    edited = weightlab.compare(small.path, file_session)
    assert edited.b_label == "small.keras (edited)"
    assert list(edited) == list(file_session.diff())  # the same numbers as the session's own diff
    assert edited.changed().names() == ["hidden/kernel", "hidden/bias"]
    labelled = weightlab.compare(file_session, small.path, a_label="mine", b_label="stored")
    assert (labelled.a_label, labelled.b_label) == ("mine", "stored")


def test_compare_two_live_models_finds_the_one_changed_tensor(small):
    import keras

    other = keras.models.clone_model(small.model)
    other.set_weights(small.model.get_weights())
    layer = other.get_layer("out")
    layer.bias.assign(keras.ops.convert_to_numpy(layer.bias) + np.float32(1.0))
    d = weightlab.compare(small.model, other)
    assert d.changed().names() == ["out/bias"]
    bias = d.get("out/bias")
    assert bias is not None and bias.changed == 3 and bias.max_abs == pytest.approx(1.0, rel=1e-6)


def test_compare_refuses_different_architectures_and_non_models(small, demo_paths):
    with pytest.raises(FormatError, match="not the same tensors") as info:
        weightlab.compare(small.path, demo_paths["keras"])
    assert info.value.path == str(demo_paths["keras"])
    with pytest.raises(TypeError, match=r"weightlab\.compare: expected"):
        weightlab.compare(small.path, [1, 2])


# -- evaluate: every data form ---------------------------------------------------------------------


def test_evaluate_with_npz_arrays_and_a_dataset_agree_with_keras(small):
    import tensorflow as tf

    expected = float(np.mean(_predicted(small.model, small.x) == small.y))
    assert 0.4 < expected < 1.0  # learned something, and not everything: the comparisons below can fail
    from_file = weightlab.evaluate(small.path, small.npz)
    from_arrays = weightlab.evaluate(small.model, (small.x, small.y))
    dataset = tf.data.Dataset.from_tensor_slices((small.x, small.y)).batch(32)
    from_dataset = weightlab.evaluate(small.model, dataset)
    for m in (from_file, from_arrays, from_dataset):
        assert m.labels and m.num_samples == N
        assert m.accuracy == pytest.approx(expected, abs=1e-12)
        assert m.baseline is None  # nothing edited
    keras_loss = small.model.evaluate(small.x, small.y, verbose=0, return_dict=True)["loss"]
    assert from_arrays.loss == pytest.approx(keras_loss, rel=1e-4)
    assert from_file.loss == pytest.approx(from_arrays.loss, rel=1e-5)


def test_evaluate_an_edited_session_without_labels_measures_agreement(small, live_session):
    import tensorflow as tf

    live_session.apply(ZeroNeurons(target="hidden", neurons=[0, 1, 2]))
    edited = live_session.to_keras()
    agreement = float(np.mean(_predicted(edited, small.x) == _predicted(small.model, small.x)))
    assert agreement < 1.0  # the ablation changed some predictions
    for data in (small.x, tf.data.Dataset.from_tensor_slices(small.x).batch(50)):
        m = weightlab.evaluate(live_session, data)
        assert not m.labels and m.num_samples == N
        assert m.agreement == pytest.approx(agreement, abs=1e-12)
    labelled = live_session.evaluate((small.x, small.y))
    assert labelled.accuracy == pytest.approx(float(np.mean(_predicted(edited, small.x) == small.y)), abs=1e-12)
    assert labelled.baseline is not None
    assert labelled.baseline.accuracy == pytest.approx(float(np.mean(_predicted(small.model, small.x) == small.y)))


# -- to_keras ------------------------------------------------------------------------------------


def test_to_keras_round_trip_equals_the_edited_arrays_and_leaves_the_source_alone(small, live_session):
    before = _weights(small.model)
    live_session.apply(ZeroNeurons(target="hidden", neurons=[3]))
    live_session.apply(Scale(target="out/kernel", factor=0.5))
    back = live_session.to_keras()
    assert back is not small.model
    with weightlab.open(back) as again:
        assert list(again.tensors) == list(live_session.tensors)
        for name in live_session.tensors:
            np.testing.assert_array_equal(again.array(name), live_session.array(name), err_msg=name)
    for old, now in zip(before, _weights(small.model), strict=True):
        np.testing.assert_array_equal(old, now)  # the source model is untouched
    # Compiled like the source: Keras evaluates it at once, with our accuracy.
    keras_acc = back.evaluate(small.x, small.y, verbose=0, return_dict=True)["accuracy"]
    assert keras_acc == pytest.approx(weightlab.evaluate(live_session, (small.x, small.y)).accuracy, abs=1e-6)


def test_to_keras_of_a_file_session_holds_its_edits(small, file_session):
    file_session.apply(Clip(target="conv/kernel", min=-0.1, max=0.1))
    back = weightlab.to_keras(file_session)
    with weightlab.open(back) as again:
        for name in file_session.tensors:
            np.testing.assert_array_equal(again.array(name), file_session.array(name), err_msg=name)
    assert not np.array_equal(file_session.array("conv/kernel"), file_session.original("conv/kernel"))


# -- the namespace ---------------------------------------------------------------------------------


def test_import_weightlab_is_light_and_the_readme_import_line_works():
    code = (
        "import sys, weightlab\n"
        "from weightlab.edits import Clip, ZeroNeurons, PruneMagnitude\n"
        "heavy = ('tensorflow', 'keras', 'tf_keras', 'PySide6', 'pyqtgraph', 'h5py', 'matplotlib', 'pandas')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "print(weightlab.Session.__module__, weightlab.PruneMagnitude is PruneMagnitude)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[]", "weightlab.session True"]


def test_all_names_the_whole_public_api():
    missing = [n for n in weightlab.__all__ if not hasattr(weightlab, n)]
    assert missing == []
    exported = set(weightlab.__all__)
    edits = {cls.__name__ for cls in EDIT_TYPES.values()}
    assert edits - exported == set()
    for name in ("Session", "EditSession", "Metrics", "ModelDiff", "TensorDiff", "SweepResult", "RankResult",
                 "Plan", "FinetuneResult", "PruneRetrainResult", "WeightLabError", "FormatError",
                 "UnsafeFileError", "RecipeError", "DataError", "EngineError", "open", "evaluate", "to_keras",
                 "Viewer", "NoDisplayError", "compare", "show", "run", "sweep", "rank", "plan", "finetune", "prune_retrain"):  # fmt: skip
        assert name in exported, name
    assert issubclass(weightlab.Session, EditSession)


@pytest.mark.parametrize("name", weightlab.api.__all__)
def test_every_api_function_documents_each_parameter_and_what_it_returns(name):
    """The numpydoc sections mkdocstrings renders: each parameter once, Returns (unless None), Raises parse."""
    import griffe

    fn = getattr(weightlab, name)
    doc = griffe.Docstring(inspect.getdoc(fn) or "", parser="numpy")
    sections = {s.kind.value: s for s in doc.parse()}
    params = [
        ("**" if p.kind is p.VAR_KEYWORD else "") + p.name for p in inspect.signature(fn).parameters.values()
    ]
    documented = [p.name for p in sections["parameters"].value] if "parameters" in sections else []
    assert documented == params or sorted(documented) == sorted(params), (documented, params)
    if inspect.signature(fn).return_annotation not in ("None", None):
        assert "returns" in sections, name
