"""The RBAC authorizer and escalation check, over the registries of the four RBAC kinds.

Theory of operation
-------------------
plugin/pkg/auth/authorizer/rbac/rbac.go: after svcnet's fixed identities (admin, nodes, the
read-only DNS identity: :mod:`svcnet.apiserver.auth`) comes RBAC. For a request in namespace
``ns`` the rules that apply are those of every ClusterRoleBinding, then of every RoleBinding in
``ns``, whose subjects name the user (its name, one of its groups, or the ServiceAccount it
is); each binding's ``roleRef`` is read (a missing role contributes nothing). The request is
allowed when one rule covers it (:func:`svcnet.api.rbac.rule_allows`).

Upstream reads bindings through informers, so a new binding takes effect a moment later; here
they are read from the store on each decision (a few small prefix reads, and only for users
the fixed identities did not already allow), so a binding takes effect with the write that
created it.

Escalation (pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased):
writing a role, or a binding to one, needs the permissions it grants, unless the writer may
``escalate`` roles (for roles) or ``bind`` that role (for bindings). The registries' strategies
call :meth:`RBAC.check_escalation` from their create and update paths with the writer read
from the request context; the server's own writes (the bootstrap policy) have no user and pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from svcnet.api.access import as_dict, as_list, as_str
from svcnet.api.errors import StatusError, go_quote
from svcnet.api.rbac import GROUP, Attributes, applies_to, breakdown, covers, rule_allows
from svcnet.apiserver.auth import ADMIN_GROUP, User, current_user
from svcnet.registry.generic import Registry

__all__ = ["AUTHENTICATED_GROUP", "RBAC", "effective_groups"]

Rule = Mapping[str, Any]
AUTHENTICATED_GROUP = "system:authenticated"


def effective_groups(user: User) -> tuple[str, ...]:
    """The user's groups as authorizers see them: plus ``system:authenticated``."""
    return (*user.groups, AUTHENTICATED_GROUP)


class RBAC:
    """Rules that apply to a user, read from the registries of the RBAC kinds."""

    def __init__(self, registries: Mapping[str, Registry],
                 fixed: Callable[[User, Attributes], bool]) -> None:
        self._roles = registries[f"roles.{GROUP}"]
        self._cluster_roles = registries[f"clusterroles.{GROUP}"]
        self._bindings = registries[f"rolebindings.{GROUP}"]
        self._cluster_bindings = registries[f"clusterrolebindings.{GROUP}"]
        self._fixed = fixed

    async def _role_rules(self, ref: Mapping[str, Any], namespace: str) -> list[Rule]:
        try:
            if ref.get("kind") == "ClusterRole":
                role = await self._cluster_roles.get("", as_str(ref.get("name")))
            else:
                role = await self._roles.get(namespace, as_str(ref.get("name")))
        except StatusError:
            return []
        return [as_dict(r) for r in as_list(role.get("rules"))]

    async def rules_for(self, user: User, namespace: str) -> list[Rule]:
        """VisitRulesFor: cluster-wide bindings' rules, then ``namespace``'s bindings'."""
        groups = effective_groups(user)
        rules: list[Rule] = []
        for binding in (await self._cluster_bindings.list()).items:
            if any(applies_to(as_dict(s), user.name, groups, "")
                   for s in as_list(binding.get("subjects"))):
                rules.extend(await self._role_rules(as_dict(binding.get("roleRef")), ""))
        if namespace:
            for binding in (await self._bindings.list(namespace)).items:
                if any(applies_to(as_dict(s), user.name, groups, namespace)
                       for s in as_list(binding.get("subjects"))):
                    rules.extend(await self._role_rules(as_dict(binding.get("roleRef")),
                                                        namespace))
        return rules

    async def rbac_allows(self, user: User, attrs: Attributes) -> bool:
        """RBAC's answer alone (RBAC never denies: False means "no rule says yes")."""
        return any(rule_allows(rule, attrs) for rule in await self.rules_for(user,
                                                                             attrs.namespace))

    async def allowed(self, user: User, attrs: Attributes) -> bool:
        """The fixed identities' answer, else RBAC's."""
        return self._fixed(user, attrs) or await self.rbac_allows(user, attrs)

    async def check_escalation(self, resource: str, namespace: str, obj: Mapping[str, Any],
                               old: Mapping[str, Any] | None = None) -> None:
        """403 when the writer would grant permissions it does not hold (see the docstring)."""
        user = current_user()
        if user is None:
            return
        name = as_str(as_dict(obj.get("metadata")).get("name"))
        if resource == "clusterroles" and obj.get("aggregationRule") and (
                old is None or old.get("aggregationRule") != obj.get("aggregationRule")) and \
                ADMIN_GROUP not in user.groups:
            # An aggregation rule grants whatever the roles it selects grant, later: only
            # cluster admins may set one (clusterrole/policybased, EscalationAllowed).
            raise StatusError(403, "Forbidden", (
                f"clusterroles.{GROUP} {go_quote(name)} is forbidden: must have cluster-admin "
                "privileges to use the aggregationRule"),
                {"name": name, "group": GROUP, "kind": "clusterroles"})
        requested: list[Rule]
        if resource in ("roles", "clusterroles"):
            requested = [as_dict(r) for r in as_list(obj.get("rules"))]
            if await self.allowed(user, Attributes("escalate", GROUP, resource,
                                                   namespace=namespace, name=name)):
                return
        else:
            ref = as_dict(obj.get("roleRef"))
            ref_resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            if await self.allowed(user, Attributes("bind", GROUP, ref_resource,
                                                   namespace=namespace,
                                                   name=as_str(ref.get("name")))):
                return
            requested = await self._role_rules(ref, namespace)
        missing = await self._not_held(user, namespace, requested)
        if missing:
            raise _escalation_error(user, resource, name, missing)

    async def _not_held(self, user: User, namespace: str,
                        requested: Sequence[Rule]) -> list[Rule]:
        fixed_everything = self._fixed(user, Attributes("*", "*", "*", namespace=namespace)) \
            and self._fixed(user, Attributes("*", path="*"))
        if fixed_everything:
            return []
        owned = await self.rules_for(user, namespace)
        return [rule for rule in covers(owned, requested, namespace)
                if not _fixed_covers(self._fixed, user, rule, namespace)]


def _fixed_covers(fixed: Callable[[User, Attributes], bool], user: User, rule: Rule,
                  namespace: str) -> bool:
    """Whether the fixed identities grant all of ``rule`` (a node's reads, say)."""
    return all(fixed(user, atom) for atom in breakdown(rule, namespace))


def _go_rule(rule: Rule) -> str:
    """A PolicyRule as rbac's CompactString prints it in escalation errors."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("resourceNames", "ResourceNames"), ("nonResourceURLs", "NonResourceURLs"),
                       ("verbs", "Verbs")):
        values = as_list(rule.get(key))
        if values:
            # Go's %q of a []string: quoted items separated by spaces.
            parts.append(f"{label}:[{' '.join(go_quote(as_str(v)) for v in values)}]")
    return "{" + ", ".join(parts) + "}"


def _escalation_error(user: User, resource: str, name: str,
                      missing: Sequence[Rule]) -> StatusError:
    groups = "[" + " ".join(go_quote(g) for g in effective_groups(user)) + "]"
    rules = "\n".join(_go_rule(r) for r in missing)
    message = (f"{resource}.{GROUP} {go_quote(name)} is forbidden: user {go_quote(user.name)} "
               f"(groups={groups}) is attempting to grant RBAC permissions not currently "
               f"held:\n{rules}")
    return StatusError(403, "Forbidden", message,
                       {"name": name, "group": GROUP, "kind": resource})

