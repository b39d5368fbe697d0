"""The window's Training tab (weightlab.gui.training_panel, training_plot, controllers.training).

Fast tests play the engine with tests/fakes.py (the real JobBook): the form builds the
spec, the partials are drawn, Cancel asks the job to stop and still takes its result,
the result lands as one undoable history step. One test trains the demo with the real
engine end to end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.gui

training = pytest.importorskip("weightlab.core.training")


@pytest.fixture
def fake_window(make_window, demo_paths):
    """A window on the demo model whose engine is a FakeEngine; ``w.fake`` is its client."""
    from tests.fakes import FakeEngine
    from weightlab.gui.engine_adapter import EngineAdapter

    engine = FakeEngine()
    w = make_window(EngineAdapter(client_factory=engine))
    assert w.open_and_wait(demo_paths["keras"], demo_paths["data"])
    w.fake = engine.clients[-1]
    w.views.setCurrentWidget(w.training.panel)
    return w


@pytest.fixture
def train_npz(demo_paths):
    path = demo_paths["data"].with_name("digits_train.npz")
    if not path.exists():
        pytest.skip("the demo's training split is not shipped yet")
    return path


def _set_train(w, path):
    w.training.panel.train_edit.setText(str(path))
    w.training._train_changed()


def _started(w, job):
    from weightlab.engine.protocol import JobStarted

    w.fake.worker_sends(JobStarted(job))


def _send(w, job, partial, fraction=None, message=""):
    from weightlab.engine.protocol import JobProgress

    w.fake.worker_sends(JobProgress(job, fraction, message, partial))


def _epoch(e, loss, acc, val_loss, val_acc, held, tensors=None):
    rec = training.EpochRecord(e, loss, acc, val_loss, val_acc, held, 0.3, 0.001, 1.5)
    return {"type": "epoch", **rec.to_dict(), "tensors": tensors or {}, "eta_s": 3.0, "device": "CPU (test)"}


def _trained_arrays(w, scale=0.5):
    s = w.session
    return {"dense/kernel": (np.asarray(s.array("dense/kernel")) * scale).astype(np.float32),
            "dense/bias": (np.asarray(s.array("dense/bias")) + 0.25).astype(np.float32)}


def _result(spec, arrays, **kw):
    history = [training.EpochRecord(1, 0.5, 0.8, 0.6, 0.75, 0.9, 0.35, 0.001, 1.0),
               training.EpochRecord(2, 0.4, 0.85, 0.55, 0.8, 0.92, 0.3, 0.001, 1.0)]
    fields = dict(history=history, best_epoch=None, final={"accuracy": 0.92, "loss": 0.3}, arrays=arrays,
                  label=spec.describe(), device="CPU (test)", seconds=2.0)
    fields.update(kw)
    return training.FinetuneResult(**fields)


# -- the form -> the spec -------------------------------------------------------------------


def test_the_form_builds_the_finetune_spec(fake_window, train_npz):
    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    w.show_tensor("dense/kernel")
    w.settle()
    p.val_kind.setCurrentIndex(p.val_kind.findData("split"))
    p.val_split.setValue(0.2)
    p.optimizer_combo.setCurrentIndex(p.optimizer_combo.findData("sgd"))
    p.momentum_spin.setValue(0.8)
    p.lr_edit.setText("0.01")
    p.epochs_spin.setValue(3)
    p.batch_spin.setValue(16)
    p.seed_spin.setValue(7)
    p.keep_masks.setChecked(False)
    p.schedule_combo.setCurrentIndex(p.schedule_combo.findData("exponential_decay"))
    p.schedule_fields["exponential_decay"].set_value("decay_steps", 50)
    p.schedule_fields["exponential_decay"].set_value("decay_rate", 0.5)
    p.early_group.setChecked(True)
    p.es_monitor.setCurrentText("val_accuracy")
    p.es_patience.setValue(2)
    p.es_start.setValue(1)
    p.l2_edit.setText("0.01")
    p.reg_scope.setCurrentIndex(p.reg_scope.findData("selection"))
    w.tree.select_targets(["dense", "dense_1/kernel"])
    p.constraint_combo.setCurrentIndex(p.constraint_combo.findData("max_norm"))
    p.constraint_fields["max_norm"].set_value("max_value", 3.0)
    p.clip_check.setChecked(True)
    p.clip_edit.setText("0.5")
    p.pruning_group.setChecked(True)
    p.gp_initial.setValue(0.3)
    p.gp_final.setValue(0.7)
    p.gp_begin.setValue(0)
    p.gp_end.setValue(100)
    p.gp_frequency.setValue(10)
    p.gp_scope.setCurrentIndex(p.gp_scope.findData("global"))
    p.on_cancel.setCurrentIndex(p.on_cancel.findData("last"))
    w.tree.set_frozen(["conv2d"])
    spec = ctl.make_spec()
    assert isinstance(spec, training.FinetuneSpec)
    assert spec.train == str(train_npz) and spec.val is None and spec.val_split == pytest.approx(0.2)
    assert spec.heldout == str(w.data_path)
    assert (spec.optimizer, spec.momentum, spec.lr, spec.epochs, spec.batch_size, spec.seed) == (
        "sgd", pytest.approx(0.8), 0.01, 3, 16, 7)
    assert spec.keep_masks is False
    assert spec.schedule == {"kind": "exponential_decay", "decay_steps": 50, "decay_rate": 0.5, "staircase": False}
    assert spec.early_stopping == {"monitor": "val_accuracy", "patience": 2, "min_delta": 0.0,
                                   "start_from_epoch": 1, "restore_best_weights": True}
    assert spec.regularizers == ({"layers": ["dense", "dense_1"], "l1": 0.0, "l2": 0.01},)
    assert spec.constraints == ({"layers": ["dense", "dense_1"], "kind": "max_norm", "max_value": 3.0},)
    assert spec.clip_weights == 0.5
    assert spec.pruning["scope"] == "global"
    sched = spec.pruning["schedule"]
    assert (sched["kind"], sched["initial_sparsity"], sched["final_sparsity"], sched["begin_step"],
            sched["end_step"], sched["frequency"]) == ("polynomial_decay", 0.3, 0.7, 0, 100, 10)
    assert spec.freeze == ("conv2d",)
    assert spec.watch == ("dense/kernel",)
    assert spec.on_cancel == "last"
    assert spec.new_head is None and spec.reduce_lr is None


def test_prune_and_retrain_mode_builds_its_spec(fake_window, train_npz):
    w = fake_window
    p = w.training.panel
    _set_train(w, train_npz)
    p.mode_combo.setCurrentIndex(p.mode_combo.findData("prune_retrain"))
    assert p.pr_group.isVisibleTo(p) and not p.pruning_group.isEnabled()
    p.epochs_spin.setValue(2)
    p.pr_rounds.setValue(3)
    p.pr_threshold.setText("0.04")
    p.pr_factor.setValue(0.8)
    p.pr_budget.setValue(2.0)
    spec = w.training.make_spec()
    assert isinstance(spec, training.PruneRetrainSpec)
    assert (spec.rounds, spec.threshold, spec.factor, spec.sparsities, spec.budget_pp) == (
        3, 0.04, pytest.approx(0.8), (), 2.0)
    assert spec.finetune["epochs"] == 2 and spec.finetune["keep_masks"] is True
    assert spec.finetune["heldout"] == str(w.data_path)
    p.pr_by.setCurrentIndex(p.pr_by.findData("sparsity"))
    p.pr_sparsities.setText("0.5,0.7,0.8")
    spec = w.training.make_spec()
    assert spec.threshold is None and spec.sparsities == (0.5, 0.7, 0.8)
    assert [spec.round_sparsity(r) for r in (1, 2, 3)] == [0.5, 0.7, 0.8]
    p.pr_sparsities.setText("0.5,0.7")
    assert w.training.start() is None
    assert "sparsities" in p.message.text() and "3 round(s), 2 value(s)" in p.message.text()
    assert w.fake.submitted == []


def test_bad_fields_and_missing_things_are_said_and_nothing_is_submitted(fake_window, train_npz, make_window,
                                                                         demo_paths):
    from weightlab.gui.engine_adapter import EngineAdapter

    w = fake_window
    p, ctl = w.training.panel, w.training
    assert ctl.start() is None
    assert "train" in p.message.text() and "training data" in p.message.text()
    _set_train(w, train_npz)
    p.lr_edit.setText("fast")
    assert ctl.start() is None
    assert "'learning rate'" in p.message.text() and "fast" in p.message.text()
    p.lr_edit.setText("")
    p.schedule_combo.setCurrentIndex(p.schedule_combo.findData("cosine_decay"))
    p.plateau_group.setChecked(True)
    assert ctl.start() is None  # the spec refuses a schedule with ReduceLROnPlateau
    assert "reduce_lr" in p.message.text()
    assert w.fake.submitted == []
    # no held-out set: Start is disabled with the reason
    w.workspace.set_data_path(None, force=True)
    assert not p.start_button.isEnabled() and "held-out set" in p.reason.text()
    assert ctl.start() is None
    # evaluation off
    off = make_window(EngineAdapter(enabled=False))
    assert off.open_and_wait(demo_paths["keras"], demo_paths["data"])
    assert "Training is off: evaluation is disabled" in off.training.panel.reason.text()
    assert not off.training.panel.start_button.isEnabled()


def test_a_model_keras_cannot_rebuild_cannot_be_trained(make_window, tmp_path):
    from tests.fakes import memory_session
    from weightlab.gui.controllers.training import trainable_reason
    from weightlab.gui.engine_adapter import EngineAdapter

    w = make_window(EngineAdapter(enabled=False))
    s = memory_session(tmp_path / "weights.h5", {"d/kernel": np.ones((2, 2), np.float32)}, fmt="weights.h5")
    w.set_session(s, tmp_path / "data.npz")
    reason = w.training.panel.reason.text()
    assert "Training needs a Keras model (.keras or .h5 with its architecture)" in reason
    assert "weights.h5" in reason
    assert not w.training.panel.start_button.isEnabled()
    h5 = memory_session(tmp_path / "bare.h5", {"d/kernel": np.ones((2, 2), np.float32)}, fmt="h5")
    assert "bare.h5 has no architecture" in trainable_reason(h5.model)


# -- the schedule preview ---------------------------------------------------------------------


def test_the_schedule_preview_is_the_schedule_over_the_training_steps(fake_window, train_npz, qtbot):
    from weightlab.core.schedules import LRSchedule
    from weightlab.gui.training_panel import ASSUMED_STEPS_PER_EPOCH

    w = fake_window
    p = w.training.panel
    p.schedule_combo.setCurrentIndex(p.schedule_combo.findData("exponential_decay"))
    p.schedule_fields["exponential_decay"].set_value("decay_steps", 30)
    p.lr_edit.setText("0.01")
    p.epochs_spin.setValue(2)
    p.update_schedule_preview()
    # the training set's size is not known yet: steps per epoch are assumed, and said so
    assert p.schedule_plot.values().size == 2 * ASSUMED_STEPS_PER_EPOCH
    assert "assumed" in p.schedule_plot.message.text()
    _set_train(w, train_npz)
    with np.load(train_npz) as z:
        n = z["x"].shape[0]
    p.val_split.setValue(0.1)
    p.batch_spin.setValue(32)
    p.update_schedule_preview()
    steps = math.ceil(int(n * 0.9) / 32)
    rates = p.schedule_plot.values()
    assert rates.size == 2 * steps
    # Keras' ExponentialDecay: lr * rate ** (step / decay_steps)
    np.testing.assert_allclose(rates, 0.01 * 0.9 ** (np.arange(2 * steps) / 30), rtol=1e-12)
    # the preview follows the fields on its own (one event-loop turn later)
    p.schedule_combo.setCurrentIndex(p.schedule_combo.findData("piecewise_constant_decay"))
    p.schedule_fields["piecewise_constant_decay"].set_value("boundaries", [10, 40])
    p.schedule_fields["piecewise_constant_decay"].set_value("values", [0.1, 0.01, 0.001])
    qtbot.waitUntil(lambda: p.schedule_plot.values()[:1].tolist() == [0.1])
    expect = LRSchedule.from_dict({"kind": "piecewise_constant_decay", "boundaries": [10, 40],
                                   "values": [0.1, 0.01, 0.001]}).values(np.arange(2 * steps), 0.01)
    np.testing.assert_array_equal(p.schedule_plot.values(), expect)
    assert set(np.unique(expect)) == {0.1, 0.01, 0.001}
    p.schedule_fields["piecewise_constant_decay"].set_value("values", "0.1/abc")
    qtbot.waitUntil(lambda: p.schedule_plot.values().size == 0)
    assert "values" in p.schedule_plot.message.text()


# -- running: live partials, cancel, the history step ----------------------------------------------


def test_partials_are_drawn_live_and_the_result_is_one_undoable_step(fake_window, train_npz, qtbot):
    from weightlab.engine.protocol import JobResult
    from weightlab.gui.training_plot import histogram_pair

    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    w.show_tensor("dense/kernel")
    w.settle()
    p.epochs_spin.setValue(2)
    before = {n: np.array(w.session.array(n)) for n in w.session.model.tensors}
    job = ctl.start()
    assert job is not None and ctl.running
    spec = dict(w.fake.submitted)[job]
    assert isinstance(spec, training.FinetuneSpec) and spec.watch == ("dense/kernel",)
    assert p.cancel_button.isEnabled() and not p.start_button.isEnabled()
    _started(w, job)
    for b in (1, 2):
        _send(w, job, {"type": "batch", "epoch": 1, "batch": b, "batches": 4, "step": b, "loss": 1.0 / b,
                       "lr": 0.001}, fraction=b / 8)
    trained1 = (before["dense/kernel"] * 0.9).astype(np.float32)
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9, {"dense/kernel": trained1}), fraction=0.5)
    _send(w, job, {"type": "sparsity", "step": 3, "sparsity": 0.25})
    qtbot.waitUntil(lambda: p.plot.series("loss")[0].size == 1)
    x, y = p.plot.series("batch_loss")
    np.testing.assert_allclose(x, [0.25, 0.5])
    np.testing.assert_allclose(y, [1.0, 0.5])
    np.testing.assert_allclose(p.plot.series("heldout_accuracy")[1], [90.0])
    np.testing.assert_allclose(p.plot.series("val_accuracy")[1], [75.0])
    np.testing.assert_allclose(p.plot.series("val_loss")[1], [0.6])
    np.testing.assert_allclose(p.plot.series("sparsity")[1], [25.0])
    # the histogram of the watched tensor after epoch 1, over its pre-training ghost (counted off-thread)
    edges, ghost, counts = histogram_pair(before["dense/kernel"], trained1)
    qtbot.waitUntil(lambda: p.plot.histogram_epoch == 1)
    assert p.plot.tensor_name == "dense/kernel"
    gx, gy = p.plot.curves["ghost"].getData()
    cx, cy = p.plot.curves["current"].getData()
    np.testing.assert_array_equal(gy, ghost)
    np.testing.assert_array_equal(cy, counts)
    assert not np.array_equal(gy, cy)
    assert "CPU (test)" in p.plot.status.text() and "ETA" in p.plot.status.text()
    # the result: one history step with the trained arrays, labelled like the spec
    arrays = _trained_arrays(w)
    w.fake.worker_sends(JobResult(job, _result(spec, arrays)))
    qtbot.waitUntil(lambda: len(w.session.steps) == 1, timeout=20_000)
    w.wait_idle()
    assert not ctl.running and p.start_button.isEnabled()
    step = w.session.steps[0].edit
    assert step.op == "trained" and step.describe() == spec.describe() == "fine-tune 2 epochs, lr auto, masks kept"
    for name, a in arrays.items():
        np.testing.assert_array_equal(w.session.array(name), a)
    for name in set(before) - set(arrays):
        np.testing.assert_array_equal(w.session.array(name), before[name])
    assert "Applied as one step" in p.message.text()
    # what it bought: from the opened file to the trained weights
    qtbot.waitUntil(lambda: ctl.savings is not None, timeout=30_000)
    from weightlab.core.savings import savings

    want = savings(w.session.model, {}, arrays)
    assert ctl.savings.to_json()["overall"] == want.to_json()["overall"]
    assert f"→ {100 * want.sparsity_after:.1f} %" in p.summary.text()
    # it says what the sparsity counts: the kernels, and all weights
    assert f"kernels <b>{100 * want.kernel_sparsity_before:.1f} → {100 * want.kernel_sparsity_after:.1f} % zero" \
        in p.summary.text()
    assert f"all weights {100 * want.sparsity_before:.1f} → {100 * want.sparsity_after:.1f} %" in p.summary.text()
    assert "gzip" in p.summary.text() and want.table() in p.summary.toolTip()
    assert w.undo()
    w.wait_idle()
    for name, a in before.items():
        np.testing.assert_array_equal(w.session.array(name), a)
    assert w.errors == []


def test_cancel_asks_the_job_to_stop_and_keeps_what_it_returns(fake_window, train_npz, qtbot):
    from weightlab.engine.protocol import JobResult

    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    p.on_cancel.setCurrentIndex(p.on_cancel.findData("best"))
    job = ctl.start()
    spec = dict(w.fake.submitted)[job]
    assert spec.on_cancel == "best"
    _started(w, job)
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9))
    p.cancel_button.click()
    # stopped, not cancelled: the job is still listened to and its result still comes
    assert w.fake.stopped_jobs == [job] and job not in w.fake.cancelled_jobs
    assert "keeping the best" in p.message.text()
    arrays = _trained_arrays(w, 0.75)
    result = _result(spec, arrays, cancelled=True, kept="best", best_epoch=1,
                     label=spec.describe() + ", cancelled, kept best")
    w.fake.worker_sends(JobResult(job, result))
    qtbot.waitUntil(lambda: len(w.session.steps) == 1, timeout=20_000)
    w.wait_idle()
    assert w.session.steps[0].edit.describe().endswith("cancelled, kept best")
    np.testing.assert_array_equal(w.session.array("dense/kernel"), arrays["dense/kernel"])


def test_a_failed_or_cancelled_job_applies_nothing(fake_window, train_npz, qtbot):
    from weightlab.engine.protocol import JobCancelled

    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    job = ctl.start()
    w.fake.fail(job, "the training data has 3 classes but the model 10 outputs")
    qtbot.waitUntil(lambda: not ctl.running)
    assert "Training failed: the training data has 3 classes" in p.message.text()
    job = ctl.start()
    _started(w, job)
    p.cancel_button.click()
    w.fake.worker_sends(JobCancelled(job))  # stopped before its first epoch
    qtbot.waitUntil(lambda: not ctl.running)
    assert "nothing kept" in p.message.text()
    assert w.session.steps == [] and w.errors == []


def test_prune_and_retrain_rounds_are_charted_and_applied(fake_window, train_npz, qtbot):
    from weightlab.engine.protocol import JobResult

    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    p.mode_combo.setCurrentIndex(p.mode_combo.findData("prune_retrain"))
    p.pr_rounds.setValue(2)
    job = ctl.start()
    spec = dict(w.fake.submitted)[job]
    assert isinstance(spec, training.PruneRetrainSpec)
    _started(w, job)
    rounds = [training.RoundRecord(1, 0.4, 0.93, 0.2, 0.05), training.RoundRecord(2, 0.55, 0.91, 0.3, 0.04)]
    # the baseline comes as round 0; each round's fine-tune streams its epochs (from 1) with its round
    _send(w, job, {"type": "round", "round": 0, "sparsity": 0.0, "accuracy": 0.95, "loss": 0.2, "threshold": None})
    for r in rounds:
        for e in (1, 2):
            _send(w, job, {**_epoch(e, 1.0 / (r.round + e), 0.8, 0.6, 0.75, 0.9), "round": r.round})
        _send(w, job, {"type": "round", **r.to_dict()})
    qtbot.waitUntil(lambda: p.plot.series("round_sparsity")[0].size == 3)
    np.testing.assert_allclose(p.plot.series("round_sparsity")[0], [0, 1, 2])
    np.testing.assert_allclose(p.plot.series("round_sparsity")[1], [0.0, 40.0, 55.0])
    np.testing.assert_allclose(p.plot.series("round_accuracy")[1], [95.0, 93.0, 91.0])
    # the round's message says what its sparsity counts (the pruned targets)
    assert p.message.text().startswith(f"round 2: {spec.target} 55.0 % zero")
    # the rounds' epochs are drawn one after another (E epochs per round)
    per_round = spec.finetune["epochs"]
    np.testing.assert_allclose(p.plot.series("loss")[0], [1, 2, per_round + 1, per_round + 2])
    arrays = _trained_arrays(w, 0.0)
    rounds.append(training.RoundRecord(3, 0.6, 0.9, 0.3, 0.03))  # a round whose partial never came
    result = training.PruneRetrainResult(rounds, {"accuracy": 0.95, "loss": 0.2}, arrays, spec.describe())
    w.fake.worker_sends(JobResult(job, result))
    qtbot.waitUntil(lambda: p.plot.series("round_sparsity")[0].size == 4)
    np.testing.assert_allclose(p.plot.series("round_sparsity")[1], [0.0, 40.0, 55.0, 60.0])
    qtbot.waitUntil(lambda: len(w.session.steps) == 1, timeout=20_000)
    w.wait_idle()
    assert w.session.steps[0].edit.describe() == spec.describe()
    assert not np.any(w.session.array("dense/kernel"))


def test_events_of_other_jobs_and_of_an_old_model_are_ignored(fake_window, train_npz, qtbot, demo_paths):
    from weightlab.core.jobs import EvaluateSpec

    w = fake_window
    ctl = w.training
    _set_train(w, train_npz)
    other = w.fake.submit(EvaluateSpec(live=False))
    job = ctl.start()
    _started(w, other)
    _send(w, other, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9))
    _started(w, job)
    _send(w, job, _epoch(1, 0.4, 0.8, 0.6, 0.75, 0.9))
    qtbot.waitUntil(lambda: ctl.panel.plot.series("loss")[0].size == 1)
    np.testing.assert_allclose(ctl.panel.plot.series("loss")[1], [0.4])
    # opening the model again forgets the job
    assert w.open_and_wait(demo_paths["keras"], demo_paths["data"])
    assert not ctl.running and ctl.panel.plot.series("loss")[0].size == 0


# -- the Freeze column -------------------------------------------------------------------------------


def test_freeze_column_feeds_the_spec_and_all_but_last_n_ticks_it(fake_window, train_npz, qtbot):
    w = fake_window
    p, tree = w.training.panel, w.tree
    _set_train(w, train_npz)
    with_weights = [layer.name for layer in w.session.model.layers if layer.tensors]
    assert with_weights == ["conv2d", "batch_normalization", "conv2d_1", "dense", "dense_1"]
    assert tree.frozen_layers() == []
    p.train_last_spin.setValue(2)
    assert tree.frozen_layers() == ["conv2d", "batch_normalization", "conv2d_1"]
    assert "frozen (3)" in p.freeze_label.text()
    assert w.training.make_spec().freeze == ("conv2d", "batch_normalization", "conv2d_1")
    # a click on a box changes it (the user's own ticks)
    from PySide6.QtCore import Qt

    from weightlab.gui.model_tree import _FREEZE

    item = tree._layer_items["dense"]
    with qtbot.waitSignal(tree.frozenChanged) as sig:
        item.setCheckState(_FREEZE, Qt.CheckState.Checked)
    assert sig.args == [["conv2d", "batch_normalization", "conv2d_1", "dense"]]
    assert w.training.make_spec().freeze == ("conv2d", "batch_normalization", "conv2d_1", "dense")
    # layers without weights have no box
    assert tree._layer_items["flatten"].data(_FREEZE, Qt.ItemDataRole.CheckStateRole) is None
    tree.set_frozen([])
    assert w.training.make_spec().freeze == ()


# -- end to end, with the real engine ---------------------------------------------------------------


def test_real_finetune_on_the_demo_keeps_pruned_weights_at_zero(make_window, demo_paths, train_npz, qtbot):
    """Prune the demo's dense kernel, fine-tune one epoch in the real engine with masks kept: one
    history step, the pruned entries still exactly zero, the others trained, the live evaluation of
    the step equals the job's own held-out figure, and what it bought is shown."""
    from weightlab.core.edits import PruneMagnitude

    w = make_window(None)
    assert w.open_and_wait(demo_paths["keras"], demo_paths["data"])
    p, ctl = w.training.panel, w.training
    w.views.setCurrentWidget(p)
    assert w.apply_edit(PruneMagnitude(target="dense/kernel", sparsity=0.8))
    w.wait_idle()
    pruned = np.array(w.session.array("dense/kernel"))
    mask = pruned == 0
    assert mask.mean() == pytest.approx(0.8, abs=0.01)
    w.show_tensor("dense/kernel")
    w.settle()
    # the engine trains the edits it holds: wait for the live evaluation of the pruned model
    qtbot.waitUntil(lambda: 1 in w.eval_panel._by_step, timeout=120_000)
    _set_train(w, train_npz)
    p.epochs_spin.setValue(1)
    p.batch_spin.setValue(64)
    p.lr_edit.setText("0.001")
    epochs: list[dict] = []
    w.engine.jobProgress.connect(lambda ev: epochs.append(ev.partial) if ev.job_id == ctl.job_id and isinstance(
        ev.partial, dict) and ev.partial.get("type") == "epoch" else None)
    job = ctl.start()
    assert job is not None, p.message.text()
    qtbot.waitUntil(lambda: not ctl.running, timeout=240_000)
    assert ctl.result is not None, p.message.text()
    qtbot.waitUntil(lambda: len(w.session.steps) == 2, timeout=60_000)
    w.wait_idle()
    step = w.session.steps[1].edit
    assert step.op == "trained" and step.describe().startswith("fine-tune 1 epoch, lr 0.001, masks kept")
    trained = np.asarray(w.session.array("dense/kernel"))
    assert np.all(trained[mask] == 0)  # exactly zero: masks kept
    assert not np.array_equal(trained[~mask], pruned[~mask])  # the rest trained
    # live: one epoch drawn, with the watched tensor's histogram after it
    assert len(epochs) == 1 and p.plot.series("loss")[0].tolist() == [1.0]
    qtbot.waitUntil(lambda: p.plot.histogram_epoch == 1, timeout=10_000)
    # the window's live evaluation of the new step equals the job's final held-out accuracy
    position = w.session.position
    qtbot.waitUntil(lambda: position in w.eval_panel._by_step, timeout=120_000)
    assert w.eval_panel._by_step[position][1] == pytest.approx(ctl.result.final["accuracy"], abs=1e-6)
    # what it bought, computed off the window's thread
    qtbot.waitUntil(lambda: ctl.savings is not None, timeout=60_000)
    assert "What it bought" in p.summary.text() and "removable" in p.summary.text()
    # from the opened file to now: the pruned entries are what it bought, and training kept them
    dense = next(layer for layer in ctl.savings.layers if layer.layer == "dense")
    assert dense.kernel_sparsity_before == 0.0
    assert dense.kernel_sparsity_after == pytest.approx(mask.mean())
    assert w.errors == []


def test_histograms_landing_out_of_order_never_draw_an_older_epoch(fake_window, train_npz, qtbot, monkeypatch):
    """The pool may finish the pre-training histogram after epoch 1's: the newest request wins."""
    w = fake_window
    ctl = w.training
    _set_train(w, train_npz)
    w.show_tensor("dense/kernel")
    w.settle()
    held: list = []
    monkeypatch.setattr(ctl, "_in_pool", lambda fn, on_done, on_failed=None: held.append((fn, on_done)))
    job = ctl.start()
    _started(w, job)
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9,
                         {"dense/kernel": np.full_like(w.session.array("dense/kernel"), 0.5)}))
    qtbot.waitUntil(lambda: len(held) == 2)
    (fn0, done0), (fn1, done1) = held
    done1(fn1())  # epoch 1 lands first
    done0(fn0())  # then the (older) pre-training one
    assert ctl.panel.plot.histogram_epoch == 1
    assert ctl.panel.plot.curves["current"].getData()[1].max() == w.session.array("dense/kernel").size


def test_a_narrow_tab_puts_set_up_and_curves_on_two_tabs_with_cancel_beside_the_curves(qtbot):
    from weightlab.gui.training_panel import NARROW, TrainingPanel

    p = TrainingPanel()
    qtbot.addWidget(p)
    p.resize(NARROW + 300, 500)
    p.show()
    qtbot.waitUntil(lambda: p.body.isVisible())
    assert not p.narrow and not p.live_cancel.isVisible()
    # nothing of the form is cut off: its column is as wide as it asks
    assert p.controls.width() >= p.form_widget.minimumSizeHint().width()
    p.resize(NARROW - 200, 500)
    qtbot.waitUntil(lambda: p.narrow)
    assert p.pages.count() == 2 and p.pages.currentWidget() is p.controls
    p.set_running(True)
    assert p.pages.currentWidget() is p.live  # a job starts: the curves show
    assert p.live_cancel.isVisible() and p.live_cancel.isEnabled()
    with qtbot.waitSignal(p.cancelRequested):
        p.live_cancel.click()
    p.set_running(False)
    assert not p.live_cancel.isEnabled()
    p.resize(NARROW + 300, 500)
    qtbot.waitUntil(lambda: not p.narrow)
    assert p.body.indexOf(p.controls) == 0 and p.body.indexOf(p.live) == 1 and p.pages.count() == 0
    # wide again: both sides are shown, not only re-inserted (the tab went blank)
    qtbot.waitUntil(lambda: p.controls.isVisible() and p.live.isVisible())
    assert p.controls.width() > 0 and p.live.width() > 0


def test_narrow_then_wide_again_shows_both_sides(qtbot):
    from weightlab.gui.training_panel import TrainingPanel

    p = TrainingPanel()
    qtbot.addWidget(p)
    p.resize(1400, 700)
    p.show()
    qtbot.waitUntil(lambda: p.live.isVisible())
    p.resize(600, 700)
    qtbot.waitUntil(lambda: p.narrow)
    p.resize(1400, 700)
    qtbot.waitUntil(lambda: not p.narrow)
    qtbot.waitUntil(lambda: p.controls.isVisible() and p.live.isVisible())
    assert p.plot.isVisible() and p.schedule_plot.isVisible()


def test_a_new_head_is_saved_where_the_user_says_and_offered_to_open(fake_window, train_npz, qtbot, tmp_path):
    from weightlab.engine.protocol import JobResult

    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    p.head_spin.setValue(3)
    asked: list = []
    w._ask_save_path = lambda title, default, filt: asked.append(default) or str(tmp_path / "three")
    job = ctl.start()
    assert asked and asked[0].name == "digits_cnn-head3.keras"
    spec = dict(w.fake.submitted)[job]
    assert spec.new_head == 3 and spec.output == str(tmp_path / "three.keras")
    offered: list = []
    ctl._confirm_open = lambda path: offered.append(path) or False
    w.fake.worker_sends(JobResult(job, _result(spec, {}, saved=spec.output)))
    qtbot.waitUntil(lambda: not ctl.running)
    assert offered == [tmp_path / "three.keras"]
    assert w.session.steps == []  # the structure changed: nothing is applied to this model
    # declining the file dialog starts nothing
    w._ask_save_path = lambda title, default, filt: None
    assert ctl.start() is None and "no file chosen" in p.message.text()


def test_the_analysis_action_shows_the_training_tab(fake_window):
    w = fake_window
    w.views.setCurrentIndex(0)
    w.actions["training.start"].trigger()
    assert w.views.currentWidget() is w.training.panel
    assert w.actions["training.start"].shortcut().toString() == "Ctrl+Shift+T"


def test_real_cancel_keeps_the_last_epoch(make_window, demo_paths, train_npz, qtbot):
    """Cancel with the real engine: the job is asked to stop, still answers, and its last epoch's
    weights land as one step labelled as cancelled."""
    w = make_window(None)
    assert w.open_and_wait(demo_paths["keras"], demo_paths["data"])
    p, ctl = w.training.panel, w.training
    w.show_tensor("dense_1/kernel")
    w.settle()
    _set_train(w, train_npz)
    p.epochs_spin.setValue(50)
    p.batch_spin.setValue(128)
    p.on_cancel.setCurrentIndex(p.on_cancel.findData("last"))
    watched: list[np.ndarray] = []
    w.engine.jobProgress.connect(lambda ev: watched.append(ev.partial["tensors"]["dense_1/kernel"])
                                 if ev.job_id == ctl.job_id and isinstance(ev.partial, dict)
                                 and ev.partial.get("type") == "epoch" else None)
    job = ctl.start()
    assert job is not None, p.message.text()
    qtbot.waitUntil(lambda: len(watched) >= 1, timeout=240_000)
    p.cancel_button.click()
    qtbot.waitUntil(lambda: not ctl.running, timeout=120_000)
    r = ctl.result
    assert r is not None and r.cancelled and r.kept == "last", p.message.text()
    assert 1 <= len(r.history) < 50
    qtbot.waitUntil(lambda: len(w.session.steps) == 1, timeout=60_000)
    w.wait_idle()
    assert "cancelled after" in w.session.steps[0].edit.describe()
    # the kept weights are the last epoch's (streamed after it ended)
    np.testing.assert_array_equal(w.session.array("dense_1/kernel"), watched[len(r.history) - 1])
    assert w.errors == []


def test_pickers_start_in_the_last_folder_used_and_fill_the_fields(fake_window, train_npz, tmp_path):
    w = fake_window
    p, ctl = w.training.panel, w.training
    starts: list = []
    w._ask_open_path = lambda title, filt, start=None: starts.append(start) or str(train_npz)
    assert ctl.browse("train")
    assert starts == [str(w.session.model.path.parent)]  # first: the model's folder
    with np.load(train_npz) as z:
        n = len(z["x"])
    assert p.train_edit.text() == str(train_npz) and p.train_samples == n  # read from the header only
    images = tmp_path / "images"
    images.mkdir()
    w._ask_folder = lambda title, start=None: starts.append(start) or str(images)
    assert ctl.browse("train_folder")
    assert starts[-1] == str(train_npz.parent) and p.train_edit.text() == str(images)
    assert p.train_samples is None  # an image folder's size is not counted on the window's thread
    p.val_kind.setCurrentIndex(p.val_kind.findData("file"))
    assert ctl.browse("val")
    assert starts[-1] == str(images) and p.val_edit.text() == str(train_npz)
    w._ask_open_path = lambda title, filt, start=None: None
    assert not ctl.browse("val") and p.val_edit.text() == str(train_npz)
    spec = ctl.make_spec()
    assert spec.train == str(images) and spec.val == str(train_npz) and spec.val_split is None


def test_the_jobs_area_cancel_of_a_training_job_also_keeps_its_result(fake_window, train_npz, qtbot):
    from weightlab.core.jobs import EvaluateSpec

    w = fake_window
    _set_train(w, train_npz)
    job = w.training.start()
    _started(w, job)
    w.jobs.cancel(job)  # the status bar's Cancel button
    assert w.fake.stopped_jobs == [job] and job not in w.fake.cancelled_jobs
    assert w.training.running  # still listened to: its result will come
    other = w.fake.submit(EvaluateSpec(live=False))
    w.jobs.cancel(other)  # other kinds are cancelled as before
    assert other in w.fake.cancelled_jobs


# -- the walk-through's findings (issue 12, Training tab fixes) -------------------------------------------


def test_heldout_curve_starts_at_epoch_0_and_an_unused_chart_gives_its_room(fake_window, train_npz, qtbot):
    w = fake_window
    p, ctl = w.training.panel, w.training
    from weightlab.engine.protocol import Metrics

    # the window's evaluation of the model as edited: 49 % (the model was pruned hard, say)
    w.fake.finish(w.fake.baseline_job, Metrics(0.49, 1.7, per_class=[0.49] * 10, num_samples=360))
    qtbot.waitUntil(lambda: w.eval_panel.current is not None)
    start_acc = float(w.eval_panel.current.accuracy)
    assert start_acc == pytest.approx(0.49)
    _set_train(w, train_npz)
    p.l2_edit.setText("0.001")
    job = ctl.start()
    assert job is not None
    grid = p.plot._grid
    # no gradual pruning, not prune-and-retrain: no empty chart, the histogram spans the row
    assert p.plot.sparsity.isHidden()
    assert grid.getItemPosition(grid.indexOf(p.plot.histogram)) == (1, 0, 1, 2)
    # the L1/L2 penalty is in the training and validation loss, not in the held-out one: said on the plot
    assert "L1/L2 penalty" in p.plot.loss.plotItem.titleLabel.text
    _started(w, job)
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9))
    qtbot.waitUntil(lambda: p.plot.series("heldout_accuracy")[0].size == 2)
    x, y = p.plot.series("heldout_accuracy")
    np.testing.assert_allclose(x, [0.0, 1.0])
    np.testing.assert_allclose(y, [100 * start_acc, 90.0])


def test_a_pruning_job_keeps_its_chart_and_no_penalty_note_without_regularizers(fake_window, train_npz, qtbot):
    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    p.pruning_group.setChecked(True)
    job = ctl.start()
    assert job is not None
    grid = p.plot._grid
    assert not p.plot.sparsity.isHidden()
    assert grid.getItemPosition(grid.indexOf(p.plot.histogram)) == (1, 0, 1, 1)
    assert "penalty" not in p.plot.loss.plotItem.titleLabel.text
    # the window has not measured the model yet (the fake engine answered nothing): no epoch-0 point
    assert w.eval_panel.step_accuracy() == {}
    _started(w, job)
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9))
    qtbot.waitUntil(lambda: p.plot.series("heldout_accuracy")[0].size == 1)
    np.testing.assert_allclose(p.plot.series("heldout_accuracy")[0], [1.0])


def test_epoch_round_and_step_axes_tick_whole_numbers_only(qtbot):
    from weightlab.gui.training_plot import TrainingPlot

    plot = TrainingPlot()
    qtbot.addWidget(plot)
    for pw in (plot.loss, plot.accuracy, plot.sparsity):
        axis = pw.getAxis("bottom")
        for lo, hi in ((0.0, 3.0), (0.5, 2.5), (0.0, 40.0)):
            levels = axis.tickValues(lo, hi, 400)
            ticks = [v for _spacing, values in levels for v in values]
            assert ticks, (lo, hi)
            assert all(float(v).is_integer() for v in ticks), (lo, hi, levels)
            assert all(lo <= v <= hi for v in ticks)
            assert len(ticks) == len(set(ticks))  # no tick drawn twice


@pytest.mark.parametrize("keep", [True, False])
def test_masked_zeros_are_left_out_of_the_watched_histogram_and_counted_in_its_title(fake_window, train_npz,
                                                                                     qtbot, keep):
    w = fake_window
    p, ctl = w.training.panel, w.training
    _set_train(w, train_npz)
    w.show_tensor("dense/kernel")
    w.settle()
    p.keep_masks.setChecked(keep)
    before = np.array(w.session.array("dense/kernel"))
    job = ctl.start()
    _started(w, job)
    now = before.copy()
    now.ravel()[: int(0.8 * now.size)] = 0.0
    zeros = int(np.count_nonzero(now == 0))
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9, {"dense/kernel": now}))
    qtbot.waitUntil(lambda: p.plot.histogram_epoch == 1)
    _gx, gy = p.plot.curves["ghost"].getData()
    _cx, cy = p.plot.curves["current"].getData()
    title = p.plot.histogram.plotItem.titleLabel.text
    if keep:
        assert cy.sum() == now.size - zeros and gy.sum() == np.count_nonzero(before)
        assert f"{now.size:,} weights, {zeros:,} zeros not drawn" in title
        assert p.plot.histogram_note == f"{now.size:,} weights, {zeros:,} zeros not drawn"
    else:
        assert cy.sum() == now.size and gy.sum() == before.size
        assert "zeros not drawn" not in title


def test_a_constant_rate_preview_reads_the_rate_after_a_run_too(fake_window, train_npz, qtbot):
    """After a run the preview of a constant rate is still a flat line at the rate, the axis from 0."""
    from weightlab.engine.protocol import JobResult

    w = fake_window
    p, ctl = w.training.panel, w.training
    w.resize(1600, 1000)
    w.show()
    _set_train(w, train_npz)
    p.lr_edit.setText("0.002")
    p.epochs_spin.setValue(2)
    p.update_schedule_preview()

    def reads_the_rate() -> bool:
        (_x0, _x1), (y0, y1) = p.schedule_plot.plot.getViewBox().viewRange()
        values = p.schedule_plot.values()
        return (values.size > 0 and bool(np.all(values == 0.002)) and y0 == 0.0
                and y1 == pytest.approx(0.0022) and not p.schedule_plot.plot.getViewBox().state["autoRange"][1])

    assert reads_the_rate()
    job = ctl.start()
    spec = dict(w.fake.submitted)[job]
    _started(w, job)
    _send(w, job, _epoch(1, 0.5, 0.8, 0.6, 0.75, 0.9))
    w.fake.worker_sends(JobResult(job, _result(spec, _trained_arrays(w))))
    qtbot.waitUntil(lambda: len(w.session.steps) == 1, timeout=20_000)
    w.wait_idle()
    assert reads_the_rate()
    p.epochs_spin.setValue(3)  # the preview redrawn after the run
    qtbot.waitUntil(lambda: p.schedule_plot.values().size == 3 * p.steps_per_epoch()[0])
    assert reads_the_rate()


def test_without_the_pruning_chart_the_histogram_gets_a_full_row(qtbot):
    from weightlab.gui.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    plot = panel.plot
    plot.clear(pruning=False)
    panel.resize(1400, 800)
    panel.show()
    qtbot.waitUntil(lambda: plot.histogram.isVisible())
    assert plot.sparsity.isHidden()
    assert plot.histogram.width() > 1.8 * plot.loss.width()
    assert abs(plot.histogram.height() - plot.loss.height()) <= 0.1 * plot.loss.height()
    plot.clear(pruning=True)  # the next job prunes: the chart is back, side by side
    qtbot.waitUntil(lambda: plot.sparsity.isVisible())
    qtbot.waitUntil(lambda: abs(plot.histogram.width() - plot.sparsity.width()) <= 10)
