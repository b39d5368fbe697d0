"""Pure-numpy core of WeightLab: tensors, model weights, edits, session, statistics.

Nothing under ``weightlab.core`` imports Qt or TensorFlow; the GUI, the command
line and the Python API all drive these objects.
"""
