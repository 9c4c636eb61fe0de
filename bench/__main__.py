"""``python -m bench``: see :mod:`bench.cli`."""

from __future__ import annotations

import logging

from bench.cli import main

# The PostgreSQL finder logs which server it used: worth a line on standard error.
logging.basicConfig(level=logging.WARNING, format="%(message)s")
logging.getLogger("tests.support.postgres").setLevel(logging.INFO)
raise SystemExit(main())
