"""``python -m weightlab``: same as the ``weightlab`` command."""

from weightlab.cli import main

raise SystemExit(main())
