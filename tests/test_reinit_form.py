"""The window's Re-initialize form: each initializer shows its own arguments and builds the core's edit."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

import weightlab
from weightlab.core.catalogue import CATALOGUE
from weightlab.core.edits import INITIALIZER_PARAMS, INITIALIZERS, Reinit

pytestmark = pytest.mark.gui

ARGS = ("mean", "stddev", "minval", "maxval", "value", "scale", "mode", "distribution", "gain")


def _open(window, path, tensor: str) -> None:
    assert window.open_and_wait(path), window.errors
    window.tree.select(tensor)
    window.settle()
    assert window.current == tensor


def test_each_initializer_shows_its_arguments_and_builds_its_edit(window, demo_paths):
    _open(window, demo_paths["keras"], "dense/kernel")
    panel = window.edit_panel
    panel.select_op("reinit")
    form = panel.form
    assert tuple(
        form.fields["initializer"].itemText(i) for i in range(form.fields["initializer"].count())
    ) == (INITIALIZERS)
    info = CATALOGUE["reinit"]
    for init in INITIALIZERS:
        form.set_values({"initializer": init, "seed": 5})
        shown = {name for name in ARGS if form.form.isRowVisible(form.fields[name])}
        assert shown == set(INITIALIZER_PARAMS[init]), init
        assert form.form.isRowVisible(form.fields["seed"])
        # The edit built gets the shown arguments at their suggested values, and nothing else.
        expected = Reinit(
            target="dense/kernel",
            initializer=init,
            seed=5,
            **{name: info.param(name).suggested for name in INITIALIZER_PARAMS[init]},
        )
        assert panel.build_edit() == expected, init
        assert panel.apply_btn.isEnabled(), (init, panel.apply_btn.toolTip())


def test_an_initializer_that_cannot_fill_the_tensor_disables_apply(window, demo_paths):
    _open(window, demo_paths["keras"], "conv2d_1/kernel")
    panel = window.edit_panel
    panel.select_op("reinit")
    panel.form.set_values({"initializer": "identity"})
    assert not panel.apply_btn.isEnabled()
    assert "identity needs a 2-D tensor" in panel.apply_btn.toolTip()
    assert "'conv2d_1/kernel' has shape" in panel.apply_btn.toolTip()
    panel.form.set_values({"initializer": "orthogonal", "gain": 2.0})
    assert panel.apply_btn.isEnabled(), panel.apply_btn.toolTip()


def test_variance_scaling_through_the_window_equals_the_core(window, demo_paths, qtbot):
    name = "conv2d_1/kernel"
    _open(window, demo_paths["keras"], name)
    panel = window.edit_panel
    panel.select_op("reinit")
    panel.form.set_values(
        {
            "initializer": "variance_scaling",
            "scale": 2.0,
            "mode": "fan_out",
            "distribution": "uniform",
            "seed": 9,
        }
    )
    assert panel.apply_btn.isEnabled(), panel.apply_btn.toolTip()
    position = window.session.position
    qtbot.mouseClick(panel.apply_btn, Qt.MouseButton.LeftButton)
    window.wait_idle()
    assert window.session.position == position + 1, window.errors
    edit = Reinit(
        target=name, initializer="variance_scaling", seed=9, scale=2.0, mode="fan_out", distribution="uniform"
    )
    assert window.session.steps[-1].edit == edit
    ref = weightlab.open(demo_paths["keras"])
    try:
        ref.apply(edit)
        for tensor in ref.model.tensors:
            assert np.array_equal(window.session.array(tensor), ref.array(tensor)), tensor
    finally:
        ref.model.close()
    assert not np.array_equal(window.session.array(name), window.session.original(name))
