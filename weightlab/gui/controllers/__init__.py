"""The main window's controllers: each keeps one area of the window in step with the workspace.

- :mod:`.documents`: open, save as, recipes, journal restore, the title.
- :mod:`.views`: the tree and the shown tensor's plots.
- :mod:`.edits`: edits, undo/redo, history steps (off the window's thread).
- :mod:`.evaluation`: the engine adapter and the evaluation panel.
- :mod:`.comparison`: File › Compare with….
- :mod:`.jobs`: the engine's jobs in the status bar (progress, cancel).
- :mod:`.sweeps`, :mod:`.ranking`: the Sweeps and Ranking tabs.
- :mod:`.training`: the Training tab (fine-tune, prune and retrain, the trained history step).
- :mod:`.actions`: the QActions, menus, toolbar and shortcut list from the action registry.
- :mod:`.host`: what the controllers use of the window (a protocol: no controller imports it).
- :mod:`.paths`: file names and dialog filters.

Controllers subscribe to the :class:`~weightlab.app.workspace.Workspace` and
never call each other; the window holds them and delegates to them.
"""
