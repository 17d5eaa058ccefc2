"""Users and groups from Backstage catalog files (``catalog.locations`` of ``type: file``).

Files hold multi-document YAML in Backstage's own entity format. ``kind: Location``
entities are followed (``spec.target``/``spec.targets`` relative to the file), targets
may be globs, and ``catalog.rules`` decide which kinds a file may contribute.

The files are read at start and checked again on a lookup at most every
``refresh_interval_seconds`` (by the injected clock): only files whose mtime, size or
inode changed are parsed again, in a worker thread. A file that cannot be read or
parsed keeps the entities it had before and is logged once, naming the file.

Ownership (``CatalogUser.member_of``) is what Backstage's ``memberOf`` relations give:
the user's ``spec.memberOf`` plus every group listing the user in ``spec.members``;
parent groups are not included (Backstage's default ownership resolution).

One piece (just over 300 lines): reading, following locations and applying the rules
happen in one pass over the files, reloaded together on a change.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from app.core.clock import Clock
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.catalog_entities import (
    EntityError,
    GroupEntity,
    UserEntity,
    describe,
    entity_kind,
    parse_group,
    parse_location,
    parse_user,
)
from app.identity.catalog_rules import CatalogRules

log = logging.getLogger(__name__)

DEFAULT_REFRESH_INTERVAL_SECONDS = 5.0

_BOOL = "tag:yaml.org,2002:bool"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MISSING = (-1, -1, -1)
_GLOB_CHARS = re.compile(r"[*?\[]")


class _Yaml12Loader(yaml.SafeLoader):
    """Scalars as Backstage's ``yaml`` package reads them (YAML 1.2 core schema):
    only true/false are booleans (``no``, ``on`` stay strings), and dates stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class _FileState:
    signature: tuple[int, int, int]  # (mtime_ns, size, inode); _MISSING when unreadable
    documents: tuple[Mapping[str, Any], ...]
    error: str | None = None


def parse_documents(text: str) -> tuple[Mapping[str, Any], ...]:
    """The entity documents of a file; empty documents are skipped.

    Raises:
        ValueError: invalid YAML, or a document that is not an object.
    """
    try:
        documents = list(yaml.load_all(text, Loader=_Yaml12Loader))
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from None
    out = []
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"document {index + 1}: expected an object, got {type(doc).__name__}")
        out.append(doc)
    return tuple(out)


def _dedupe(refs: Sequence[str], spelling: Mapping[str, str]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for ref in refs:
        out.setdefault(ref.lower(), spelling.get(ref.lower(), ref))
    return tuple(out.values())


class FileCatalog:
    """The ``Catalog`` protocol over catalog files; ``targets`` are absolute paths or globs."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        clock: Clock,
        rules: CatalogRules | None = None,
        refresh_interval_seconds: float = DEFAULT_REFRESH_INTERVAL_SECONDS,
    ) -> None:
        self._targets = tuple(targets)
        self._clock = clock
        self._rules = rules
        self._interval = refresh_interval_seconds
        self._files: dict[str, _FileState] = {}
        self._fingerprint: tuple[tuple[str, tuple[int, int, int]], ...] | None = None
        self._catalog = InMemoryCatalog()
        self._reloading = False
        self.reload()
        self._next_check = clock.now() + refresh_interval_seconds

    # -- the Catalog protocol -----------------------------------------------------------

    async def get_user(self, ref: str) -> CatalogUser | None:
        await self._maybe_reload()
        return await self._catalog.get_user(ref)

    async def find_users(
        self,
        *,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
    ) -> list[CatalogUser]:
        await self._maybe_reload()
        return await self._catalog.find_users(annotations=annotations, email=email)

    async def aclose(self) -> None:
        """Nothing to release; present so that every catalog can be closed alike."""

    # -- loading ----------------------------------------------------------------------

    async def _maybe_reload(self) -> None:
        now = self._clock.now()
        if now < self._next_check or self._reloading:
            return
        self._next_check = now + self._interval
        self._reloading = True
        try:
            await asyncio.to_thread(self.reload)
        except Exception:  # keep serving the previous data whatever went wrong
            log.exception("catalog: reloading the catalog files failed; keeping previous data")
        finally:
            self._reloading = False

    def reload(self) -> bool:
        """Read changed files again; True when anything changed since the last call."""
        files, entities, notes = self._walk()
        fingerprint = tuple((path, state.signature) for path, state in files.items())
        if fingerprint == self._fingerprint:
            return False
        previous = dict(self._fingerprint or ())
        for path, state in files.items():
            if state.error is not None and previous.get(path) != state.signature:
                kept = " (keeping its previous entities)" if state.documents else ""
                log.error("catalog file %s: %s%s", path, state.error, kept)
        for note in notes:
            log.warning("%s", note)
        self._files = files
        self._fingerprint = fingerprint
        self._catalog = InMemoryCatalog(self._build(entities))
        return True

    def _walk(
        self,
    ) -> tuple[dict[str, _FileState], list[tuple[str, Mapping[str, Any]]], list[str]]:
        """Every file reachable from the targets, the User/Group documents in them, and
        what to log should anything have changed."""
        files: dict[str, _FileState] = {}
        entities: list[tuple[str, Mapping[str, Any]]] = []
        notes: list[str] = []
        queue = deque(self._targets)
        seen: set[str] = set()
        while queue:
            target = queue.popleft()
            if target in seen:
                continue
            seen.add(target)
            paths = self._expand(target)
            if not paths:
                notes.append(f"catalog: no file matches {target}")
            for path in paths:
                if path in files:
                    continue
                state = files[path] = self._read(path)
                for doc in state.documents:
                    kind = entity_kind(doc)
                    if kind not in ("User", "Group", "Location"):
                        continue
                    if not self._allowed(kind, doc, path):
                        notes.append(
                            f"catalog file {path}: {describe(doc)} is not of an allowed kind "
                            "for that location (see catalog.rules); skipped"
                        )
                    elif kind == "Location":
                        queue.extend(self._location_targets(doc, path, notes))
                    else:
                        entities.append((path, doc))
        return files, entities, notes

    def _expand(self, target: str) -> list[str]:
        if not _GLOB_CHARS.search(target):
            return [target]
        matches = sorted(os.path.normpath(p) for p in glob.glob(target, recursive=True))
        return [p for p in matches if os.path.isfile(p)]

    def _read(self, path: str) -> _FileState:
        before = self._files.get(path)
        try:
            stat = os.stat(path)
            signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if before is not None and before.signature == signature:
                return before
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            kept = before.documents if before is not None else ()
            return _FileState(_MISSING, kept, f"cannot read the file: {exc.strerror or exc}")
        try:
            return _FileState(signature, parse_documents(text))
        except (ValueError, UnicodeDecodeError) as exc:
            kept = before.documents if before is not None else ()
            return _FileState(signature, kept, str(exc))

    def _allowed(self, kind: str, doc: Mapping[str, Any], path: str) -> bool:
        if self._rules is None:
            return True
        spec = doc.get("spec")
        spec_type = spec.get("type") if isinstance(spec, Mapping) else None
        return self._rules.is_allowed(kind, spec_type, "file", path)

    def _location_targets(self, doc: Mapping[str, Any], path: str, notes: list[str]) -> list[str]:
        try:
            location = parse_location(doc)
        except EntityError as exc:
            notes.append(f"catalog file {path}: skipping {describe(doc)}: {exc}")
            return []
        if location.type not in (None, "file"):
            notes.append(
                f"catalog file {path}: {describe(doc)} has type {location.type!r}; only file "
                "locations are read by this server, ignored"
            )
            return []
        base = os.path.dirname(path)
        return [os.path.normpath(os.path.join(base, t)) for t in location.targets]

    def _build(self, entities: list[tuple[str, Mapping[str, Any]]]) -> list[CatalogUser]:
        users: dict[str, tuple[UserEntity, str]] = {}
        groups: dict[str, tuple[GroupEntity, str]] = {}
        skipped = 0
        for path, doc in entities:
            try:
                entity: UserEntity | GroupEntity = (
                    parse_user(doc) if entity_kind(doc) == "User" else parse_group(doc)
                )
            except EntityError as exc:
                log.error("catalog file %s: skipping %s: %s", path, describe(doc), exc)
                skipped += 1
                continue
            table: dict[str, Any] = users if isinstance(entity, UserEntity) else groups
            first = table.get(entity.ref.lower())
            if first is not None:
                log.warning(
                    "catalog file %s: %s is already defined in %s; ignoring this one",
                    path,
                    entity.ref,
                    first[1],
                )
                continue
            table[entity.ref.lower()] = (entity, path)

        memberships = {key: list(user.member_of) for key, (user, _) in users.items()}
        for group, _ in groups.values():
            for member in group.members:
                if member.lower() in memberships:
                    memberships[member.lower()].append(group.ref)
        spelling = {key: group.ref for key, (group, _) in groups.items()}
        out = [
            CatalogUser(
                ref=user.ref,
                email=user.email,
                annotations=user.annotations,
                member_of=_dedupe(memberships[key], spelling),
                entity=user.document,
            )
            for key, (user, _) in users.items()
        ]
        log.info(
            "catalog: %d users and %d groups from %d files%s",
            len(users),
            len(groups),
            len(self._files),
            f" ({skipped} invalid entities skipped)" if skipped else "",
        )
        return out
