"""``python -m contracts`` is ``nanogpt-contract``."""

from .cli import main

raise SystemExit(main())
