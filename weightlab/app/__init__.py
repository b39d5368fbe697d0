"""WeightLab's Qt-free application model: the workspace (state and events) and the action registry.

Nothing here imports Qt or TensorFlow; the window's controllers
(:mod:`weightlab.gui.controllers`) subscribe to the workspace and build the
window's menus, toolbar and shortcut list from the registry.
"""
