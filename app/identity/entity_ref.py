"""Entity references as ``@backstage/catalog-model`` parses and prints them."""

from __future__ import annotations

DEFAULT_NAMESPACE = "default"


def parse_entity_ref(
    ref: str,
    *,
    default_kind: str | None = None,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> tuple[str, str, str]:
    """Split ``[kind:][namespace/]name`` into ``(kind, namespace, name)``; case is kept.

    Raises ``ValueError`` when the ref is malformed or has no kind and no default.
    """
    if not ref:
        raise ValueError("Entity reference must not be empty")
    colon = ref.find(":")
    slash = ref.find("/")
    # A colon after the namespace separator belongs to the name, as in Backstage.
    if slash != -1 and slash < colon:
        colon = -1
    kind = None if colon == -1 else ref[:colon]
    namespace = None if slash == -1 else ref[colon + 1 : slash]
    name = ref[max(colon + 1, slash + 1) :]
    if kind == "" or namespace == "" or not name:
        raise ValueError(
            f'Entity reference "{ref}" was not on the form [<kind>:][<namespace>/]<name>'
        )
    kind = kind or default_kind
    if not kind:
        raise ValueError(
            f'Entity reference "{ref}" had missing or empty kind '
            '(e.g. did not start with "component:" or similar)'
        )
    return kind, namespace or default_namespace or DEFAULT_NAMESPACE, name


def stringify_entity_ref(kind: str, namespace: str, name: str) -> str:
    """The canonical form: kind and namespace lower-cased, the name as given."""
    return f"{kind.lower()}:{namespace.lower()}/{name}"


def canonical_entity_ref(ref: str, *, default_kind: str | None = None) -> str:
    return stringify_entity_ref(*parse_entity_ref(ref, default_kind=default_kind))
