"""Edit commands for the Python API (re-exported from :mod:`weightlab.core.edits`)."""

from weightlab.core.edits import (  # noqa: F401
    EDIT_TYPES,
    Clip,
    Edit,
    Revert,
    Scale,
    ScaleNeurons,
    ZeroNeurons,
    ZeroOutside,
    ZeroRange,
    edit_from_dict,
)
