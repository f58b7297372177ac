"""Manifest files and the CLI's one-line failure (shared by every command module)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from svcnet.api.yamljson import load_yaml_documents


class Failure(click.ClickException):
    """A one-line failure: printed as ``error: <message>``, exit code 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every object in a YAML/JSON file (multi-document; ``kind: List`` expanded), read as
    Kubernetes reads YAML (timestamps stay strings; see :mod:`svcnet.api.yamljson`)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        docs = [d for d in load_yaml_documents(text) if d is not None]
    except OSError as e:
        raise Failure(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise Failure(f"{path}: invalid YAML: {e}") from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            out.extend(i for i in doc.get("items") or [] if isinstance(i, dict))
        elif isinstance(doc, dict):
            out.append(doc)
        else:
            raise Failure(f"{path}: every document must be an object, got {type(doc).__name__}")
    return out
