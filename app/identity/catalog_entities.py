"""Backstage ``User`` / ``Group`` / ``Location`` entities as sign-in needs them.

Validation follows ``@backstage/catalog-model`` where it decides whether an entity gets
into the catalog at all: names (``isValidObjectName``), namespaces (DNS labels), string
annotation values, the ``User`` and ``Group`` spec schemas (a group needs ``spec.type``
and ``spec.children``), and refs that parse. Relations follow
``BuiltinKindsEntityProcessor``: ``spec.memberOf`` of a user and ``spec.members`` of a
group both yield ``memberOf`` relations, with default kind ``group`` / ``user`` and the
entity's own namespace as the default namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.identity.entity_ref import DEFAULT_NAMESPACE, parse_entity_ref, stringify_entity_ref

API_VERSIONS = frozenset({"backstage.io/v1alpha1", "backstage.io/v1beta1"})

_NAME = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$")
_MAX_LENGTH = 63


class EntityError(ValueError):
    """An entity Backstage would refuse; the message says why."""


@dataclass(frozen=True)
class UserEntity:
    ref: str  # canonical user:<ns>/<name>
    email: str | None
    annotations: Mapping[str, str]
    member_of: tuple[str, ...]  # canonical refs from spec.memberOf
    document: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class GroupEntity:
    ref: str  # canonical group:<ns>/<name>
    members: tuple[str, ...]  # canonical refs from spec.members


@dataclass(frozen=True)
class LocationEntity:
    type: str | None  # None: the type of the location the entity was read from
    targets: tuple[str, ...]


def entity_kind(doc: Mapping[str, Any]) -> str | None:
    kind = doc.get("kind")
    return kind if isinstance(kind, str) else None


def describe(doc: Mapping[str, Any]) -> str:
    """``kind:namespace/name`` as far as the document says, for log lines."""
    metadata = doc.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    return f"{doc.get('kind')}:{meta.get('namespace', DEFAULT_NAMESPACE)}/{meta.get('name')}"


def _metadata(doc: Mapping[str, Any]) -> tuple[str, str, Mapping[str, str]]:
    if doc.get("apiVersion") not in API_VERSIONS:
        raise EntityError(f"unsupported apiVersion {doc.get('apiVersion')!r}")
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping):
        raise EntityError("metadata must be an object")
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > _MAX_LENGTH or not _NAME.match(name):
        raise EntityError(f"metadata.name {name!r} is not a valid entity name")
    namespace = metadata.get("namespace", DEFAULT_NAMESPACE)
    if (
        not isinstance(namespace, str)
        or len(namespace) > _MAX_LENGTH
        or not _NAMESPACE.match(namespace)
    ):
        raise EntityError(f"metadata.namespace {namespace!r} is not a valid namespace")
    annotations = metadata.get("annotations", {})
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise EntityError("metadata.annotations must map strings to strings")
    return namespace, name, dict(annotations)


def _spec(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        raise EntityError("spec must be an object")
    return spec


def _string_list(spec: Mapping[str, Any], key: str, *, required: bool = False) -> list[str]:
    value = spec.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise EntityError(f"spec.{key} must be a list of strings")
    return value


def _refs(values: list[str], *, default_kind: str, namespace: str, key: str) -> tuple[str, ...]:
    try:
        return tuple(
            stringify_entity_ref(
                *parse_entity_ref(v, default_kind=default_kind, default_namespace=namespace)
            )
            for v in values
        )
    except ValueError as exc:
        raise EntityError(f"spec.{key}: {exc}") from None


def parse_user(doc: Mapping[str, Any]) -> UserEntity:
    """A ``kind: User`` document; raises ``EntityError`` when Backstage would refuse it."""
    namespace, name, annotations = _metadata(doc)
    spec = _spec(doc)
    profile = spec.get("profile") or {}
    if not isinstance(profile, Mapping):
        raise EntityError("spec.profile must be an object")
    email = profile.get("email")
    if email is not None and not isinstance(email, str):
        raise EntityError("spec.profile.email must be a string")
    member_of = _refs(
        _string_list(spec, "memberOf"), default_kind="group", namespace=namespace, key="memberOf"
    )
    return UserEntity(
        ref=stringify_entity_ref("user", namespace, name),
        email=email or None,
        annotations=annotations,
        member_of=member_of,
        document=doc,
    )


def parse_group(doc: Mapping[str, Any]) -> GroupEntity:
    """A ``kind: Group`` document; raises ``EntityError`` when Backstage would refuse it."""
    namespace, name, _ = _metadata(doc)
    spec = _spec(doc)
    if not isinstance(spec.get("type"), str) or not spec["type"]:
        raise EntityError("spec.type must be a non-empty string")
    parent = spec.get("parent")
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise EntityError("spec.parent must be a string")
        _refs([parent], default_kind="group", namespace=namespace, key="parent")
    _refs(
        _string_list(spec, "children", required=True),
        default_kind="group",
        namespace=namespace,
        key="children",
    )
    members = _refs(
        _string_list(spec, "members"), default_kind="user", namespace=namespace, key="members"
    )
    return GroupEntity(ref=stringify_entity_ref("group", namespace, name), members=members)


def parse_location(doc: Mapping[str, Any]) -> LocationEntity:
    """A ``kind: Location`` document: ``spec.target`` and/or ``spec.targets``."""
    _metadata(doc)
    spec = _spec(doc)
    location_type = spec.get("type")
    if location_type is not None and not isinstance(location_type, str):
        raise EntityError("spec.type must be a string")
    targets = list(_string_list(spec, "targets"))
    target = spec.get("target")
    if target is not None:
        if not isinstance(target, str) or not target:
            raise EntityError("spec.target must be a string")
        targets.insert(0, target)
    return LocationEntity(type=location_type or None, targets=tuple(targets))
