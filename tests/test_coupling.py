"""Coupled output groups from stored architectures (pure NumPy: configs as dicts, models in memory)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sweepfixtures import functional, layer, residual_config, residual_model

from weightlab.core.coupling import CoupledGroup, Member, coupled_groups, find_group, group_of
from weightlab.core.errors import RecipeError
from weightlab.core.model import ModelFile


def _by_id(groups: list[CoupledGroup]) -> dict[str, CoupledGroup]:
    return {g.id: g for g in groups}


@pytest.mark.parametrize("keras2", [False, True], ids=["keras3", "keras2"])
def test_residual_stream_is_one_group_through_batchnorm_and_relu(keras2):
    groups = _by_id(coupled_groups(residual_config(keras2)))
    assert set(groups) == {"group:add", "group:conv1+bn1"}
    stream = groups["group:add"]
    # add = stem (through stem_bn, relu) + conv2 (through bn2); add2 = add (through relu) + conv3:
    # the two adds share the stream, so all three producers are tied.
    assert stream.kind == "merge" and stream.layers == ("stem", "conv2", "conv3")
    assert stream.merges == ("add", "add2")
    assert [m.batchnorm for m in stream.members] == ["stem_bn", "bn2", None]
    assert stream.complete and stream.channels == 8
    assert "Add 'add'" in stream.reason and "Add 'add2'" in stream.reason
    # conv1 feeds only conv2 (no merge): its own BatchNorm pairs with it.
    inner = groups["group:conv1+bn1"]
    assert inner.kind == "batchnorm" and inner.layers == ("conv1",) and inner.members[0].batchnorm == "bn1"
    # The head is in no group.
    assert group_of("head", groups.values()) is None
    assert group_of("conv3", groups.values()) is stream


def test_model_file_gives_the_same_groups_and_widths_from_its_tensors():
    model = residual_model()
    assert [g.to_dict() for g in coupled_groups(model)] == [g.to_dict() for g in coupled_groups(residual_config())]
    json.dumps([g.to_dict() for g in coupled_groups(model)])  # JSON values only


def test_widths_come_from_tensors_when_the_config_has_none():
    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 6]),
        layer("a", "Dense", ("x",)),  # no "units" in the config
        layer("b", "Dense", ("x",)),
        layer("add", "Add", ("a", "b")),
    )
    assert coupled_groups(cfg)[0].channels is None
    model = ModelFile.from_arrays(
        {"a/kernel": np.zeros((6, 5)), "b/kernel": np.zeros((6, 5))}, classes={"a": "Dense", "b": "Dense"}, config=cfg
    )
    (grp,) = coupled_groups(model)
    assert grp.channels == 5 and [(m.start, m.stop) for m in grp.members] == [(0, 5), (0, 5)]


def test_concatenate_gives_each_input_its_channel_range():
    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 3]),
        layer("a", "Dense", ("x",), units=4),
        layer("b", "Dense", ("x",), units=6),
        layer("cat", "Concatenate", ("a", "b"), axis=-1),
        layer("c", "Dense", ("x",), units=10),
        layer("add", "Add", ("cat", "c")),
        layer("out", "Dense", ("add",), units=2),
    )
    (grp,) = coupled_groups(cfg)
    assert grp.id == "group:cat" and grp.kind == "merge" and grp.merges == ("cat", "add")
    assert [(m.layer, m.start, m.stop) for m in grp.members] == [("a", 0, 4), ("b", 4, 10), ("c", 0, 10)]
    assert grp.channels == 10
    # Group channels 2, 5, 9 are a's 2, b's 1 and 5, c's 2, 5, 9.
    assert grp.member("a").local([2, 5, 9]) == (2,)
    assert grp.member("b").local([2, 5, 9]) == (1, 5)
    assert grp.member("c").local([2, 5, 9]) == (2, 5, 9)
    with pytest.raises(KeyError):
        grp.member("out")


def test_concatenate_alone_and_over_another_axis():
    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 4, 3]),
        layer("a", "Conv1D", ("x",), filters=2),
        layer("b", "Conv1D", ("x",), filters=3),
        layer("cat", "Concatenate", ("a", "b"), axis=-1),
        layer("cat_t", "Concatenate", ("a", "b"), axis=1),  # time axis: channels are not concatenated
    )
    (grp,) = coupled_groups(cfg)
    assert grp.kind == "concat" and grp.merges == ("cat",) and grp.channels == 5
    assert "concatenated by Concatenate 'cat'" in grp.reason


def test_identity_shortcut_from_the_input_is_reported_not_editable():
    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 8]),
        layer("d", "Dense", ("x",), units=8),
        layer("add", "Add", ("x", "d")),
    )
    (grp,) = coupled_groups(cfg)
    assert grp.layers == ("d",) and grp.sources == ("x",) and not grp.complete
    assert "'x'" in grp.reason and "not editable" in grp.reason


def test_channel_mixing_layers_stop_the_trace():
    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 8]),
        layer("a", "Dense", ("x",), units=8),
        layer("ln", "LayerNormalization", ("a",)),
        layer("sm", "Activation", ("a",), activation="softmax"),
        layer("b", "Dense", ("x",), units=8),
        layer("add", "Add", ("ln", "b")),
        layer("mul", "Multiply", ("sm", "b")),
    )
    groups = coupled_groups(cfg)
    assert len(groups) == 1  # add and mul share b: one group
    (grp,) = groups
    assert grp.layers == ("b",) and set(grp.sources) == {"ln", "sm"}
    assert grp.merges == ("add", "mul")


def test_batchnorm_after_a_merge_is_listed():
    cfg = functional(
        layer("x", "InputLayer", batch_shape=[None, 4]),
        layer("a", "Dense", ("x",), units=4),
        layer("b", "Dense", ("x",), units=4),
        layer("add", "Add", ("a", "b")),
        layer("drop", "Dropout", ("add",), rate=0.1),
        layer("bn", "BatchNormalization", ("drop",), axis=-1),
    )
    (grp,) = coupled_groups(cfg)
    assert grp.batchnorms == ("bn",) and [m.batchnorm for m in grp.members] == [None, None]


def test_sequential_dense_batchnorm_pair():
    cfg = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 3]}},
                {"class_name": "Dense", "config": {"name": "d1", "units": 4}},
                {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": -1}},
                {"class_name": "Dense", "config": {"name": "d2", "units": 2}},
            ],
        },
    }
    (grp,) = coupled_groups(cfg)
    assert grp.id == "group:d1+bn" and grp.kind == "batchnorm" and grp.channels == 4


def test_no_config_and_hostile_configs():
    assert coupled_groups(None) == []
    assert coupled_groups({"class_name": "Functional", "config": {"layers": "nope"}}) == []
    # A cycle (a feeds b feeds a) must end, not recurse forever.
    cyc = functional(
        layer("a", "ReLU", ("b",)),
        layer("b", "ReLU", ("a",)),
        layer("c", "Dense", ("a",), units=2),
        layer("add", "Add", ("a", "c")),
    )
    (grp,) = coupled_groups(cyc)
    assert grp.layers == ("c",) and grp.sources


def test_find_group_names_the_known_ids():
    groups = coupled_groups(residual_config())
    assert find_group("group:add", groups).layers == ("stem", "conv2", "conv3")
    with pytest.raises(RecipeError, match="group:nope.*group:add"):
        find_group("group:nope", groups)
    with pytest.raises(RecipeError, match="none"):
        find_group("group:add", [])


def test_member_local_without_known_width():
    m = Member("a", start=3, stop=None)
    assert m.local([0, 3, 7]) == (0, 4)


def test_a_very_long_chain_before_a_merge_ends_without_recursion_error():
    chain = [layer("x", "InputLayer", batch_shape=[None, 4]), layer("d", "Dense", ("x",), units=4)]
    prev = "d"
    for i in range(3000):
        chain.append(layer(f"r{i}", "ReLU", (prev,)))
        prev = f"r{i}"
    chain.append(layer("e", "Dense", ("x",), units=4))
    chain.append(layer("add", "Add", (prev, "e")))
    (grp,) = coupled_groups(functional(*chain))
    assert grp.layers == ("e",) and grp.sources  # the chain is reported, not followed to its end


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_the_demo_file_read_as_data(demo_paths, fmt):
    import weightlab
    from weightlab.core.graph import following_batchnorm

    model = weightlab.open(demo_paths[fmt]).model
    try:
        groups = coupled_groups(model)
        # A Sequential CNN: no merges; its first conv and the BatchNorm after it are one group,
        # and that BatchNorm is the one zero_neurons(batchnorm=True) silences.
        assert [(g.id, g.kind, g.layers) for g in groups] == [
            ("group:conv2d+batch_normalization", "batchnorm", ("conv2d",))
        ]
        assert groups[0].members[0].batchnorm == following_batchnorm(model, "conv2d")
        assert groups[0].channels == model.tensor("conv2d/kernel").shape[-1]
    finally:
        model.close()
