"""`svcnet join`'s refusals before anything happens: one line, exit code 1."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from svcnet.cli.main import cli

TOKEN = "K10" + "0" * 64 + "::abcdef.0123456789abcdef"


@pytest.mark.parametrize(("args", "message"), [
    (["https://10.0.0.1:6443"], "give the join token"),
    (["https://10.0.0.1:6443", "--token", "abcdef.0123456789abcdef"], "not a join token"),
    (["http://10.0.0.1:6443", "--token", TOKEN], "expected https://HOST:PORT"),
    (["https://server.example:6443", "--token", TOKEN, "--node-name", "m1"],
     "give --node-ip"),
])
def test_join_refuses_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["join", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and result.output.count("\n") == 1, result.output


def test_join_help_names_the_modes() -> None:
    result = CliRunner().invoke(cli, ["join", "--help"])
    assert result.exit_code == 0
    assert "routes|vxlan" in result.output and "--token-file" in result.output
