"""certificates.k8s.io/v1 CertificateSigningRequests: validation, the strategies' preparation
steps, and the rules the built-in signers apply, as Kubernetes has them.

Theory of operation
-------------------
A CertificateSigningRequest (CSR) carries a PKCS#10 request (``spec.request``, PEM, base64 in
JSON), the signer it is for (``spec.signerName``), the key usages wanted and optionally a
lifetime (``spec.expirationSeconds``). The API server stamps who asked (``spec.username``,
``uid``, ``groups``, ``extra``: whatever the client sent there is replaced), an approver adds
an ``Approved`` or ``Denied`` condition through the ``approval`` subresource (``kubectl
certificate approve|deny``), and the signer puts the certificate into ``status.certificate``
through ``status`` (svcnet's signer: :mod:`svcnet.controllers.certificates`).

Followed:

* ``pkg/apis/certificates/validation/validation.go``: the request must be a ``CERTIFICATE
  REQUEST`` PEM block whose signature verifies; usages required, known and unique; the
  signer name ``domain/path`` (``ValidateSignerName`` in core validation), never
  ``kubernetes.io/legacy-unknown`` in v1; ``expirationSeconds`` at least 600; condition types
  set and unique, ``Approved``/``Denied``/``Failed`` only ``True``, ``Approved`` and
  ``Denied`` mutually exclusive; ``status.certificate`` only ``CERTIFICATE`` blocks without
  headers. Updates may not remove ``Approved``/``Denied``/``Failed`` conditions; only the
  approval subresource may add or change ``Approved``/``Denied``, only ``status`` may set the
  certificate, once. What a stored object already broke is tolerated, as upstream's
  ``getValidationOptions`` does.
* ``pkg/registry/certificates/certificates/strategy.go``: the three strategies' preparation
  (:func:`prepare_for_create`, :func:`prepare_for_update`, :func:`prepare_for_status_update`,
  :func:`prepare_for_approval_update`, with ``populateConditionTimestamps``).
* ``pkg/apis/certificates/helpers.go`` and ``pkg/controller/certificates/signer/signer.go``:
  what each ``kubernetes.io`` signer accepts (:func:`signer_check`), and
  ``pkg/controller/certificates/authority/policies.go``: the key usages a certificate gets
  (:func:`x509_usages`) and its validity window (:func:`validity_window`).
* ``plugin/pkg/admission/certificates/subjectrestriction``: no ``system:masters`` through the
  ``kube-apiserver-client`` signer (:func:`subject_restriction_error`).

Differences: x509 parse and signature errors are Go's messages as far as they can be named
(``x509: malformed certificate request``, ``x509: ECDSA verification failure``, ...), not
every asn1 detail; the "may not modify a condition" message ends with the old and new
conditions as JSON where upstream prints a ``cmp.Diff``. Objects are JSON dicts as on the
wire; inputs are never mutated.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from svcnet.api.access import as_dict, as_list, as_str, map_of
from svcnet.api.errors import (
    FieldError,
    GoRaw,
    Path,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
)
from svcnet.api.keypair import pem_blocks
from svcnet.api.meta import validate_object_meta, validate_object_meta_update
from svcnet.api.names import (
    DNS1123_LABEL_MAX_LENGTH,
    DNS1123_SUBDOMAIN_MAX_LENGTH,
    is_dns1123_label,
    is_dns1123_subdomain,
)
from svcnet.util.clock import parse_time, rfc3339

__all__ = [
    "API_VERSION", "APPROVED", "DENIED", "FAILED", "GROUP", "KIND",
    "KUBELET_SERVING", "KUBE_APISERVER_CLIENT", "KUBE_APISERVER_CLIENT_KUBELET",
    "LEGACY_UNKNOWN", "CSRError", "Requestor", "condition_summary", "find_conditions",
    "has_true_condition", "is_approved", "parse_csr", "prepare_for_approval_update",
    "prepare_for_create", "prepare_for_status_update", "prepare_for_update", "signer_check",
    "subject_restriction_error", "validate_csr", "validate_csr_approval_update",
    "validate_csr_status_update", "validate_csr_update", "validity_window", "x509_usages",
]

GROUP: Final = "certificates.k8s.io"
API_VERSION: Final = f"{GROUP}/v1"
KIND: Final = "CertificateSigningRequest"

KUBE_APISERVER_CLIENT: Final = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET: Final = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING: Final = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN: Final = "kubernetes.io/legacy-unknown"

APPROVED: Final = "Approved"
DENIED: Final = "Denied"
FAILED: Final = "Failed"
_TRUE_ONLY: Final = frozenset({APPROVED, DENIED, FAILED})
_STATUSES: Final = ("False", "True", "Unknown")

ObjMap = Mapping[str, Any]
Obj = dict[str, Any]

# -- key usages (certificates.KeyUsage) --------------------------------------------------------

#: Each usage that is an x509 key usage: the cryptography KeyUsage flag it sets.
_KEY_USAGES: Final[Mapping[str, str]] = {
    "signing": "digital_signature", "digital signature": "digital_signature",
    "content commitment": "content_commitment", "key encipherment": "key_encipherment",
    "key agreement": "key_agreement", "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign", "crl sign": "crl_sign", "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}
#: Each usage that is an extended key usage, in Go's ExtKeyUsage order (which sorts them).
_EXT_KEY_USAGES: Final[Mapping[str, ObjectIdentifier]] = {
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": ObjectIdentifier("2.16.840.1.113730.4.1"),
}
#: allValidUsages.List(): every usage, sorted.
VALID_USAGES: Final = tuple(sorted({*_KEY_USAGES, *_EXT_KEY_USAGES}))


@dataclass(frozen=True, slots=True)
class X509Usages:
    """What a certificate's usages become: the KeyUsage flags set (empty: no extension) and
    the extended key usages, in Go's order."""

    key_usage: frozenset[str]
    extended: tuple[ObjectIdentifier, ...]


def x509_usages(usages: Iterable[str]) -> X509Usages:
    """keyUsagesFromStrings; ValueError ``unrecognized usage values: [...]`` for the rest."""
    flags: set[str] = set()
    ext: set[ObjectIdentifier] = set()
    unrecognized: list[str] = []
    for usage in usages:
        if usage in _KEY_USAGES:
            flags.add(_KEY_USAGES[usage])
        elif usage in _EXT_KEY_USAGES:
            ext.add(_EXT_KEY_USAGES[usage])
        else:
            unrecognized.append(usage)
    if unrecognized:
        raise ValueError(f"unrecognized usage values: {_go_quoted_list(unrecognized)}")
    order = list(dict.fromkeys(_EXT_KEY_USAGES.values()))
    return X509Usages(frozenset(flags), tuple(o for o in order if o in ext))


def _go_quoted_list(values: Sequence[str]) -> str:
    """Go's %q of a string slice: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def _go_list(values: Iterable[str]) -> str:
    """Go's %v of a string slice: ``[a b]``."""
    return "[" + " ".join(values) + "]"


# -- the request ---------------------------------------------------------------------------------


class CSRError(ValueError):
    """A request that does not parse or verify, with Go's message."""


def request_bytes(obj: ObjMap) -> bytes:
    """``spec.request`` as bytes (base64 in JSON; the decoder has checked it)."""
    return _bytes(map_of(obj, "spec").get("request"))


def certificate_bytes(obj: ObjMap) -> bytes:
    """``status.certificate`` as bytes (empty when none was issued)."""
    return _bytes(map_of(obj, "status").get("certificate"))


def _bytes(value: object) -> bytes:
    if not isinstance(value, str) or not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def parse_csr(pem: bytes) -> x509.CertificateSigningRequest:
    """certificates.ParseCSR: the first PEM block must be a ``CERTIFICATE REQUEST``."""
    blocks = pem_blocks(pem)
    if not blocks or blocks[0].type != "CERTIFICATE REQUEST":
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_der_x509_csr(blocks[0].der)
        # cryptography parses these when first read; Go's ParseCertificateRequest at once,
        # so a request whose subject or extensions do not parse is refused here, not when
        # the signer reads them.
        for attribute in csr.subject:
            _ = attribute.value
        for extension in csr.extensions:
            _ = extension.value
    except (ValueError, UnsupportedAlgorithm):
        raise CSRError("x509: malformed certificate request") from None
    return csr


def check_signature(csr: x509.CertificateSigningRequest) -> None:
    """CertificateRequest.CheckSignature, with Go's failure message per key type."""
    try:
        valid = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CSRError("x509: cannot verify signature: algorithm unimplemented") from None
    # Go verifies RSA, ECDSA and Ed25519 signatures only (a DSA one, valid or not, is
    # unimplemented).
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                      | ed25519.Ed25519PublicKey):
        raise CSRError("x509: cannot verify signature: algorithm unimplemented")
    if valid:
        return
    if isinstance(key, rsa.RSAPublicKey):
        raise CSRError("crypto/rsa: verification error")
    if isinstance(key, ec.EllipticCurvePublicKey):
        raise CSRError("x509: ECDSA verification failure")
    raise CSRError("x509: Ed25519 verification failure")


def _go_bytes(value: object) -> GoRaw:
    """A []byte field's value as field.Error prints it (``%#v``)."""
    if not isinstance(value, str):
        return GoRaw("[]byte(nil)")
    data = _bytes(value)
    return GoRaw("[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}")


def _validate_certificate(pem: bytes) -> str | None:
    """validateCertificate: the error for ``status.certificate``, or None."""
    if not pem:
        return None
    blocks = pem_blocks(pem)
    for block in blocks:
        if block.type != "CERTIFICATE":
            return f"only CERTIFICATE PEM blocks are allowed, found {json.dumps(block.type)}"
        if block.has_headers:
            return "no PEM block headers are permitted"
        try:
            x509.load_der_x509_certificate(block.der)
        except ValueError:
            return "x509: malformed certificate"
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    return None


# -- validation ----------------------------------------------------------------------------------


def _signer_name_errors(path: Path, name: str) -> list[FieldError]:
    """ValidateSignerName (core validation): ``domain/path``, at most 571 characters."""
    if not name:
        return [required(path)]
    segments = name.split("/")
    if len(segments) != 2:
        return [invalid(path, name, "must be a fully qualified domain and path of the form "
                                    "'example.com/signer-name'")]
    errs: list[FieldError] = []
    domain, rest = segments
    if len(domain) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(too_long(path, "", DNS1123_SUBDOMAIN_MAX_LENGTH))
    labels = domain.split(".")
    for label in labels:
        msgs = is_dns1123_label(label)
        if msgs:
            errs.extend(invalid(path, domain, f"validating label {json.dumps(label)}: {m}")
                        for m in msgs)
            break
    if len(labels) < 2:
        errs.append(invalid(path, domain,
                            "should be a domain with at least two segments separated by dots"))
    for label in rest.split("."):
        msgs = is_dns1123_subdomain(label)
        if msgs:
            errs.extend(invalid(path, rest, f"validating label {json.dumps(label)}: {m}")
                        for m in msgs)
            break
    longest = DNS1123_SUBDOMAIN_MAX_LENGTH * 2 + DNS1123_LABEL_MAX_LENGTH + 2
    if len(name) > longest:
        errs.append(too_long(path, "", longest))
    return errs


@dataclass(frozen=True, slots=True)
class _Options:
    """certificateValidationOptions: what this write may do, and what the stored object
    already broke (tolerated for compatibility)."""

    setting_approval_conditions: bool = False
    setting_certificate: bool = False
    both_approved_and_denied: bool = False
    legacy_signer_name: bool = False
    duplicate_condition_types: bool = False
    empty_condition_type: bool = False
    arbitrary_certificate: bool = False
    unknown_usages: bool = False
    duplicate_usages: bool = False


def find_conditions(obj: ObjMap, ctype: str) -> list[ObjMap]:
    """Every condition of type ``ctype``, in order."""
    return [as_dict(c) for c in as_list(map_of(obj, "status").get("conditions"))
            if as_str(as_dict(c).get("type")) == ctype]


def _conditions(obj: ObjMap) -> list[Obj]:
    return [as_dict(c) for c in as_list(map_of(obj, "status").get("conditions"))]


def _usages(obj: ObjMap) -> list[str]:
    return [as_str(u) for u in as_list(map_of(obj, "spec").get("usages"))]


def _options(new: ObjMap, old: ObjMap | None) -> _Options:
    """getValidationOptions."""
    if old is None:
        return _Options()
    types = [as_str(c.get("type")) for c in _conditions(old)]
    usages = _usages(old)
    cert_same = certificate_bytes(new) == certificate_bytes(old)
    return _Options(
        both_approved_and_denied=APPROVED in types and DENIED in types,
        legacy_signer_name=as_str(map_of(old, "spec").get("signerName")) == LEGACY_UNKNOWN,
        duplicate_condition_types=len(set(types)) != len(types),
        empty_condition_type="" in types,
        arbitrary_certificate=cert_same or _validate_certificate(
            certificate_bytes(old)) is not None,
        unknown_usages=any(u not in VALID_USAGES for u in usages),
        duplicate_usages=len(set(usages)) != len(usages))


def _validate(obj: ObjMap, opts: _Options) -> list[FieldError]:
    """validateCertificateSigningRequest."""
    errs = validate_object_meta(map_of(obj, "metadata"), requires_namespace=False,
                                name_fn=lambda _name, _prefix: [])
    spec = map_of(obj, "spec")
    spec_path = Path("spec")
    try:
        check_signature(parse_csr(request_bytes(obj)))
    except CSRError as e:
        errs.append(invalid(spec_path.child("request"), _go_bytes(spec.get("request")), str(e)))
    usages = _usages(obj)
    if not usages:
        errs.append(required(spec_path.child("usages")))
    if not opts.unknown_usages:
        errs.extend(not_supported(spec_path.child("usages").index(i), u, VALID_USAGES)
                    for i, u in enumerate(usages) if u not in VALID_USAGES)
    if not opts.duplicate_usages:
        seen: set[str] = set()
        for i, u in enumerate(usages):
            if u in seen:
                errs.append(duplicate(spec_path.child("usages").index(i), u))
            seen.add(u)
    signer = as_str(spec.get("signerName"))
    if not opts.legacy_signer_name and signer == LEGACY_UNKNOWN:
        errs.append(invalid(spec_path.child("signerName"), signer,
                            "the legacy signerName is not allowed via this API version"))
    else:
        errs.extend(_signer_name_errors(spec_path.child("signerName"), signer))
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds < 600:
        errs.append(invalid(spec_path.child("expirationSeconds"), seconds,
                            "may not specify a duration less than 600 seconds (10 minutes)"))
    errs.extend(_validate_conditions(obj, opts))
    if not opts.arbitrary_certificate:
        problem = _validate_certificate(certificate_bytes(obj))
        if problem is not None:
            errs.append(invalid("status.certificate", "<certificate data>", problem))
    return errs


def _validate_conditions(obj: ObjMap, opts: _Options) -> list[FieldError]:
    path = Path("status", "conditions")
    errs: list[FieldError] = []
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(_conditions(obj)):
        cp = path.index(i)
        ctype, status = as_str(c.get("type")), as_str(c.get("status"))
        if not opts.empty_condition_type and not ctype:
            errs.append(required(cp.child("type")))
        allowed = ("True",) if ctype in _TRUE_ONLY else _STATUSES
        if not status:
            errs.append(required(cp.child("status")))
        elif status not in allowed:
            errs.append(not_supported(cp.child("status"), status, allowed))
        if not opts.both_approved_and_denied:
            exclusive = "Approved and Denied conditions are mutually exclusive"
            if ctype == APPROVED:
                approved = True
                if denied:
                    errs.append(invalid(cp.child("type"), ctype, exclusive))
            elif ctype == DENIED:
                denied = True
                if approved:
                    errs.append(invalid(cp.child("type"), ctype, exclusive))
        if not opts.duplicate_condition_types:
            if ctype in seen:
                errs.append(duplicate(cp.child("type"), ctype))
            seen.add(ctype)
    return errs


def validate_csr(obj: ObjMap) -> list[FieldError]:
    """ValidateCertificateSigningRequestCreate."""
    return _validate(obj, _options(obj, None))


def _validate_update(new: ObjMap, old: ObjMap, opts: _Options) -> list[FieldError]:
    """validateCertificateSigningRequestUpdate."""
    errs = _validate(new, opts)
    path = Path("status", "conditions")
    for ctype in (APPROVED, DENIED, FAILED):
        if len(find_conditions(new, ctype)) < len(find_conditions(old, ctype)):
            errs.append(forbidden(path, f"updates may not remove a condition of type "
                                        f"{json.dumps(ctype)}"))
    if not opts.setting_approval_conditions:
        for ctype in (APPROVED, DENIED):
            old_c, new_c = find_conditions(old, ctype), find_conditions(new, ctype)
            if len(new_c) > len(old_c):
                errs.append(forbidden(path, f"updates may not add a condition of type "
                                            f"{json.dumps(ctype)}"))
            elif len(new_c) == len(old_c) and not _same_conditions(old_c, new_c):
                errs.append(forbidden(path, (
                    f"updates may not modify a condition of type {json.dumps(ctype)}\n"
                    f"-{json.dumps(old_c, sort_keys=True)}\n"
                    f"+{json.dumps(new_c, sort_keys=True)}")))
    if certificate_bytes(new) != certificate_bytes(old):
        cert_path = Path("status", "certificate")
        if not opts.setting_certificate:
            errs.append(forbidden(cert_path, "updates may not set certificate content"))
        elif certificate_bytes(old):
            errs.append(forbidden(cert_path,
                                  "updates may not modify existing certificate content"))
    errs.extend(validate_object_meta_update(map_of(new, "metadata"), map_of(old, "metadata")))
    return errs


def _same_conditions(a: Sequence[ObjMap], b: Sequence[ObjMap]) -> bool:
    """apiequality.Semantic.DeepEqual of two condition lists (times compared as instants)."""
    def norm(c: ObjMap) -> Obj:
        out = {k: v for k, v in c.items() if v not in (None, "")}
        for key in ("lastUpdateTime", "lastTransitionTime"):
            when = parse_time(out.get(key))
            if when is not None:
                out[key] = when.replace(microsecond=0)
        return out
    return [norm(c) for c in a] == [norm(c) for c in b]


def validate_csr_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateCertificateSigningRequestUpdate (the main resource)."""
    return _validate_update(new, old, _options(new, old))


def validate_csr_status_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateCertificateSigningRequestStatusUpdate: the certificate may be set."""
    opts = _options(new, old)
    return _validate_update(new, old, dataclasses.replace(opts, setting_certificate=True))


def validate_csr_approval_update(new: ObjMap, old: ObjMap) -> list[FieldError]:
    """ValidateCertificateSigningRequestApprovalUpdate: Approved/Denied may be set."""
    opts = _options(new, old)
    return _validate_update(new, old, dataclasses.replace(opts, setting_approval_conditions=True))


# -- the strategies' preparation ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requestor:
    """Who created a CSR (user.Info): copied into the spec on create."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] | None = None


def prepare_for_create(obj: ObjMap, requestor: Requestor | None) -> Obj:
    """csrStrategy.PrepareForCreate: the requestor fields are the server's (the creating
    user's, none without one), and nothing is approved or issued yet."""
    out = dict(obj)
    spec = {k: v for k, v in map_of(obj, "spec").items()
            if k not in ("username", "uid", "groups", "extra")}
    if requestor is not None:
        if requestor.username:
            spec["username"] = requestor.username
        if requestor.uid:
            spec["uid"] = requestor.uid
        if requestor.groups:
            spec["groups"] = list(requestor.groups)
        if requestor.extra:
            spec["extra"] = {k: list(v) for k, v in requestor.extra.items()}
    out["spec"] = spec
    out["status"] = {}
    return out


def prepare_for_update(new: ObjMap, old: ObjMap) -> Obj:
    """csrStrategy.PrepareForUpdate: spec and status only change through subresources."""
    out = dict(new)
    for key in ("spec", "status"):
        if key in old:
            out[key] = old[key]
        else:
            out.pop(key, None)
    return out


def _with_timestamps(conditions: Sequence[ObjMap], old: ObjMap, now: datetime) -> list[Obj]:
    """populateConditionTimestamps: a missing lastUpdateTime is now; a missing
    lastTransitionTime is the stored one of a condition of that type and status, or now."""
    stamp = rfc3339(now)
    out = []
    for given in conditions:
        c = dict(given)
        if parse_time(c.get("lastUpdateTime")) is None:
            c["lastUpdateTime"] = stamp
        if parse_time(c.get("lastTransitionTime")) is None:
            c["lastTransitionTime"] = next(
                (o["lastTransitionTime"] for o in _conditions(old)
                 if o.get("type") == c.get("type") and o.get("status") == c.get("status")
                 and parse_time(o.get("lastTransitionTime")) is not None), stamp)
        out.append(c)
    return out


def prepare_for_status_update(new: ObjMap, old: ObjMap, now: datetime) -> Obj:
    """csrStatusStrategy.PrepareForUpdate on a status write (the registry has already taken
    everything but ``status`` from the stored object): the stored Approved/Denied conditions
    are kept where the write has as many of them (adding or removing one stays an error of
    validation), and timestamps are filled."""
    out = dict(new)
    conditions = _conditions(new)
    for ctype in (APPROVED, DENIED):
        old_idx = [i for i, c in enumerate(_conditions(old)) if c.get("type") == ctype]
        new_idx = [i for i, c in enumerate(conditions) if c.get("type") == ctype]
        if len(old_idx) == len(new_idx):
            for o, n in zip(old_idx, new_idx, strict=True):
                conditions[n] = _conditions(old)[o]
    status = dict(map_of(new, "status"))
    if conditions or "conditions" in status:
        status["conditions"] = _with_timestamps(conditions, old, now)
    out["status"] = status
    return out


def prepare_for_approval_update(new: ObjMap, old: ObjMap, now: datetime) -> Obj:
    """csrApprovalStrategy.PrepareForUpdate: only the conditions change (timestamps filled);
    the spec and the rest of the status are the stored ones (an approver may not rewrite the
    request it approves: its signer, subject or requestor)."""
    out = dict(new)
    if "spec" in old:
        out["spec"] = old["spec"]
    else:
        out.pop("spec", None)
    status = dict(map_of(old, "status"))
    conditions = _with_timestamps(_conditions(new), old, now)
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    out["status"] = status
    return out


# -- reading a request's state -----------------------------------------------------------------


def has_true_condition(obj: ObjMap, ctype: str) -> bool:
    """HasTrueCondition."""
    return any(as_str(c.get("status")) == "True" for c in find_conditions(obj, ctype))


def is_approved(obj: ObjMap) -> bool:
    """IsCertificateRequestApproved: an Approved condition and no Denied one."""
    return bool(find_conditions(obj, APPROVED)) and not find_conditions(obj, DENIED)


def condition_summary(obj: ObjMap) -> str:
    """extractCSRStatus: Denied, else Approved, else Pending; then ,Failed and ,Issued."""
    types = {as_str(c.get("type")) for c in _conditions(obj)}
    text = DENIED if DENIED in types else APPROVED if APPROVED in types else "Pending"
    if FAILED in types:
        text += ",Failed"
    if certificate_bytes(obj):
        text += ",Issued"
    return text


# -- admission: CertificateSubjectRestriction --------------------------------------------------


def subject_restriction_error(obj: ObjMap) -> str | None:
    """Why a new request for ``kube-apiserver-client`` naming the ``system:masters`` group is
    refused (None: it is not). A request that does not parse is validation's to refuse."""
    if as_str(map_of(obj, "spec").get("signerName")) != KUBE_APISERVER_CLIENT:
        return None
    try:
        csr = parse_csr(request_bytes(obj))
    except CSRError:
        return None
    if "system:masters" in _organizations(csr):
        return (f"use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not "
                "allowed")
    return None


# -- the built-in signers ----------------------------------------------------------------------


def subject_organizations(subject: x509.Name) -> list[str]:
    """The Organizations of a subject as Go's ``pkix.Name`` reads them (empty ones skipped):
    the groups of a client certificate, what the signers check."""
    return [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            if a.value]


def subject_common_name(subject: x509.Name) -> str:
    """The CommonName of a subject as Go's ``pkix.Name`` reads it: the last non-empty one of
    a subject that has several (so the signers' checks and the authenticated user agree)."""
    names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)
             if a.value]
    return names[-1] if names else ""


def _organizations(csr: x509.CertificateSigningRequest) -> list[str]:
    return subject_organizations(csr.subject)


def _common_name(csr: x509.CertificateSigningRequest) -> str:
    return subject_common_name(csr.subject)


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _san_counts(csr: x509.CertificateSigningRequest) -> dict[type, int]:
    sans = _sans(csr)
    kinds = (x509.DNSName, x509.IPAddress, x509.RFC822Name, x509.UniformResourceIdentifier)
    return {k: (len(sans.get_values_for_type(k)) if sans is not None else 0)
            for k in kinds}


_SERVING: Final = frozenset({"digital signature", "key encipherment", "server auth"})
_SERVING_NO_RSA: Final = frozenset({"digital signature", "server auth"})
_CLIENT: Final = frozenset({"digital signature", "key encipherment", "client auth"})
_CLIENT_NO_RSA: Final = frozenset({"digital signature", "client auth"})


def _kubelet_serving(csr: x509.CertificateSigningRequest, usages: frozenset[str]) -> str | None:
    """ValidateKubeletServingCSR."""
    if _organizations(csr) != ["system:nodes"]:
        return "subject organization is not system:nodes"
    sans = _san_counts(csr)
    if not sans[x509.DNSName] and not sans[x509.IPAddress]:
        return "DNS or IP subjectAltName is required"
    if sans[x509.RFC822Name]:
        return "Email subjectAltNames are not allowed"
    if sans[x509.UniformResourceIdentifier]:
        return "URI subjectAltNames are not allowed"
    if usages not in (_SERVING, _SERVING_NO_RSA):
        return f"usages did not match {_go_list(sorted(_SERVING))}"
    if not _common_name(csr).startswith("system:node:"):
        return "subject common name does not begin with system:node:"
    return None


def _kubelet_client(csr: x509.CertificateSigningRequest, usages: frozenset[str]) -> str | None:
    """ValidateKubeletClientCSR."""
    if _organizations(csr) != ["system:nodes"]:
        return "subject organization is not system:nodes"
    sans = _san_counts(csr)
    for kind, what in ((x509.DNSName, "DNS"), (x509.RFC822Name, "Email"),
                       (x509.IPAddress, "IP"), (x509.UniformResourceIdentifier, "URI")):
        if sans[kind]:
            return f"{what} subjectAltNames are not allowed"
    if not _common_name(csr).startswith("system:node:"):
        return "subject common name does not begin with system:node:"
    if usages not in (_CLIENT, _CLIENT_NO_RSA):
        return f"usages did not match {_go_list(sorted(_CLIENT))}"
    return None


def _apiserver_client(_csr: x509.CertificateSigningRequest,
                      usages: Sequence[str]) -> str | None:
    """validAPIServerClientUsages: client auth required; digital signature and key
    encipherment allowed besides."""
    for usage in usages:
        if usage not in ("digital signature", "key encipherment", "client auth"):
            return f"invalid usage for client certificate: {usage}"
    if "client auth" not in usages:
        return "missing required usage for client certificate: client auth"
    return None


_CHECKS: Final[Mapping[str, Callable[[x509.CertificateSigningRequest, list[str]],
                                     str | None]]] = {
    KUBELET_SERVING: lambda csr, usages: _kubelet_serving(csr, frozenset(usages)),
    KUBE_APISERVER_CLIENT_KUBELET: lambda csr, usages: _kubelet_client(csr, frozenset(usages)),
    KUBE_APISERVER_CLIENT: _apiserver_client,
}
#: The signers svcnet's controller signs for: kube-controller-manager's default signers
#: (legacy-unknown has no signer by default, and v1 refuses the name anyway).
BUILT_IN_SIGNERS: Final = tuple(_CHECKS)


def signer_check(csr: x509.CertificateSigningRequest, usages: Sequence[str],
                 signer_name: str) -> tuple[bool, str | None]:
    """(recognized, why it may not be signed): whether ``signer_name`` is one of the built-in
    signers, and the error of its checks (None: sign it)."""
    check = _CHECKS.get(signer_name)
    if check is None:
        return False, None
    return True, check(csr, list(usages))


# -- the signing policy (PermissiveSigningPolicy) ----------------------------------------------

BACKDATE: Final = timedelta(minutes=5)
SHORT: Final = timedelta(hours=8)
MIN_DURATION: Final = timedelta(minutes=10)


def requested_duration(expiration_seconds: object, default: timedelta) -> timedelta:
    """signer.duration: ``spec.expirationSeconds`` when it is shorter than the signer's
    default, and at least 10 minutes; the default without one."""
    if not isinstance(expiration_seconds, int) or isinstance(expiration_seconds, bool):
        return default
    return max(min(timedelta(seconds=expiration_seconds), default), MIN_DURATION)


def validity_window(ttl: timedelta, now: datetime,
                    signer_not_after: datetime) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a certificate issued ``now`` for ``ttl``: backdated 5
    minutes, a long-lived one ending 5 minutes early, never past the signer's own expiry.
    ValueError when the signer has expired."""
    not_before = now - BACKDATE
    not_after = now + ttl if ttl < SHORT else now + ttl - BACKDATE
    not_after = min(not_after, signer_not_after)
    if not not_before < signer_not_after:
        raise ValueError(f"the signer has expired: NotAfter={signer_not_after}")
    if not now < signer_not_after:
        raise ValueError("refusing to sign a certificate that expired in the past: "
                         f"NotAfter={signer_not_after}")
    return not_before, not_after
