"""``python -m connectors.simulator``: the provider simulator's command line."""

import sys

from connectors.simulator.cli import main

sys.exit(main())
