from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from app.identity.catalog_rules import CatalogRule, CatalogRules, KindMatcher
from app.identity.file_catalog import FileCatalog, parse_documents
from tests.catalog.helpers import FIXTURES, fixture_catalog, run, user_doc, users_by_ref, write
from tests.fakes.clock import FakeClock

# --- the fixture org, loaded through app-config.yaml --------------------------------------


def test_reads_the_users_the_rules_allow(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        catalog = fixture_catalog(clock)
    assert sorted(users_by_ref(catalog)) == [
        "user:default/bob",
        "user:default/dave",
        "user:default/jane",
        "user:default/ops",
        "user:default/shared",
        "user:default/twin1",
        "user:default/twin2",
        "user:partners/carol",
        "user:partners/jane",
    ]
    # contractors.yaml has no location rules and catalog.rules does not allow User.
    assert "User:default/mallory is not of an allowed kind" in caplog.text
    assert "contractors.yaml" in caplog.text
    assert "catalog.locations[4]: locations of type 'url' are not read" in caplog.text


def test_ownership_is_direct_membership_from_both_sides(clock: FakeClock) -> None:
    users = users_by_ref(fixture_catalog(clock))
    # spec.memberOf (frontend) plus a group's spec.members (platform); no parent groups.
    assert users["user:default/jane"].member_of == (
        "group:default/frontend",
        "group:default/platform",
    )
    # Only a group's spec.members.
    assert users["user:default/bob"].member_of == ("group:default/backend",)
    # Both sides name the same group: listed once.
    assert users["user:default/ops"].member_of == ("group:default/backend",)
    # Cross-namespace ref "partners/guests" defaults the kind to group.
    assert users["user:default/dave"].member_of == (
        "group:partners/guests",
        "group:default/sales",
    )
    # Refs without a namespace default to the entity's own namespace.
    assert users["user:partners/jane"].member_of == ("group:partners/guests",)
    assert users["user:partners/carol"].member_of == ("group:partners/guests",)
    assert users["user:default/twin1"].member_of == ()


def test_users_carry_email_and_annotations(clock: FakeClock) -> None:
    jane = users_by_ref(fixture_catalog(clock))["user:default/jane"]
    assert jane.email == "jane@acme.com"
    assert jane.annotations == {"github.com/user-login": "jane-gh", "acme.com/site": "berlin"}
    # The document as written: who-am-i returns it as the user's entity.
    assert jane.entity["kind"] == "User"
    assert jane.entity["metadata"]["name"] == "jane"
    assert jane.entity["spec"]["profile"]["email"] == "jane@acme.com"


def test_lookup_by_entity_ref(clock: FakeClock) -> None:
    catalog = fixture_catalog(clock)
    jane = run(catalog.get_user("user:default/jane"))
    assert jane is not None and jane.email == "jane@acme.com"
    assert run(catalog.get_user("User:Default/JANE")) == jane
    other = run(catalog.get_user("user:partners/jane"))
    assert other is not None and other.email == "jane@partner.example"
    assert run(catalog.get_user("user:default/carol")) is None
    assert run(catalog.get_user("user:default/mallory")) is None  # refused by the rules
    assert run(catalog.get_user("group:default/backend")) is None
    assert run(catalog.get_user("not a ref:/")) is None


def test_lookup_by_email_is_case_insensitive(clock: FakeClock) -> None:
    catalog = fixture_catalog(clock)
    assert [u.ref for u in run(catalog.find_users(email="bob.builder@acme.com"))] == [
        "user:default/bob"
    ]
    assert [u.ref for u in run(catalog.find_users(email="OPS+ALERTS@acme.com"))] == [
        "user:default/ops"
    ]
    assert run(catalog.find_users(email="ops@acme.com")) == []
    twins = run(catalog.find_users(email="shared@acme.com"))
    assert sorted(u.ref for u in twins) == ["user:default/twin1", "user:default/twin2"]


def test_lookup_by_annotations_needs_all_to_match(clock: FakeClock) -> None:
    catalog = fixture_catalog(clock)
    berlin = run(catalog.find_users(annotations={"acme.com/site": "berlin"}))
    assert sorted(u.ref for u in berlin) == ["user:default/bob", "user:default/jane"]
    both = {"acme.com/site": "berlin", "github.com/user-login": "jane-gh"}
    assert [u.ref for u in run(catalog.find_users(annotations=both))] == ["user:default/jane"]
    wrong = {"acme.com/site": "paris", "github.com/user-login": "jane-gh"}
    assert run(catalog.find_users(annotations=wrong)) == []
    assert [
        u.ref
        for u in run(
            catalog.find_users(annotations={"github.com/user-login": "bob-gh"}, email="x@y.z")
        )
    ] == []


def test_relative_targets_are_relative_to_the_config_directory(
    clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert "user:default/jane" in users_by_ref(fixture_catalog(clock))


# --- locations, rules, globs --------------------------------------------------------------


def test_location_entities_are_followed(clock: FakeClock) -> None:
    catalog = FileCatalog([str(FIXTURES / "all.yaml")], clock=clock)
    users = users_by_ref(catalog)
    assert "user:partners/carol" in users
    assert users["user:default/bob"].member_of == ("group:default/backend",)


def test_location_rules_apply_to_that_location_only(clock: FakeClock) -> None:
    # As in Backstage: rules on all.yaml do not reach the files its Location points at,
    # where the default rules (Component, API, Location) refuse users and groups.
    from app.identity.catalog_rules import DEFAULT_RULES, LocationMatcher

    target = str(FIXTURES / "all.yaml")
    rules = CatalogRules(
        [
            *DEFAULT_RULES,
            CatalogRule(
                allow=(KindMatcher("User"), KindMatcher("Group")),
                locations=(LocationMatcher(type="file", exact=target),),
            ),
        ]
    )
    assert users_by_ref(FileCatalog([target], clock=clock, rules=rules)) == {}


def test_glob_targets(clock: FakeClock) -> None:
    catalog = FileCatalog([str(FIXTURES / "*" / "*.yaml")], clock=clock)
    assert "user:partners/carol" in users_by_ref(catalog)
    assert "user:default/ops" in users_by_ref(catalog)


def test_spec_type_rules(clock: FakeClock) -> None:
    # Only team groups: the sales department is refused, so dave loses that membership.
    rules = CatalogRules(
        [CatalogRule(allow=(KindMatcher("User"), KindMatcher("Group", spec_type="team")))]
    )
    catalog = FileCatalog([str(FIXTURES / "all.yaml")], clock=clock, rules=rules)
    assert users_by_ref(catalog) == {}  # Location is not allowed either
    rules = CatalogRules(
        [
            CatalogRule(
                allow=(
                    KindMatcher("Location"),
                    KindMatcher("user"),
                    KindMatcher("Group", spec_type="team"),
                )
            )
        ]
    )
    catalog = FileCatalog([str(FIXTURES / "all.yaml")], clock=clock, rules=rules)
    assert users_by_ref(catalog)["user:default/dave"].member_of == ("group:partners/guests",)


def test_other_kinds_and_location_types_are_ignored(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path / "all.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: remote}\n"
        "spec: {type: url, target: 'https://example.com/org.yaml'}\n---\n"
        "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata: {name: s}\n"
        "spec: {owner: x}\n---\n" + user_doc("u1"),
    )
    catalog = FileCatalog([str(tmp_path / "all.yaml")], clock=clock)
    assert list(users_by_ref(catalog)) == ["user:default/u1"]
    assert "has type 'url'; only file locations are read" in caplog.text


# --- validation ---------------------------------------------------------------------------


def test_invalid_entities_are_skipped_naming_the_file(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path / "org.yaml",
        "\n---\n".join(
            [
                user_doc("good", "good@acme.com"),
                user_doc("bad name!", "bad@acme.com"),
                user_doc("badns", namespace="Not_Valid"),
                "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: noann\n"
                "  annotations: {a: 1}\nspec: {}\n",
                "apiVersion: example.com/v1\nkind: User\nmetadata: {name: foreign}\nspec: {}\n",
                "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: nospec}\n",
                "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: badref}\n"
                "spec: {memberOf: ['group:']}\n",
                # A group needs spec.type and spec.children, else Backstage refuses it.
                "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: nochildren}\n"
                "spec: {type: team, members: [good]}\n",
                "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: ok}\n"
                "spec: {type: team, children: [], members: [good]}\n",
            ]
        ),
    )
    catalog = FileCatalog([str(path)], clock=clock)
    users = users_by_ref(catalog)
    assert list(users) == ["user:default/good"]
    assert users["user:default/good"].member_of == ("group:default/ok",)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 7
    assert all(str(path) in e for e in errors)
    assert any("'bad name!' is not a valid entity name" in e for e in errors)
    assert any("spec.children must be a list of strings" in e for e in errors)
    assert any("unsupported apiVersion 'example.com/v1'" in e for e in errors)


def test_duplicate_entities_keep_the_first(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = write(tmp_path / "a.yaml", user_doc("dup", "first@acme.com"))
    second = write(tmp_path / "b.yaml", user_doc("DUP", "second@acme.com"))
    catalog = FileCatalog([str(first), str(second)], clock=clock)
    dup = run(catalog.get_user("user:default/dup"))
    assert dup is not None and dup.email == "first@acme.com"
    assert f"{second}: user:default/DUP is already defined in {first}" in caplog.text


def test_yaml_12_scalars(clock: FakeClock, tmp_path: Path) -> None:
    # PyYAML would read "no" as false and the date as a date; Backstage reads strings.
    path = write(
        tmp_path / "u.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: no\n"
        "  annotations: {acme.com/joined: 2024-01-31, acme.com/remote: on}\nspec: {}\n",
    )
    user = run(FileCatalog([str(path)], clock=clock).get_user("user:default/no"))
    assert user is not None
    assert user.annotations == {"acme.com/joined": "2024-01-31", "acme.com/remote": "on"}


def test_parse_documents_rejects_non_objects() -> None:
    assert parse_documents("---\n---\na: 1\n") == ({"a": 1},)
    with pytest.raises(ValueError, match="document 2: expected an object, got list"):
        parse_documents("a: 1\n---\n- x\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        parse_documents("a: [1\n")


# --- reloading ----------------------------------------------------------------------------


def test_reloads_a_changed_file_after_the_interval(clock: FakeClock, tmp_path: Path) -> None:
    path = write(tmp_path / "org.yaml", user_doc("alice", "alice@acme.com"))
    catalog = FileCatalog([str(path)], clock=clock, refresh_interval_seconds=5)
    assert run(catalog.get_user("user:default/alice")) is not None

    write(path, user_doc("alice", "alice@new.example") + "---\n" + user_doc("bert"))
    clock.advance(4.9)
    assert run(catalog.get_user("user:default/bert")) is None  # not checked yet
    clock.advance(0.1)
    assert run(catalog.get_user("user:default/bert")) is not None
    assert [u.ref for u in run(catalog.find_users(email="alice@new.example"))] == [
        "user:default/alice"
    ]


def test_unchanged_files_are_not_reloaded(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "org.yaml", user_doc("alice"))
    catalog = FileCatalog([str(path)], clock=clock)
    caplog.clear()
    assert catalog.reload() is False
    assert caplog.records == []


def test_a_new_file_matching_a_glob_is_picked_up(clock: FakeClock, tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", user_doc("alice"))
    catalog = FileCatalog([str(tmp_path / "*.yaml")], clock=clock, refresh_interval_seconds=0)
    write(tmp_path / "b.yaml", user_doc("bert"))
    assert run(catalog.get_user("user:default/bert")) is not None


def test_a_broken_file_keeps_its_previous_data(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "org.yaml", user_doc("alice", "alice@acme.com"))
    other = write(tmp_path / "other.yaml", user_doc("olga"))
    catalog = FileCatalog([str(path), str(other)], clock=clock, refresh_interval_seconds=1)

    write(path, user_doc("alice") + "metadata: [unclosed\n")
    write(other, user_doc("olga") + "---\n" + user_doc("oscar"))
    clock.advance(1)
    alice = run(catalog.get_user("user:default/alice"))
    assert alice is not None and alice.email == "alice@acme.com"  # the old data
    assert run(catalog.get_user("user:default/oscar")) is not None  # other files reload
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(path) in errors[0] and "invalid YAML" in errors[0]
    assert "keeping its previous entities" in errors[0]

    # Still broken: not parsed or logged again.
    clock.advance(1)
    run(catalog.get_user("user:default/alice"))
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1

    write(path, user_doc("alice", "alice@fixed.example"))
    clock.advance(1)
    alice = run(catalog.get_user("user:default/alice"))
    assert alice is not None and alice.email == "alice@fixed.example"


def test_a_broken_file_at_start_contributes_nothing(
    clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = write(tmp_path / "broken.yaml", "- just\n- a list\n")
    good = write(tmp_path / "good.yaml", user_doc("alice"))
    catalog = FileCatalog([str(broken), str(good)], clock=clock)
    assert list(users_by_ref(catalog)) == ["user:default/alice"]
    assert f"catalog file {broken}: document 1: expected an object, got list" in caplog.text


def test_missing_files(clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "later.yaml"
    catalog = FileCatalog([str(path)], clock=clock, refresh_interval_seconds=1)
    assert users_by_ref(catalog) == {}
    assert f"catalog file {path}: cannot read the file" in caplog.text

    write(path, user_doc("alice"))
    clock.advance(1)
    assert run(catalog.get_user("user:default/alice")) is not None

    # Gone again (say, mid-way through an editor's save): the last data stays.
    os.unlink(path)
    clock.advance(1)
    assert run(catalog.get_user("user:default/alice")) is not None
    assert "keeping its previous entities" in caplog.text


def test_interval_zero_checks_on_every_lookup(clock: FakeClock, tmp_path: Path) -> None:
    path = write(tmp_path / "org.yaml", user_doc("alice"))
    catalog = FileCatalog([str(path)], clock=clock, refresh_interval_seconds=0)
    write(path, user_doc("bert"))
    assert run(catalog.get_user("user:default/bert")) is not None
    assert run(catalog.get_user("user:default/alice")) is None
    run(catalog.aclose())
