"""Composition root: the ``python -m callcenter`` entry point."""

from callcenter.cli import main

raise SystemExit(main())
