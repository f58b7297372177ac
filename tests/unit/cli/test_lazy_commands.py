"""The CLI's client commands are imported only when used (svcnet/cli/main.py's LazyGroup):
each still resolves under its name, shows in --help, and the light commands do not import
them."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from svcnet.cli.main import LazyGroup, cli


def test_every_lazy_command_resolves_under_its_name_and_is_listed() -> None:
    ctx = click.Context(cli)
    for name in LazyGroup.LAZY:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in [*LazyGroup.LAZY, "up", "down", "server", "node", "validate"]:
        assert f"\n  {name} " in out, name
    assert cli.get_command(ctx, "nonesuch") is None


def test_up_help_imports_neither_the_client_commands_nor_the_dashboard() -> None:
    probe = ("import sys; from svcnet.cli.main import main; sys.argv = ['svcnet', 'up', "
             "'--help']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m in ('svcnet.cli.client_commands', "
             "'svcnet.cli.dashboard', 'aiohttp')))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout
