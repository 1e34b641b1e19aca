"""``python -m ntkspec`` runs the console script."""

from .cli import main

raise SystemExit(main())
