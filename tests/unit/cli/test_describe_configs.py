"""svcnet's ConfigMap, Secret and ServiceAccount describers print what kubectl 1.33 prints
(the texts below are kubectl's output for the same objects, taken from a live server)."""

from __future__ import annotations

from datetime import UTC, datetime

from svcnet.cli.describe_configs import (
    describe_config_map,
    describe_secret,
    describe_service_account,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_describe_config_map() -> None:
    cm = {"metadata": {"name": "c1", "namespace": "default"},
          "data": {"multi": "x\ny", "a": "b"}, "binaryData": {"bin": "AAEC"}}
    assert describe_config_map(cm, [], NOW) == (
        "Name:         c1\n"
        "Namespace:    default\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "\n"
        "Data\n====\na:\n----\nb\n\nmulti:\n----\nx\ny\n\n"
        "\n"
        "BinaryData\n====\nbin: 3 bytes\n"
        "\n"
        "Events:  <none>\n")


def test_describe_secret_shows_sizes_only() -> None:
    secret = {"metadata": {"name": "s1", "namespace": "default", "labels": {"app": "x"}},
              "type": "Opaque", "data": {"u": "bWU=", "p": "cHc="}}
    assert describe_secret(secret) == (
        "Name:         s1\n"
        "Namespace:    default\n"
        "Labels:       app=x\n"
        "Annotations:  <none>\n"
        "\n"
        "Type:  Opaque\n"
        "\n"
        "Data\n====\np:  2 bytes\nu:  2 bytes\n")


def test_describe_service_account() -> None:
    sa = {"metadata": {"name": "default", "namespace": "default", "uid": "u1"},
          "secrets": [{"name": "s1"}, {"name": "nope"}], "imagePullSecrets": [{"name": "pull"}]}
    token = {"metadata": {"name": "tok", "annotations": {
        "kubernetes.io/service-account.name": "default",
        "kubernetes.io/service-account.uid": "u1"}},
        "type": "kubernetes.io/service-account-token"}
    secrets = [{"metadata": {"name": "s1"}, "type": "Opaque"}, token]
    assert describe_service_account(sa, secrets, [], NOW) == (
        "Name:                default\n"
        "Namespace:           default\n"
        "Labels:              <none>\n"
        "Annotations:         <none>\n"
        "Image pull secrets:  pull (not found)\n"
        "Mountable secrets:   s1\n"
        "                     nope (not found)\n"
        "Tokens:              tok\n"
        "Events:              <none>\n")
    # Secrets that could not be listed: nothing is marked missing.
    assert "(not found)" not in describe_service_account(sa, None, None, NOW)
