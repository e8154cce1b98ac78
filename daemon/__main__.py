"""``python -m daemon``: the ``batchd`` command line (cli/main.py)."""

import sys

from daemon.cli.main import main

sys.exit(main())
