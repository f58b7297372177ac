"""Names the dead-code check (vulture, run by scripts/check) must not report, and why.

Everything else it finds is dead and goes. Add a name here only with its reason.
"""

# ruff: noqa
# mypy: ignore-errors
_ = object()

# Called by the framework, not by our code: asyncio Protocol callbacks, click commands
# (registered by their decorators), aiohttp's site bookkeeping that GatedSite fills in.
_.data_received
_.eof_received
_.pause_writing
_.resume_writing
_.datagram_received
_.error_received
_.supervise
_.forward_nodeports
_.etcd_certs
_.top_services
_._bound_port
_.tc  # dnslib's header flag, set on truncated answers
_.feed_data  # aiohttp's payload-parser interface (spdyrelay.py's upgraded connection)
_.feed_eof
_.log_errors  # RE2's option, read by the library (svcnet/api/crschema.py)

# Fields serialised whole (dataclasses.asdict) into `svcnet status`'s state file.
_.last_exit
_.last_exit_at
_.next_start_at

# Diagnostic counters of the DNS server, kept with the others for a metrics endpoint.
_.chased
_.formerr
_.rebuilds

# The CNI spec's well-known error codes, listed whole (svcnet/node/cni/spec.py).
_.UNSUPPORTED_FIELD
_.TRY_AGAIN_LATER

# prometheus_client reads values.ValueClass when a metric is made (apiserver/workers.py sets it).
_.ValueClass
