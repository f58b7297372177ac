"""The ``svcnet`` command.

Exit codes (DESIGN §2): 0 success; 1 failure with a one-line reason on stderr, no traceback
unless ``--debug``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from svcnet import __version__
from svcnet.api.errors import StatusError
from svcnet.api.kinds import check_object
from svcnet.api.schema import decode, strict_error


class Failure(click.ClickException):
    """A one-line failure: printed as ``error: <message>``, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every object in a YAML/JSON file (multi-document; ``kind: List`` expanded)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as e:
        raise Failure(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise Failure(f"{path}: invalid YAML: {e}".replace("\n", " ")) from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
        elif isinstance(doc, dict):
            out.append(doc)
        else:
            raise Failure(f"{path}: every document must be an object, got {type(doc).__name__}")
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="svcnet")
@click.option("--debug", is_flag=True, help="Show tracebacks on failure.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """svcnet: Kubernetes Service networking, for real."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("-f", "--filename", "files", multiple=True, required=True,
              type=click.Path(path_type=Path, allow_dash=True),
              help="Manifest file (YAML or JSON, multi-document); '-' reads stdin.")
@click.option("--strict/--no-strict", default=True, show_default=True,
              help="Unknown fields are errors (kubectl's fieldValidation=Strict).")
def validate(files: tuple[Path, ...], strict: bool) -> None:
    """Check manifests offline with Kubernetes' decoding, defaulting and validation.

    Prints what a Kubernetes API server would answer for each object, in kubectl's words,
    without contacting any server. Allocation-time checks (is a requested ClusterIP or
    NodePort free?) need a server and are not made here.
    """
    failed = 0
    for path in files:
        for obj in load_manifests(path):
            kind = str(obj.get("kind", ""))
            name = str((obj.get("metadata") or {}).get("name", ""))
            try:
                decoded = decode(obj, api_version=str(obj.get("apiVersion", "")), kind=kind)
                if strict and decoded.unknown_fields:
                    raise strict_error(decoded.unknown_fields)
                check_object(decoded.obj)
            except StatusError as e:
                failed += 1
                prefix = "The " if e.reason == "Invalid" else "Error from server "
                if e.reason != "Invalid":
                    prefix += f"({e.reason}): "
                click.echo(f"{prefix}{e.message}", err=True)
                continue
            click.echo(f"{kind.lower()}/{name} valid")
    if failed:
        raise Failure(f"{failed} object(s) invalid")


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(1 if isinstance(e, Failure) else 2)
    except Exception as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
