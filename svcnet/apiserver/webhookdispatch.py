"""Admission webhooks, the dispatcher: the mutating and validating webhooks of a write called
in kube-apiserver's order, their failures weighed, their patches applied.

Theory of operation
-------------------
Followed: k8s.io/apiserver/pkg/admission/plugin/webhook/mutating/dispatcher.go and
reinvocationcontext.go, validating/dispatcher.go, generic/webhook.go (``Dispatch``). What a
webhook matches and what it is sent are :mod:`svcnet.apiserver.webhooks`; the HTTPS call is
:mod:`svcnet.apiserver.webhookclient`.

The interface, for the server (the lead wires it into the write pipeline)::

    dispatcher = WebhookDispatcher(
        mutating=lambda: cache.mutating(),        # the current configurations, defaulted
        validating=lambda: cache.validating(),
        namespace_labels=labels_of,               # async (name) -> labels, None if no namespace
        resolve_service=endpoint_resolver(get_service, list_slices),
        equivalents=ServedEquivalents(lambda: custom_resources()))

    attrs = WebhookAttributes.of(admission_attrs, version=..., kind=..., dry_run=...,
                                 options={...}, user=current_user())
    if dispatcher.has_mutating:                  # cheap, no await: the no-webhook fast path
        obj = await dispatcher.mutate(attrs)     # then default and validate obj again
    ...
    if dispatcher.has_validating:
        await dispatcher.validate(replace(attrs, object=obj))   # raises a StatusError to refuse

``mutate`` returns the object to write: ``attrs.object`` itself when no webhook changed it,
otherwise the patched object at the version ``attrs.object`` was given in. A refusal is the
webhook's Status (:func:`~svcnet.apiserver.webhooks.denied`); a failed call under
``failurePolicy: Fail`` is upstream's 500 InternalError ``failed calling webhook "NAME": ...``
(that one 500 is upstream's contract); under ``Ignore`` the webhook is skipped and logged.
Warnings in answers go to the request's ``Warning`` headers (:mod:`svcnet.registry.
requestwarnings`).

Mutating webhooks are called one after the other, configurations by name and webhooks in
order, each deciding whether it matches (its object selector included) and being sent the
object as the previous ones left it. Each JSON patch is applied with the project's RFC 6902
code (:func:`svcnet.apiserver.patch.json_patch`); a patch that does not apply is a 500, as
upstream's, whatever the failure policy. Reinvocation (``reinvocationPolicy: IfNeeded``) is
upstream's: when a webhook changes the object, the ``IfNeeded`` webhooks called before it are
marked; if any were, a second round runs after the first, calling only the marked webhooks
(never one that did not match in the first round); a change in the second round marks more,
but there is no third round. Upstream reinvokes its in-tree mutating admissions with the
webhooks; ``mutate``'s ``rerun_in_tree`` hook lets the server do the same (run between the
rounds; a change it makes marks every ``IfNeeded`` webhook called so far, as upstream's
"output changed since the last webhook invocation").

Validating webhooks are called concurrently; every one is waited for, and the first refusal
or failure in webhook order is the answer (upstream reports the first to arrive).
Both dispatchers skip the admission configuration kinds themselves.

A dry run reaching a webhook whose ``sideEffects`` is neither ``None`` nor ``NoneOnDryRun`` is
upstream's 400 ``admission webhook "NAME" does not support dry run``, whatever the failure
policy.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from svcnet.api.errors import StatusError, go_quote, internal_error
from svcnet.apiserver.patch import json_patch
from svcnet.apiserver.webhookclient import ResolveService, TransportError, WebhookClient
from svcnet.apiserver.webhooks import (
    AdmissionResponse,
    CallFailed,
    EquivalentResources,
    GroupVersionKind,
    InvalidResponse,
    Invocation,
    ServedEquivalents,
    UndecodableResponse,
    Webhook,
    WebhookAttributes,
    admission_review,
    convert_served,
    denied,
    dry_run_unsupported,
    find_invocation,
    is_exempt,
    match_conditions,
    namespace_selector_matches,
    needs_namespace_labels,
    object_selector_matches,
    parse_webhooks,
    review_version,
    verify_response,
)
from svcnet.registry import requestwarnings

__all__ = ["NamespaceLabels", "WebhookDispatcher"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

NamespaceLabels = Callable[[str], Awaitable[Mapping[str, str] | None]]
"""A namespace's labels (None when there is no such namespace)."""

Convert = Callable[[Obj, GroupVersionKind], Obj]


@dataclass(slots=True)
class _Reinvocation:
    """webhookReinvokeContext: which IfNeeded webhooks a later change asks to call again."""

    previously_invoked: set[str] = field(default_factory=set)
    reinvoke: set[str] = field(default_factory=set)
    should_reinvoke: bool = False
    last_output: Obj | None = None

    def require_previous(self) -> None:
        self.reinvoke |= self.previously_invoked
        self.previously_invoked = set()


@dataclass(slots=True)
class _Matching:
    """Per-request memo: the namespace's labels, read at most once."""

    labels: Mapping[str, str] | None = None
    read: bool = False


class WebhookDispatcher:
    """Calls a write's admission webhooks (see the module docstring for the interface)."""

    def __init__(self, *, mutating: Callable[[], Sequence[Obj]],
                 validating: Callable[[], Sequence[Obj]],
                 namespace_labels: NamespaceLabels, resolve_service: ResolveService,
                 equivalents: EquivalentResources | None = None,
                 convert: Convert = convert_served, client: WebhookClient | None = None,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._mutating = mutating
        self._validating = validating
        self._namespace_labels = namespace_labels
        self._equivalents = equivalents if equivalents is not None else ServedEquivalents()
        self._convert = convert
        self._client = client if client is not None else WebhookClient(resolve_service)
        self._new_uid = new_uid
        self._parsed: dict[bool, dict[tuple[str, str, str], list[Webhook]]] = {True: {},
                                                                                False: {}}

    @property
    def has_mutating(self) -> bool:
        """Whether any MutatingWebhookConfiguration exists (no await: the fast path)."""
        return bool(self._mutating())

    @property
    def has_validating(self) -> bool:
        return bool(self._validating())

    async def close(self) -> None:
        await self._client.close()

    # -- configurations ---------------------------------------------------------------------

    def _webhooks(self, configurations: Sequence[Obj], mutating: bool) -> list[Webhook]:
        """Every webhook of ``configurations``, configurations by name; each configuration
        parsed once per (uid, resourceVersion)."""
        parsed = self._parsed[mutating]
        kept: dict[tuple[str, str, str], list[Webhook]] = {}
        out: list[Webhook] = []
        for config in sorted(configurations,
                             key=lambda c: str((c.get("metadata") or {}).get("name") or "")):
            meta = config.get("metadata") or {}
            key = (str(meta.get("name") or ""), str(meta.get("uid") or ""),
                   str(meta.get("resourceVersion") or ""))
            hooks = parsed.get(key) if key[2] else None
            if hooks is None:
                hooks = parse_webhooks(config, mutating=mutating)
            if key[2]:
                kept[key] = hooks
            out.extend(hooks)
        self._parsed[mutating] = kept
        return out

    # -- matching -----------------------------------------------------------------------------

    async def _should_call(self, hook: Webhook, attrs: WebhookAttributes,
                           memo: _Matching) -> Invocation | None:
        """ShouldCallHook: the invocation, None, or a StatusError raised (a selector that
        does not parse, a namespace that does not exist, a match condition's evaluation
        error under ``failurePolicy: Fail``)."""
        invocation = find_invocation(hook, attrs, self._equivalents)
        if invocation is None:
            return None
        labels: Mapping[str, str] | None = None
        if needs_namespace_labels(hook, attrs):
            if not memo.read:
                memo.labels = await self._namespace_labels(attrs.namespace or attrs.name)
                memo.read = True
            labels = memo.labels
        if not namespace_selector_matches(hook, attrs, labels):
            return None
        if not object_selector_matches(hook, attrs):
            return None
        if hook.match_conditions and not match_conditions(
                invocation, attrs, self._at(attrs.object, invocation.kind),
                self._at(attrs.old_object, invocation.kind)):
            return None
        return invocation

    def _at(self, obj: Obj | None, kind: GroupVersionKind) -> Obj | None:
        return None if obj is None else self._convert(obj, kind)

    # -- one call -----------------------------------------------------------------------------

    async def _call(self, invocation: Invocation, attrs: WebhookAttributes,
                    obj: Obj | None, old: Obj | None) -> AdmissionResponse:
        """callHook / callAttrMutatingHook up to the answer: raises :class:`CallFailed`
        (failure policy applies), or a StatusError (a refusal, a dry run it cannot take)."""
        hook = invocation.webhook
        if attrs.dry_run:
            if hook.side_effects is None:
                raise CallFailed(hook.name, "Webhook SideEffects is nil")
            if hook.side_effects not in ("None", "NoneOnDryRun"):
                raise dry_run_unsupported(hook.name)
        version = review_version(hook)
        if version is None:
            raise CallFailed(hook.name, "could not create admission objects: webhook does not "
                             "accept known AdmissionReview versions (v1, v1beta1)")
        if not hook.client.url and not hook.client.is_service:
            raise CallFailed(hook.name, "could not get REST client: "
                             + str(CallFailed(hook.name, "webhook configuration must have "
                                              "either service or URL")))
        uid = self._new_uid()
        review = admission_review(invocation, attrs, uid, version, obj, old)
        try:
            answer = await self._client.post(hook.client, review, hook.timeout_seconds)
        except TransportError as e:
            raise CallFailed(hook.name, f"failed to call webhook: {e}") from e
        try:
            response = verify_response(version, uid, hook.mutating, answer)
        except UndecodableResponse as e:
            raise CallFailed(hook.name, f"failed to call webhook: {e}") from e
        except InvalidResponse as e:
            raise CallFailed(hook.name, f"received invalid webhook response: {e}") from e
        requestwarnings.add(*response.warnings)
        if not response.allowed:
            raise denied(hook.name, response.result)
        return response

    # -- mutating -----------------------------------------------------------------------------

    async def mutate(self, attrs: WebhookAttributes, *,
                     rerun_in_tree: Callable[[Obj], Obj | Awaitable[Obj]] | None = None
                     ) -> Obj | None:
        """The object after the mutating webhooks (``attrs.object`` itself if none changed
        it); raises a StatusError to refuse the write."""
        if is_exempt(attrs):
            return attrs.object
        hooks = self._webhooks(self._mutating(), True)
        if not hooks:
            return attrs.object
        state = _Reinvocation()
        obj = await self._mutation_round(attrs, hooks, state, reinvoking=False)
        if state.should_reinvoke:
            if rerun_in_tree is not None and obj is not None:
                rerun = rerun_in_tree(obj)
                obj = await rerun if inspect.isawaitable(rerun) else rerun
                if obj != state.last_output:
                    state.require_previous()
            obj = await self._mutation_round(replace(attrs, object=obj), hooks, state,
                                             reinvoking=True)
        return obj

    def _as_given(self, obj: Obj | None, attrs: WebhookAttributes) -> Obj | None:
        """``obj`` back at the version of the object the round was given."""
        if obj is None or attrs.object is None or obj is attrs.object:
            return obj
        original = str(attrs.object.get("apiVersion") or "")
        if not original or obj.get("apiVersion") == original:
            return obj
        group, _, version = original.rpartition("/")
        return self._convert(obj, GroupVersionKind(group, version, str(obj.get("kind") or "")))

    async def _mutation_round(self, attrs: WebhookAttributes, hooks: list[Webhook],
                              state: _Reinvocation, *, reinvoking: bool) -> Obj | None:
        obj = attrs.object
        memo = _Matching()
        for hook in hooks:
            invocation = await self._should_call(hook, replace(attrs, object=obj), memo)
            if invocation is None:
                continue
            if reinvoking and hook.uid not in state.reinvoke:
                continue
            changed = False
            try:
                obj, changed = await self._call_mutating(invocation, attrs, obj)
            except CallFailed as e:
                if not hook.ignores_failures:
                    raise e.status_error() from e
                log.warning("Failed calling webhook, failing open %s: %s", hook.name, e)
            finally:
                if changed:
                    state.require_previous()
                    state.should_reinvoke = True
                if hook.reinvoke_if_needed:
                    state.previously_invoked.add(hook.uid)
        obj = self._as_given(obj, attrs)
        state.last_output = obj
        return obj

    async def _call_mutating(self, invocation: Invocation, attrs: WebhookAttributes,
                             obj: Obj | None) -> tuple[Obj | None, bool]:
        """One mutating webhook: the object after its patch (at the invocation's version when
        it patched), and whether the patch changed it."""
        hook = invocation.webhook
        versioned = self._at(obj, invocation.kind)
        response = await self._call(invocation, attrs, versioned,
                                    self._at(attrs.old_object, invocation.kind))
        if not response.patch:
            return obj, False
        try:
            ops = json.loads(response.patch)
        except ValueError as e:
            raise CallFailed(hook.name,
                             f"received undecodable patch in webhook response: {e}") from e
        if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
            what = "value" if not isinstance(ops, list) else "array element"
            raise CallFailed(hook.name, "received undecodable patch in webhook response: json: "
                             f"cannot unmarshal {what} into Go value of type jsonpatch.Patch")
        if not ops:
            return obj, False
        if versioned is None:
            raise internal_error(f"admission webhook {go_quote(hook.name)} attempted to modify "
                                 "the object, which is not supported for this operation")
        if response.patch_type != "JSONPatch":
            raise CallFailed(hook.name, f"unsupported patch type {go_quote(response.patch_type)}")
        try:
            patched = json_patch(versioned, ops)
        except StatusError as e:  # evanphx's message is the cause of the generic 422
            raise internal_error(str(e.__cause__ or e.message)) from e
        return patched, patched != versioned

    # -- validating ---------------------------------------------------------------------------

    async def validate(self, attrs: WebhookAttributes) -> None:
        """Call the matching validating webhooks concurrently; raises a StatusError (the
        first refusal or failure, in webhook order) to refuse the write."""
        if is_exempt(attrs):
            return
        hooks = self._webhooks(self._validating(), False)
        if not hooks:
            return
        memo = _Matching()
        invocations = [inv for hook in hooks
                       if (inv := await self._should_call(hook, attrs, memo)) is not None]
        if not invocations:
            return
        results = await asyncio.gather(*(self._validate_one(inv, attrs) for inv in invocations),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _validate_one(self, invocation: Invocation, attrs: WebhookAttributes) -> None:
        hook = invocation.webhook
        try:
            await self._call(invocation, attrs, self._at(attrs.object, invocation.kind),
                             self._at(attrs.old_object, invocation.kind))
        except CallFailed as e:
            if not hook.ignores_failures:
                raise e.status_error() from e
            log.warning("Failed calling webhook, failing open %s: %s", hook.name, e)
