"""``keel review user add|remove|list``: manage who may use the review UI and API, and who may change
agents' configurations (role ``operator``; streams/review/users.py).

The password comes from a prompt (asked twice) or, for scripts, from the first line of standard input
with ``--password-stdin``; never from an argument, where it would end up in shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from streams.core.settings import Settings
from streams.review.users import UserFile, UsersFileError

MIN_PASSWORD_CHARS = 8


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(
        prog="keel review user", description="Manage the users of the review UI/API and of `keel agent`."
    )
    parser.add_argument("--file", help=f"the users file (default: {settings.review_users_file})")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add a user, or replace one's password, role and agents")
    add.add_argument("name")
    add.add_argument("--role", choices=["reviewer", "operator", "admin"], required=True)
    add.add_argument(
        "--agents", default="", help="the agents a reviewer reviews or an operator configures, comma-separated"
    )
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = sub.add_parser("remove", help="remove a user (their sessions end at their next request)")
    remove.add_argument("name")
    sub.add_parser("list", help="users, roles and agents")
    args = parser.parse_args(argv)
    users = UserFile(settings.review_users_file if args.file is None else Path(args.file))
    try:
        if args.action == "add":
            return _add(users, args)
        if args.action == "remove":
            found = users.remove(args.name)
            print(f"removed {args.name}" if found else f"no user {args.name}", file=sys.stdout if found else sys.stderr)
            return 0 if found else 1
        for name in users.names():
            user = users.get(name)
            if user is not None:
                print(f"{name}\t{user.role}\t{','.join(sorted(user.agents)) or '-'}")
        return 0
    except UsersFileError as exc:
        print(f"keel review user: {exc}", file=sys.stderr)
        return 2


def _add(users: UserFile, args: argparse.Namespace) -> int:
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    scoped = args.role != "admin"
    if scoped and not agents:
        print(f"keel review user add: a {args.role} needs --agents (comma-separated agent names)", file=sys.stderr)
        return 2
    password = _read_password(from_stdin=args.password_stdin)
    if password is None:
        return 2
    users.put(args.name, password=password, role=args.role, agents=agents if scoped else [])
    print(f"{args.name}: {args.role}{' of ' + ', '.join(agents) if scoped else ''} in {users.path}")
    return 0


def _read_password(*, from_stdin: bool) -> str | None:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("keel review user add: the passwords differ", file=sys.stderr)
            return None
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"keel review user add: the password needs at least {MIN_PASSWORD_CHARS} characters", file=sys.stderr)
        return None
    return password
