"""``python -m streams.cli``: the `keel` command."""

import sys

from streams.cli.main import main

sys.exit(main())
