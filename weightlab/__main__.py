"""``python -m weightlab``: same as the ``weightlab`` command."""

if __name__ == "__main__":  # the engine's spawned worker re-imports the main module
    import multiprocessing

    from weightlab.cli import main

    multiprocessing.freeze_support()
    raise SystemExit(main())
