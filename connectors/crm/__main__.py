"""``python -m connectors.crm``: the CRM's HTTP API on loopback, with the customers of the shipped
support-ticket samples. The bearer token comes from ``CRM_API_TOKEN`` (never a flag: it would show in
the process list); the first line on stdout says where it listens.

    CRM_API_TOKEN=... python -m connectors.crm --port 8095
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence

from connectors.crm.customers import Customers
from connectors.crm.server import CrmState, start_crm
from connectors.serving import serve_until_stopped

TOKEN_ENV = "CRM_API_TOKEN"  # noqa: S105  (the variable's name, not a token)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.crm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8095, help="0 picks a free port")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        sys.stderr.write(f"keel-crm: set {TOKEN_ENV} to the bearer token its clients must send\n")
        return 2
    state = CrmState(Customers.from_samples(), token=token)
    try:
        asyncio.run(
            serve_until_stopped(functools.partial(start_crm, state, host=args.host, port=args.port), "keel-crm")
        )
    except OSError as exc:
        sys.stderr.write(f"keel-crm cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
