"""Tables for svcnet.api.names, after apimachinery's util/validation tests.

Inputs follow ``staging/src/k8s.io/apimachinery/pkg/util/validation/validation_test.go`` and
``ip_test.go``; expected messages are Kubernetes' exact texts.
"""

from __future__ import annotations

import pytest

from svcnet.api import names
from svcnet.api.names import (
    CIDR_INVALID_MSG,
    IP_INVALID_MSG,
    dual_stack_cidrs,
    ip_family_of,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_cidr,
    is_valid_ip,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
    mask_trailing_dash,
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    parse_cidr_sloppy,
    parse_ip_sloppy,
    regex_error,
)

LABEL_RE_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_RE_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_RE_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QNAME_RE_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


@pytest.mark.parametrize("value", [
    "a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "0-1", "1-a", "a" * 63,
])
def test_dns1123_label_valid(value: str) -> None:
    assert is_dns1123_label(value) == []


@pytest.mark.parametrize(("value", "want"), [
    ("", [LABEL_RE_MSG]),
    ("A", [LABEL_RE_MSG]),
    ("aBc", [LABEL_RE_MSG]),
    ("-", [LABEL_RE_MSG]),
    ("a-", [LABEL_RE_MSG]),
    ("-a", [LABEL_RE_MSG]),
    ("a_b", [LABEL_RE_MSG]),
    ("a b", [LABEL_RE_MSG]),
    ("a.b", ["must not contain dots"]),
    ("1.2", ["must not contain dots"]),
    (".a", [LABEL_RE_MSG]),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("a." * 32 + "a", ["must be no more than 63 characters", "must not contain dots"]),
    ("abc\n", [LABEL_RE_MSG]),  # Go's $ does not match before a trailing newline
])
def test_dns1123_label_invalid(value: str, want: list[str]) -> None:
    assert is_dns1123_label(value) == want


@pytest.mark.parametrize("value", [
    "a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "0-1", "1-a", "a.a", "ab.a",
    "abc.a", "a1.a", "a-1.a", "a--1--2--b.a", "a.1", "0.a", "1.2.3.4", "a" * 253,
    ("a" * 63 + ".") * 3 + "a" * 61,
])
def test_dns1123_subdomain_valid(value: str) -> None:
    assert is_dns1123_subdomain(value) == []


@pytest.mark.parametrize(("value", "want"), [
    ("", [SUBDOMAIN_RE_MSG]),
    ("A", [SUBDOMAIN_RE_MSG]),
    ("a..b", [SUBDOMAIN_RE_MSG]),
    (".a", [SUBDOMAIN_RE_MSG]),
    ("a.", [SUBDOMAIN_RE_MSG]),
    ("a.-b", [SUBDOMAIN_RE_MSG]),
    ("a_b.c", [SUBDOMAIN_RE_MSG]),
    ("a" * 254, ["must be no more than 253 characters"]),
])
def test_dns1123_subdomain_invalid(value: str, want: list[str]) -> None:
    assert is_dns1123_subdomain(value) == want


@pytest.mark.parametrize("value", ["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "a" * 63])
def test_dns1035_label_valid(value: str) -> None:
    assert is_dns1035_label(value) == []


@pytest.mark.parametrize(("value", "want"), [
    ("0", [DNS1035_RE_MSG]),
    ("1abc", [DNS1035_RE_MSG]),
    ("a-", [DNS1035_RE_MSG]),
    ("A", [DNS1035_RE_MSG]),
    ("a.b", [DNS1035_RE_MSG]),
    ("", [DNS1035_RE_MSG]),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("1" * 64, ["must be no more than 63 characters", DNS1035_RE_MSG]),
])
def test_dns1035_label_invalid(value: str, want: list[str]) -> None:
    assert is_dns1035_label(value) == want


@pytest.mark.parametrize("value", [
    "simple", "now-with-dashes", "1-starts-with-num", "1234", "simple/simple",
    "now-with-dashes/simple", "now-with-dashes/now-with-dashes", "now.with.dots/simple",
    "now-with.dashes-and.dots/simple", "1-num.2-num/3-num", "1234/5678", "1.2.3.4/5678",
    "Uppercase_Is_OK_123", "example.com/Uppercase_Is_OK_123", "requests.storage-foo",
    "a" * 63, "a" * 253 + "/" + "b" * 63,
])
def test_qualified_name_valid(value: str) -> None:
    assert is_qualified_name(value) == []


@pytest.mark.parametrize(("value", "want"), [
    ("nospecialchars%^=@", [QNAME_RE_MSG]),
    ("cantendwithadash-", [QNAME_RE_MSG]),
    ("-cantstartwithadash-", [QNAME_RE_MSG]),
    ("only/one/slash", [
        "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
        "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
    ("Example.com/abc", ["prefix part " + SUBDOMAIN_RE_MSG]),
    ("example_com/abc", ["prefix part " + SUBDOMAIN_RE_MSG]),
    ("example.com/", ["name part must be non-empty", QNAME_RE_MSG]),
    ("/simple", ["prefix part must be non-empty"]),
    ("a" * 64, ["name part must be no more than 63 characters"]),
    ("a" * 254 + "/abc", ["prefix part must be no more than 253 characters"]),
])
def test_qualified_name_invalid(value: str, want: list[str]) -> None:
    assert is_qualified_name(value) == want


@pytest.mark.parametrize("value", [
    "", "simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "a" * 63,
    "Uppercase_Is_OK_123", "a.b_c-d",
])
def test_label_value_valid(value: str) -> None:
    assert is_valid_label_value(value) == []


LABEL_VALUE_RE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@pytest.mark.parametrize(("value", "want"), [
    ("nospecialchars%^=@", [LABEL_VALUE_RE_MSG]),
    ("Tama-nui-te-rā", [LABEL_VALUE_RE_MSG]),
    ("cantendwithadash-", [LABEL_VALUE_RE_MSG]),
    ("-cantstartwithadash", [LABEL_VALUE_RE_MSG]),
    ("only/one/slash", [LABEL_VALUE_RE_MSG]),
    ("a" * 64, ["must be no more than 63 characters"]),
    # 32 two-byte characters are 64 bytes: Go's len() counts bytes.
    ("é" * 32, ["must be no more than 63 characters", LABEL_VALUE_RE_MSG]),
])
def test_label_value_invalid(value: str, want: list[str]) -> None:
    assert is_valid_label_value(value) == want


@pytest.mark.parametrize("value", [
    "telnet", "re-mail-ck", "pop3", "a", "a-1", "1-a", "a-1-b-2-c", "1-a-2-b-3", "abcdefghijklmno",
])
def test_port_name_valid(value: str) -> None:
    assert is_valid_port_name(value) == []


CHARSET = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
ONE_LETTER = "must contain at least one letter (a-z)"
HYPHENS = "must not contain consecutive hyphens"
ENDS = "must not begin or end with a hyphen"


@pytest.mark.parametrize(("value", "want"), [
    ("", [CHARSET, ONE_LETTER]),
    ("-telnet", [ENDS]),
    ("telnet-", [ENDS]),
    ("abc--def", [HYPHENS]),
    ("--", [ONE_LETTER, HYPHENS, ENDS]),
    ("1234", [ONE_LETTER]),
    ("a b", [CHARSET]),
    ("HTTP", [CHARSET, ONE_LETTER]),
    ("abcdefghijklmnop", ["must be no more than 15 characters"]),
])
def test_port_name_invalid(value: str, want: list[str]) -> None:
    assert is_valid_port_name(value) == want


@pytest.mark.parametrize(("value", "ok"), [
    (1, True), (80, True), (65535, True), (0, False), (-1, False), (65536, False),
])
def test_port_num(value: int, ok: bool) -> None:
    assert is_valid_port_num(value) == ([] if ok else ["must be between 1 and 65535, inclusive"])


@pytest.mark.parametrize("value", [
    "1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1", "fe80::1",
    "2001:DB8:0:0:0:0:0:1", "1:2:3:4:5:6:7:8", "::1.2.3.4",
])
def test_ip_valid(value: str) -> None:
    assert is_valid_ip(value) == []
    assert is_valid_ip(value, strict=False) == []


@pytest.mark.parametrize("value", [
    "", " 1.2.3.4", "1.2.3.4 ", "1.2.3", "1.2.3.4.5", "256.0.0.0", "1.2.3.4/32", "fe80::1%eth0",
    "::ffff::1", "a.b.c.d", "1.2.3.-4", "1:2:3:4:5:6:7:8:9", "1.2.3.4\n",
])
def test_ip_invalid(value: str) -> None:
    assert is_valid_ip(value) == [IP_INVALID_MSG]
    assert is_valid_ip(value, strict=False) == [IP_INVALID_MSG]


@pytest.mark.parametrize(("value", "strict_msg"), [
    ("010.1.1.1", "must not have leading 0s"),
    ("1.1.1.01", "must not have leading 0s"),
    ("::ffff:1.2.3.4", "must not be an IPv4-mapped IPv6 address"),
    ("::ffff:010.1.1.1", "must not have leading 0s"),
])
def test_ip_sloppy_only(value: str, strict_msg: str) -> None:
    assert is_valid_ip(value, strict=False) == []
    assert is_valid_ip(value) == [strict_msg]


def test_parse_ip_sloppy_reads_leading_zeros_as_decimal() -> None:
    assert str(parse_ip_sloppy("010.001.000.009")) == "10.1.0.9"
    assert parse_ip_sloppy("1.2.3.256") is None


@pytest.mark.parametrize(("value", "family"), [
    ("1.2.3.4", "IPv4"), ("2001:db8::1", "IPv6"), ("::ffff:1.2.3.4", "IPv4"), ("x", None),
])
def test_ip_family_of(value: str, family: str | None) -> None:
    assert ip_family_of(value) == family


@pytest.mark.parametrize("value", ["10.0.0.0/8", "2001:db8::/64", "0.0.0.0/0", "::/0",
                                   "1.2.3.4/32", "192.168.0.0/16"])
def test_cidr_valid(value: str) -> None:
    assert is_valid_cidr(value) == []


@pytest.mark.parametrize("value", ["10.0.0.0", "10.0.0.0/33", "::/129", "foo/8", " 10.0.0.0/8",
                                   "10.0.0.0/-1", "10.0.0.0/ 8", "", "/8", "10.0.0.0/8/8"])
def test_cidr_invalid(value: str) -> None:
    assert is_valid_cidr(value) == [CIDR_INVALID_MSG]
    assert is_valid_cidr(value, strict=False) == [CIDR_INVALID_MSG]


@pytest.mark.parametrize(("value", "strict_msg"), [
    ("10.0.0.1/8", "must not have bits set beyond the prefix length"),
    ("010.0.0.0/8", "must not have leading 0s in IP or prefix length"),
    ("10.0.0.0/08", "must not have leading 0s in IP or prefix length"),
    ("::ffff:1.2.3.0/120", "must not have an IPv4-mapped IPv6 address"),
])
def test_cidr_sloppy_only(value: str, strict_msg: str) -> None:
    assert is_valid_cidr(value, strict=False) == []
    assert is_valid_cidr(value) == [strict_msg]


def test_parse_cidr_sloppy_masks_host_bits() -> None:
    assert str(parse_cidr_sloppy("10.1.2.3/8")) == "10.0.0.0/8"


@pytest.mark.parametrize(("value", "want"), [
    ("abc-", "aba"),  # upstream slices two characters off and appends "a"
    ("a-", "a"),
    ("-", "-"),
    ("abc", "abc"),
    ("", ""),
])
def test_mask_trailing_dash(value: str, want: str) -> None:
    assert mask_trailing_dash(value) == want


@pytest.mark.parametrize(("fn", "value", "prefix", "ok"), [
    (name_is_dns1035_label, "web-", True, True),
    (name_is_dns1035_label, "web-", False, False),
    (name_is_dns1035_label, "1web-", True, False),
    (name_is_dns1035_label, "-", True, False),
    (name_is_dns1035_label, "a-", True, True),
    (name_is_dns_label, "1web-", True, True),
    (name_is_dns_label, "a.b-", True, False),
    (name_is_dns_subdomain, "a.b-", True, True),
    (name_is_dns_subdomain, "a.b.", True, False),
])
def test_name_validators(fn: names.NameValidator, value: str, prefix: bool, ok: bool) -> None:
    assert (fn(value, prefix) == []) is ok


def test_regex_error_format() -> None:
    assert regex_error("msg", "re") == "msg (regex used for validation is 're')"
    assert regex_error("msg", "re", "x") == "msg (e.g. 'x', regex used for validation is 're')"
    assert regex_error("msg", "re", "x", "y") == (
        "msg (e.g. 'x',  or 'y', regex used for validation is 're')")


@pytest.mark.parametrize(("values", "want"), [
    (["10.96.0.0/12"], ["10.96.0.0/12"]),
    (["10.96.0.0/12,fd00:10:96::/112"], ["10.96.0.0/12", "fd00:10:96::/112"]),
    (["fd00:10:96::/112, 10.96.0.0/12"], ["fd00:10:96::/112", "10.96.0.0/12"]),
    (["10.96.0.0/12", "fd00:10:96::/112"], ["10.96.0.0/12", "fd00:10:96::/112"]),
    (["10.96.0.5/12"], ["10.96.0.0/12"]),  # ParseCIDRSloppy masks host bits
])
def test_dual_stack_cidrs(values: list[str], want: list[str]) -> None:
    assert dual_stack_cidrs(values, "--service-cidr") == want


@pytest.mark.parametrize(("values", "message"), [
    ([""], "--service-cidr must contain at least one valid cidr"),
    (["10.96.0.0/12,10.0.0.0/24"],
     "--service-cidr[0] and --service-cidr[1] must be of different IP family"),
    (["10.96.0.0/12,fd00::/112,10.0.0.0/24"], "--service-cidr must not contain more than two"),
    (["10.96.0.0/12,nope"], "--service-cidr[1] 'nope' is not a valid cidr"),
])
def test_dual_stack_cidrs_refused(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        dual_stack_cidrs(values, "--service-cidr")
