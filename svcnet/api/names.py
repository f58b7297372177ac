"""Kubernetes' string-format checks, with Kubernetes' exact error texts.

Mirrors, function by function:

* ``staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go`` — DNS labels and
  subdomains, port names and numbers, ``RegexError``/``MaxLenError``/``InclusiveRangeError``;
* ``staging/src/k8s.io/apimachinery/pkg/api/validate/content/kube.go`` — label keys
  ("qualified names") and label values;
* ``staging/src/k8s.io/apimachinery/pkg/util/validation/ip.go`` — IP and CIDR parsing for the
  "legacy" fields (``clusterIPs``, ``externalIPs``, ``loadBalancerSourceRanges``, ...);
* ``staging/src/k8s.io/apimachinery/pkg/api/validation/generic.go`` — the ``ValidateNameFunc``
  family used for ``metadata.name``/``generateName`` and ``maskTrailingDash``.

Every ``is_*`` function returns a list of human-readable problems (empty = valid), exactly as
the Go functions return ``[]string``; callers wrap each message in a ``FieldError``.

Lengths are measured in UTF-8 bytes because Go's ``len(string)`` is a byte count: a 40-character
name made of 2-byte characters is "too long" for a 63-limit in Kubernetes, and must be here too.
Regexes are applied with ``re.fullmatch`` because Go's ``^...$`` never matches before a trailing
newline, while Python's ``$`` would.

Message texts follow the Kubernetes v1.33 line (``MaxLenError`` says "characters"; upstream
master has started to say "bytes" in the new ``content`` package).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# --------------------------------------------------------------------------------------------
# generic message builders (util/validation/validation.go)


def max_len_error(length: int) -> str:
    """MaxLenError."""
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """RegexError: note the doubled space before " or " that upstream's loop produces."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def empty_error() -> str:
    """EmptyError."""
    return "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    """InclusiveRangeError."""
    return f"must be between {lo} and {hi}, inclusive"


def _blen(value: str) -> int:
    """Go's len(): bytes, not code points."""
    return len(value.encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------------------------
# DNS names

DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_ERR_MSG: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_LABEL_MAX_LENGTH: Final = 63

DNS1123_SUBDOMAIN_FMT: Final = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_ERR_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_MAX_LENGTH: Final = 253

DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_ERR_MSG: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
DNS1035_LABEL_MAX_LENGTH: Final = 63

_DNS1123_LABEL_RE: Final = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE: Final = re.compile(DNS1035_LABEL_FMT)


def is_dns1123_label(value: str) -> list[str]:
    """IsDNS1123Label: ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63 bytes."""
    errs: list[str] = []
    if _blen(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # A valid subdomain that is not a valid label: length was checked above, so the
            # only possible problem is the dots (upstream gives this friendlier message).
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_ERR_MSG, DNS1123_LABEL_FMT,
                                    "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """IsDNS1123Subdomain: dot-joined DNS-1123 labels, at most 253 bytes."""
    errs: list[str] = []
    if _blen(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_ERR_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    """IsDNS1035Label: like a DNS-1123 label but must start with a letter."""
    errs: list[str] = []
    if _blen(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(regex_error(DNS1035_LABEL_ERR_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


# --------------------------------------------------------------------------------------------
# label keys ("qualified names") and label values

QUALIFIED_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_ERR_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
QUALIFIED_NAME_MAX_LENGTH: Final = 63
LABEL_VALUE_FMT: Final = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_ERR_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
LABEL_VALUE_MAX_LENGTH: Final = 63

_QUALIFIED_NAME_RE: Final = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE: Final = re.compile(LABEL_VALUE_FMT)


def is_qualified_name(value: str) -> list[str]:
    """IsQualifiedName (= content.IsLabelKey): ``[prefix/]name``.

    The optional prefix must be a DNS-1123 subdomain; the name is at most 63 bytes of
    alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
    """
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a valid label key "
            + regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT,
                          "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + empty_error())
    elif _blen(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append("name part " + regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """IsValidLabelValue: empty, or a qualified-name-style token of at most 63 bytes."""
    errs: list[str] = []
    if _blen(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(LABEL_VALUE_ERR_MSG, LABEL_VALUE_FMT,
                                "MyValue", "my_value", "12345"))
    return errs


# --------------------------------------------------------------------------------------------
# ports

_PORT_NAME_CHARSET_RE: Final = re.compile("[-a-z0-9]+")
_PORT_NAME_ONE_LETTER_RE: Final = re.compile("[a-z]")


def is_valid_port_num(port: int) -> list[str]:
    """IsValidPortNum: 1..65535."""
    if 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IsValidPortName (IANA_SVC_NAME, RFC 6335), lower case only.

    Every failed rule is reported, in upstream's order.
    """
    errs: list[str] = []
    if _blen(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_ONE_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


# --------------------------------------------------------------------------------------------
# IP addresses and CIDRs (util/validation/ip.go + k8s.io/utils/net ParseIPSloppy)

IP_INVALID_MSG: Final = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_INVALID_MSG: Final = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"

_DIGITS_RE: Final = re.compile("[0-9]+")


def _parse_ipv4_sloppy(value: str) -> ipaddress.IPv4Address | None:
    """Go's pre-1.17 IPv4 parser: four decimal octets, leading zeros allowed (as decimal)."""
    parts = value.split(".")
    if len(parts) != 4:
        return None
    octets: list[int] = []
    for part in parts:
        if not _DIGITS_RE.fullmatch(part) or len(part) > 10:
            return None
        n = int(part)
        if n > 255:
            return None
        octets.append(n)
    return ipaddress.IPv4Address(".".join(str(o) for o in octets))


def parse_ip_sloppy(value: str) -> IPAddress | None:
    """netutils.ParseIPSloppy: what Kubernetes has always accepted as an IP.

    Accepts IPv4 with leading zeros ("010.1.1.1" means 10.1.1.1) and IPv6 in any textual form
    (including an embedded dotted quad); rejects zones ("fe80::1%eth0"), CIDR suffixes,
    whitespace and anything else. Returns the parsed address or None.
    """
    if not value or "%" in value or value.strip() != value:
        return None
    if ":" not in value:
        return _parse_ipv4_sloppy(value)
    try:
        return ipaddress.IPv6Address(value)
    except ValueError:
        pass
    # An IPv6 address whose embedded IPv4 tail has leading zeros ("::ffff:010.1.1.1").
    head, sep, tail = value.rpartition(":")
    if sep and "." in tail:
        v4 = _parse_ipv4_sloppy(tail)
        if v4 is not None:
            try:
                return ipaddress.IPv6Address(f"{head}:{v4}")
            except ValueError:
                return None
    return None


def _parse_ip_strict(value: str) -> IPAddress | None:
    """netip.ParseAddr minus zones: no leading zeros in IPv4 octets."""
    if not value or "%" in value or value.strip() != value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_valid_ip(value: str, *, strict: bool = True) -> list[str]:
    """IsValidIPForLegacyField: the check applied to clusterIPs, externalIPs, ingress IPs...

    ``strict`` is the StrictIPCIDRValidation behaviour: it additionally rejects IPv4 octets
    with leading zeros (ambiguous: libc reads "010" as octal 8) and IPv4-mapped IPv6
    addresses. We default to strict because an octal/decimal ambiguity in a data plane is a
    security bug; pass ``strict=False`` for the historical behaviour.
    """
    ip = parse_ip_sloppy(value)
    if ip is None:
        return [IP_INVALID_MSG]
    errs: list[str] = []
    if strict:
        # Upstream re-parses with netip.ParseAddr: a failure there can only mean leading
        # zeros, and then the (invalid) netip.Addr is not "4in6", so at most one message.
        if _parse_ip_strict(value) is None:
            errs.append("must not have leading 0s")
        elif isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            errs.append("must not be an IPv4-mapped IPv6 address")
    return errs


def parse_cidr_sloppy(value: str) -> IPNetwork | None:
    """netutils.ParseCIDRSloppy: ``<ip>/<prefix>``; host bits may be set (they are masked)."""
    ip_text, sep, bits_text = value.partition("/")
    if not sep or not _DIGITS_RE.fullmatch(bits_text) or len(bits_text) > 3:
        return None
    ip = parse_ip_sloppy(ip_text)
    if ip is None:
        return None
    bits = int(bits_text)
    if bits > ip.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{ip}/{bits}", strict=False)


def is_valid_cidr(value: str, *, strict: bool = True) -> list[str]:
    """IsValidCIDRForLegacyField (loadBalancerSourceRanges, ...).

    ``strict`` (StrictIPCIDRValidation) also rejects leading zeros in the address or the
    prefix length, IPv4-mapped IPv6 addresses and host bits set beyond the prefix length.
    """
    net = parse_cidr_sloppy(value)
    if net is None:
        return [CIDR_INVALID_MSG]
    if not strict:
        return []
    ip_text, _, bits_text = value.partition("/")
    ip = _parse_ip_strict(ip_text)
    if ip is None or (len(bits_text) > 1 and bits_text.startswith("0")):
        return ["must not have leading 0s in IP or prefix length"]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ["must not have an IPv4-mapped IPv6 address"]
    if ip != net.network_address:
        return ["must not have bits set beyond the prefix length"]
    return []


def ip_family_of(value: str) -> str | None:
    """"IPv4"/"IPv6" for a (sloppily) valid IP, else None (netutils.IPFamilyOfString)."""
    ip = parse_ip_sloppy(value)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return "IPv6"
    # Go's net.IP.To4() treats IPv4-mapped IPv6 as IPv4.
    return "IPv4"


def dual_stack_cidrs(values: Sequence[str], flag: str) -> list[str]:
    """A CIDR flag as kube-apiserver's --service-cluster-ip-range and kube-controller-manager's
    --cluster-cidr take it: comma-separated (here the flag may also be repeated), at most two
    entries, of different families when two, primary first (validateClusterIPFlags,
    nodeipam's processCIDRs). Host bits are masked as ParseCIDRSloppy does. Returns the CIDRs'
    canonical texts; raises ValueError naming ``flag``."""
    entries = [part.strip() for value in values for part in value.split(",")]
    if not entries or entries == [""]:
        raise ValueError(f"{flag} must contain at least one valid cidr")
    if len(entries) > 2:
        raise ValueError(f"{flag} must not contain more than two entries")
    nets: list[IPNetwork] = []
    for i, text in enumerate(entries):
        net = parse_cidr_sloppy(text)
        if net is None:
            raise ValueError(f"{flag}[{i}] {text!r} is not a valid cidr")
        nets.append(net)
    if len(nets) == 2 and nets[0].version == nets[1].version:
        raise ValueError(f"{flag}[0] and {flag}[1] must be of different IP family")
    return [str(n) for n in nets]


# --------------------------------------------------------------------------------------------
# ValidateNameFunc family (api/validation/generic.go)

NameValidator = Callable[[str, bool], list[str]]


def mask_trailing_dash(name: str) -> str:
    """maskTrailingDash, including its quirk: it replaces the LAST TWO characters by "a".

    Upstream slices ``name[:len(name)-2]``, so "ab-" becomes "aa" (and the character before
    the dash is never validated). A bare "-" would make Go panic; we leave it unchanged, so
    it is reported as an invalid name instead.
    """
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    """NameIsDNSSubdomain."""
    return is_dns1123_subdomain(mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    """NameIsDNSLabel (also ValidateNamespaceName)."""
    return is_dns1123_label(mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    """NameIsDNS1035Label (ValidateServiceName)."""
    return is_dns1035_label(mask_trailing_dash(name) if prefix else name)


validate_namespace_name: Final[NameValidator] = name_is_dns_label
