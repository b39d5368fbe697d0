"""The smallest TensorFlow-format fixtures: a SavedModel, a TF2 checkpoint and a frozen GraphDef of one layer.

Both hold the same two weights, named ``dense/kernel`` (``arange(12)`` as 4x3)
and ``dense/bias`` (ones) in the SavedModel and checkpoint, and
``fc/kernel`` (ones, 4x3) and ``fc/bias`` (zeros) in the GraphDef.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_tf_formats(root: Path) -> dict[str, Path]:
    """Write the three fixtures under ``root``; ``{"savedmodel", "checkpoint", "graphdef"}`` -> folder.

    The GraphDef folder holds ``frozen.pb``. Imports TensorFlow.
    """
    import tensorflow as tf

    mod = tf.Module()
    with tf.name_scope("dense"):
        mod.kernel = tf.Variable(np.arange(12, dtype="float32").reshape(4, 3), name="kernel")
        mod.bias = tf.Variable(np.ones(3, "float32"), name="bias")
    mod.f = tf.function(lambda x: x @ mod.kernel + mod.bias, input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    tf.train.Checkpoint(m=mod).write(str(root / "ckpt" / "ckpt"))
    tf.saved_model.save(mod, str(root / "sm"), signatures=mod.f)
    gd = tf.compat.v1.GraphDef()
    x = gd.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = tf.float32.as_datatype_enum
    for name, value in (("fc/kernel", np.ones((4, 3), "float32")), ("fc/bias", np.zeros(3, "float32"))):
        node = gd.node.add(name=name, op="Const")
        node.attr["dtype"].type = tf.float32.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    mm = gd.node.add(name="fc/MatMul", op="MatMul", input=["x", "fc/kernel"])
    mm.attr["T"].type = tf.float32.as_datatype_enum
    add = gd.node.add(name="fc/BiasAdd", op="BiasAdd", input=["fc/MatMul", "fc/bias"])
    add.attr["T"].type = tf.float32.as_datatype_enum
    (root / "pb").mkdir()
    (root / "pb" / "frozen.pb").write_bytes(gd.SerializeToString())
    return {"savedmodel": root / "sm", "checkpoint": root / "ckpt", "graphdef": root / "pb"}
