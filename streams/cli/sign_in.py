"""Who makes a configuration change. `keel agent deploy|promote|rollback` and `keel eval` authenticate
as a user of the users file (streams/review/users.py) who may configure the agent: an admin, or an
operator of that agent. The change records that user's name as its author.

The password comes from the first line of standard input with ``--password-stdin``, else from
``KEEL_PASSWORD``, else from a prompt; never from an argument, where it would end up in shell history.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from streams.core.errors import ChangeNotPermitted
from streams.core.settings import Settings
from streams.review.users import UserFile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=None, help="who makes the change (default: KEEL_USER)")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (else KEEL_PASSWORD)"
    )


def signed_in(args: argparse.Namespace, settings: Settings, agent: str) -> str:
    """The name of the user ``args`` and ``settings`` name, once their password matched and they may
    configure ``agent``. Raises ``ChangeNotPermitted``. Blocks for an scrypt (half a second)."""
    path = settings.review_users_file
    name = args.user or settings.user
    if not name:
        raise ChangeNotPermitted(
            f"name who makes the change with --user or KEEL_USER: a user of {path} who is an admin or an operator "
            f"of {agent} (`keel review user add NAME --role operator --agents {agent}`)"
        )
    user = UserFile(path).authenticate(name, _password(args, settings, name))
    if user is None:
        raise ChangeNotPermitted(f"unknown user {name!r} or wrong password (users file {path})")
    if not user.may_configure(agent):
        scope = f" of {', '.join(sorted(user.agents))}" if user.agents else ""
        raise ChangeNotPermitted(
            f"{name} ({user.role}{scope}) may not change {agent}: that takes an admin or an operator of {agent}"
        )
    return user.name


def _password(args: argparse.Namespace, settings: Settings, name: str) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if settings.password is not None:
        return settings.password.get_secret_value()
    if not sys.stdin.isatty():
        raise ChangeNotPermitted(f"no password for {name}: pass --password-stdin or set KEEL_PASSWORD")
    return getpass.getpass(f"Password for {name}: ")
