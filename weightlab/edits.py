"""Edit commands for the Python API: every registered edit, re-exported from :mod:`weightlab.core.edits`.

``from weightlab.edits import Clip, ZeroNeurons, PruneMagnitude``.
:data:`CATALOGUE` describes each edit (label, NumPy meaning, parameters and
their ranges). The imports are written out so that editors and type checkers
see them; ``tests/test_docs_examples.py`` checks that every class registered in
``EDIT_TYPES`` is exported here.
"""

from weightlab.core.catalogue import CATALOGUE, OpInfo, ParamInfo, op_info
from weightlab.core.edits import (
    EDIT_TYPES,
    Add,
    AddNoise,
    Clip,
    ClipPercentile,
    Edit,
    PruneMagnitude,
    PruneNeurons,
    Reinit,
    Revert,
    Scale,
    ScaleNeurons,
    SetValue,
    Target,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
    edit_from_dict,
)

__all__ = [
    "CATALOGUE",
    "EDIT_TYPES",
    "Add",
    "AddNoise",
    "Clip",
    "ClipPercentile",
    "Edit",
    "OpInfo",
    "ParamInfo",
    "PruneMagnitude",
    "PruneNeurons",
    "Reinit",
    "Revert",
    "Scale",
    "ScaleNeurons",
    "SetValue",
    "Target",
    "ZeroNeurons",
    "ZeroOutside",
    "ZeroRange",
    "edit_from_dict",
    "op_info",
]
