"""Webhook configurations (admissionregistration.k8s.io/v1) through a real `svcnet server`, the
real kubectl and the official Python client: cert-manager's two configurations applied,
listed, patched as its CA injector patches them, refused when invalid, deleted.

The configurations are served, not called here (their service does not exist); the session
cluster is shared, so every configuration made here is deleted before the test ends.
"""

from __future__ import annotations

import base64
import json

from kubernetes import client, config

from tests.e2e.conftest import Cluster

#: As cert-manager's release manifest ships them (v1.14, trimmed of labels).
CERT_MANAGER = """\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: cert-manager-webhook
  annotations:
    cert-manager.io/inject-ca-from-secret: "cert-manager/cert-manager-webhook-ca"
webhooks:
  - name: webhook.cert-manager.io
    rules:
      - apiGroups: ["cert-manager.io"]
        apiVersions: ["v1"]
        operations: [CREATE]
        resources: ["certificaterequests"]
    admissionReviewVersions: ["v1"]
    matchPolicy: Equivalent
    timeoutSeconds: 30
    failurePolicy: Fail
    sideEffects: None
    clientConfig:
      service:
        name: cert-manager-webhook
        namespace: cert-manager
        path: /mutate
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: cert-manager-webhook
  annotations:
    cert-manager.io/inject-ca-from-secret: "cert-manager/cert-manager-webhook-ca"
webhooks:
  - name: webhook.cert-manager.io
    namespaceSelector:
      matchExpressions:
        - key: cert-manager.io/disable-validation
          operator: NotIn
          values: ["true"]
    rules:
      - apiGroups: ["cert-manager.io", "acme.cert-manager.io"]
        apiVersions: ["v1"]
        operations: [CREATE, UPDATE]
        resources: ["*/*"]
    admissionReviewVersions: ["v1"]
    matchPolicy: Equivalent
    timeoutSeconds: 30
    failurePolicy: Fail
    sideEffects: None
    clientConfig:
      service:
        name: cert-manager-webhook
        namespace: cert-manager
        path: /validate
"""

INVALID = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: e2e-invalid}
webhooks:
  - name: short
    sideEffects: Some
    admissionReviewVersions: ["v1"]
    clientConfig: {url: "http://example.com/validate"}
"""


def test_cert_manager_configurations(cluster: Cluster) -> None:
    try:
        _apply_get_patch_and_refuse(cluster)
        _python_client(cluster)
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", stdin=CERT_MANAGER)
        cluster.kubectl("delete", "mutatingwebhookconfiguration", "e2e-python",
                        "--ignore-not-found")
    for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"):
        assert cluster.kubectl("get", kind, "-o", "name").stdout == "", "all deleted"


def _apply_get_patch_and_refuse(cluster: Cluster) -> None:
    out = cluster.kubectl("apply", "-f", "-", stdin=CERT_MANAGER).stdout.splitlines()
    assert out == [
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/cert-manager-webhook created",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/cert-manager-webhook "
        "created"]
    lines = cluster.kubectl("get", "validatingwebhookconfigurations").stdout.splitlines()
    assert lines[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert lines[1].split()[:2] == ["cert-manager-webhook", "1"]
    resources = cluster.kubectl("api-resources", "--api-group=admissionregistration.k8s.io",
                                "--no-headers").stdout.splitlines()
    assert [r.split() for r in resources] == [
        ["mutatingwebhookconfigurations", "admissionregistration.k8s.io/v1", "false",
         "MutatingWebhookConfiguration"],
        ["validatingwebhookconfigurations", "admissionregistration.k8s.io/v1", "false",
         "ValidatingWebhookConfiguration"]]

    # Stored with v1's defaults; the mutating one's reinvocation policy too.
    validating = cluster.get_json("validatingwebhookconfiguration", "cert-manager-webhook")
    [hook] = validating["webhooks"]
    assert hook["rules"][0]["scope"] == "*"
    assert hook["clientConfig"]["service"]["port"] == 443
    assert hook["objectSelector"] == {}
    assert validating["metadata"]["generation"] == 1
    mutating = cluster.get_json("mutatingwebhookconfiguration", "cert-manager-webhook")
    assert mutating["webhooks"][0]["reinvocationPolicy"] == "Never"

    # cert-manager's CA injector patches the caBundle in by webhook name (strategic merge:
    # the webhooks merge on name, so the rest of the webhook stays).
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    patch = {"webhooks": [{"name": "webhook.cert-manager.io", "clientConfig": {"caBundle": ca}}]}
    cluster.kubectl("patch", "validatingwebhookconfiguration", "cert-manager-webhook",
                    "-p", json.dumps(patch))
    patched = cluster.get_json("validatingwebhookconfiguration", "cert-manager-webhook")
    [hook] = patched["webhooks"]
    assert hook["clientConfig"]["caBundle"] == ca
    assert hook["clientConfig"]["service"]["path"] == "/validate"
    assert hook["rules"] == validating["webhooks"][0]["rules"]
    assert patched["metadata"]["generation"] == 2, "a webhook changed"
    # Applying the manifest again keeps the injected caBundle and changes nothing: kubectl
    # sends the (atomic) rules back without the defaulted scope, as it does to kube-apiserver,
    # and they default to what is stored.
    cluster.kubectl("apply", "-f", "-", stdin=CERT_MANAGER)
    assert cluster.get_json("validatingwebhookconfiguration",
                            "cert-manager-webhook")["metadata"] == patched["metadata"]
    # Server-side apply takes the kind too (its own field manager, a new label).
    ssa = ("apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\n"
           "metadata: {name: cert-manager-webhook, labels: {app: webhook}}\n")
    cluster.kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", stdin=ssa)
    mutating = cluster.get_json("mutatingwebhookconfiguration", "cert-manager-webhook",
                                "--show-managed-fields")
    assert mutating["metadata"]["labels"] == {"app": "webhook"}
    assert mutating["webhooks"][0]["clientConfig"]["service"]["path"] == "/mutate"
    assert "e2e" in {m["manager"] for m in mutating["metadata"]["managedFields"]}

    refused = cluster.kubectl("apply", "-f", "-", stdin=INVALID, check=False)
    assert refused.returncode != 0
    assert refused.stderr == (
        'The ValidatingWebhookConfiguration "e2e-invalid" is invalid: \n'
        '* webhooks[0].name: Invalid value: "short": should be a domain with at least three '
        "segments separated by dots\n"
        '* webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", '
        '"NoneOnDryRun"\n'
        "* webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed "
        "URL scheme; desired format: https://host[/path]\n")


def _python_client(cluster: Cluster) -> None:
    api_client = config.new_client_from_config(str(cluster.kubeconfig))
    try:
        api = client.AdmissionregistrationV1Api(api_client)
        names = [c.metadata.name
                 for c in api.list_validating_webhook_configuration().items]
        assert names == ["cert-manager-webhook"]
        made = api.create_mutating_webhook_configuration(client.V1MutatingWebhookConfiguration(
            metadata=client.V1ObjectMeta(name="e2e-python"),
            webhooks=[client.V1MutatingWebhook(
                name="inject.e2e.svcnet.io", side_effects="NoneOnDryRun",
                admission_review_versions=["v1", "v1beta1"],
                client_config=client.AdmissionregistrationV1WebhookClientConfig(
                    url="https://hooks.example.com/inject"),
                rules=[client.V1RuleWithOperations(operations=["CREATE"], api_groups=[""],
                                                   api_versions=["v1"],
                                                   resources=["pods"])])]))
        [hook] = made.webhooks
        assert (hook.reinvocation_policy, hook.timeout_seconds, hook.failure_policy) == (
            "Never", 10, "Fail")
        listed = api.list_mutating_webhook_configuration().items
        assert [c.metadata.name for c in listed] == ["cert-manager-webhook", "e2e-python"]
        api.delete_mutating_webhook_configuration("e2e-python")
    finally:
        api_client.close()
