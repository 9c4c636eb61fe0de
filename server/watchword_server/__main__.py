"""``python -m watchword_server``."""

import sys

from watchword_server.cli import main

sys.exit(main())
