from __future__ import annotations

import asyncio
import time

import httpx2
import pytest

from app.core.errors import ServiceUnavailableError
from app.identity.remote_catalog import RemoteCatalog, user_from_entity
from tests.catalog.fake_catalog import TOKEN, FakeCatalog, user_entity
from tests.catalog.helpers import run
from tests.fakes.clock import FakeClock

BASE = "https://backstage.acme.example"

ENTITIES = [
    user_entity(
        "jane",
        email="jane@acme.com",
        annotations={"github.com/user-login": "jane-gh", "acme.com/site": "berlin"},
        member_of=["group:default/frontend", "group:default/platform"],
    ),
    user_entity(
        "bob",
        email="Bob.Builder@Acme.com",
        annotations={"github.com/user-login": "bob-gh", "acme.com/site": "berlin"},
        member_of=["group:default/backend"],
    ),
    user_entity("ops", email="ops+alerts@acme.com", member_of=["group:default/backend"]),
    user_entity("jane", namespace="partners", email="jane@partner.example"),
    user_entity("twin1", email="shared@acme.com"),
    user_entity("twin2", email="SHARED@acme.com"),
    {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": "backend", "namespace": "default"},
        "spec": {"type": "team", "children": [], "profile": {"email": "jane@acme.com"}},
    },
]


def _catalog(
    fake: FakeCatalog, clock: FakeClock, *, token: str = TOKEN, ttl: float = 10
) -> RemoteCatalog:
    return RemoteCatalog(
        BASE + "/", token, clock=clock, transport=fake.transport(), cache_ttl_seconds=ttl
    )


@pytest.fixture
def fake() -> FakeCatalog:
    return FakeCatalog(ENTITIES)


# --- queries ------------------------------------------------------------------------------


def test_get_user_queries_by_namespace_and_name(fake: FakeCatalog, clock: FakeClock) -> None:
    jane = run(_catalog(fake, clock).get_user("user:default/jane"))
    assert jane is not None
    assert jane.ref == "user:default/jane"
    assert jane.email == "jane@acme.com"
    assert jane.member_of == ("group:default/frontend", "group:default/platform")
    assert jane.annotations == {"github.com/user-login": "jane-gh", "acme.com/site": "berlin"}
    (request,) = fake.requests
    assert str(request.url).startswith(f"{BASE}/api/catalog/entities/by-query?")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.url.params.get_list("filter") == [
        "kind=user,metadata.namespace=default,metadata.name=jane"
    ]
    assert "relations" in request.url.params["fields"].split(",")


def test_get_user_is_case_insensitive_and_namespaced(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock)
    user = run(catalog.get_user("User:Partners/JANE"))
    assert user is not None and user.ref == "user:partners/jane"
    assert run(catalog.get_user("user:default/nobody")) is None


def test_get_user_of_another_kind_sends_nothing(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock)
    assert run(catalog.get_user("group:default/backend")) is None
    assert run(catalog.get_user("user:")) is None
    assert fake.requests == []


def test_find_by_email(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock)
    (bob,) = run(catalog.find_users(email="bob.builder@acme.com"))
    assert bob.ref == "user:default/bob"
    # "+" reaches the catalog as a plus, not as a space.
    (ops,) = run(catalog.find_users(email="ops+alerts@acme.com"))
    assert ops.ref == "user:default/ops"
    assert fake.filters()[-1] == ["kind=user,spec.profile.email=ops+alerts@acme.com"]
    twins = run(catalog.find_users(email="shared@acme.com"))
    assert sorted(u.ref for u in twins) == ["user:default/twin1", "user:default/twin2"]
    assert run(catalog.find_users(email="nobody@acme.com")) == []


def test_find_by_annotations(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock)
    users = run(catalog.find_users(annotations={"acme.com/site": "berlin"}))
    assert sorted(u.ref for u in users) == ["user:default/bob", "user:default/jane"]
    (jane,) = run(
        catalog.find_users(
            annotations={"acme.com/site": "berlin", "github.com/user-login": "JANE-gh"}
        )
    )
    assert jane.ref == "user:default/jane"
    assert fake.filters()[-1] == [
        "kind=user,metadata.annotations.acme.com/site=berlin,"
        "metadata.annotations.github.com/user-login=JANE-gh"
    ]


def test_results_are_checked_again_locally(fake: FakeCatalog, clock: FakeClock) -> None:
    # A value with "," cannot be expressed in Backstage's filter syntax; whatever the
    # catalog answers, only real matches come back.
    fake.ignore_filters = True
    catalog = _catalog(fake, clock)
    (bob,) = run(catalog.find_users(email="bob.builder@acme.com"))
    assert bob.ref == "user:default/bob"
    assert run(catalog.find_users(annotations={"acme.com/site": "berlin,paris"})) == []
    jane = run(catalog.get_user("user:partners/jane"))
    assert jane is not None and jane.email == "jane@partner.example"


def test_follows_next_cursor(clock: FakeClock) -> None:
    fake = FakeCatalog([user_entity(f"u{i}", email="team@acme.com") for i in range(5)], page_size=2)
    users = run(_catalog(fake, clock).find_users(email="team@acme.com"))
    assert [u.ref for u in users] == [f"user:default/u{i}" for i in range(5)]
    assert len(fake.requests) == 3
    first, *rest = fake.requests
    assert first.url.params.get_list("filter") == ["kind=user,spec.profile.email=team@acme.com"]
    for request in rest:
        # Later pages carry the cursor alone (it encodes the filter).
        assert "filter" not in request.url.params
        assert request.url.params["cursor"]
        assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_member_of_falls_back_to_spec_and_legacy_relations() -> None:
    no_relations = user_entity("a", namespace="ns1", member_of=["team", "other/team2", "user:x"])
    del no_relations["relations"]
    user = user_from_entity(no_relations)
    assert user is not None
    assert user.member_of == ("group:ns1/team", "group:other/team2", "user:ns1/x")
    legacy = user_entity(
        "b",
        relations=[
            {"type": "memberOf", "target": {"kind": "group", "namespace": "default", "name": "t"}},
            {"type": "ownerOf", "targetRef": "component:default/c"},
            {"type": "memberOf", "targetRef": "group:default/t"},
        ],
    )
    user = user_from_entity(legacy)
    assert user is not None and user.member_of == ("group:default/t",)
    assert user_from_entity({"kind": "Group", "metadata": {"name": "g"}}) is None
    assert user_from_entity({"kind": "User", "metadata": {}}) is None


# --- cache --------------------------------------------------------------------------------


def test_results_are_cached_for_the_ttl(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock, ttl=10)
    run(catalog.get_user("user:default/jane"))
    run(catalog.get_user("user:default/JANE"))
    run(catalog.find_users(email="jane@acme.com"))
    run(catalog.find_users(email="JANE@acme.com"))
    run(catalog.get_user("user:default/nobody"))
    run(catalog.get_user("user:default/nobody"))  # not-found is cached too
    assert len(fake.requests) == 3
    clock.advance(9.9)
    run(catalog.get_user("user:default/jane"))
    assert len(fake.requests) == 3
    clock.advance(0.1)
    run(catalog.get_user("user:default/jane"))
    assert len(fake.requests) == 4


def test_zero_ttl_disables_the_cache(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock, ttl=0)
    run(catalog.get_user("user:default/jane"))
    run(catalog.get_user("user:default/jane"))
    assert len(fake.requests) == 2


def test_failures_are_not_cached(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = _catalog(fake, clock)
    fake.fail = 503
    with pytest.raises(ServiceUnavailableError):
        run(catalog.get_user("user:default/jane"))
    fake.fail = None
    assert run(catalog.get_user("user:default/jane")) is not None


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 404, 400])
def test_http_errors(fake: FakeCatalog, clock: FakeClock, status: int) -> None:
    fake.fail = status
    with pytest.raises(ServiceUnavailableError) as info:
        run(_catalog(fake, clock).find_users(email="jane@acme.com"))
    assert info.value.status_code == 503
    assert info.value.message == (
        f"User lookup failed, the catalog at {BASE} answered HTTP {status}"
    )


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token(fake: FakeCatalog, clock: FakeClock, status: int) -> None:
    fake.fail = status
    with pytest.raises(ServiceUnavailableError, match=f"refused the token \\(HTTP {status}\\)"):
        run(_catalog(fake, clock).get_user("user:default/jane"))


def test_wrong_token(fake: FakeCatalog, clock: FakeClock) -> None:
    with pytest.raises(ServiceUnavailableError) as info:
        run(_catalog(fake, clock, token="wrong-token").get_user("user:default/jane"))
    assert "refused the token (HTTP 401)" in info.value.message
    assert "auth.catalog.remote.token" in info.value.message
    assert "wrong-token" not in info.value.message


def test_timeout(fake: FakeCatalog, clock: FakeClock) -> None:
    fake.fail = httpx2.ReadTimeout("read timed out")
    with pytest.raises(ServiceUnavailableError, match="did not answer within 10 seconds"):
        run(_catalog(fake, clock).get_user("user:default/jane"))


def test_one_deadline_for_all_the_pages_of_a_lookup(clock: FakeClock) -> None:
    # Each page answers within the timeout; all of them together do not.
    fake = FakeCatalog([user_entity(f"u{i}", email="same@acme.com") for i in range(8)])

    async def slow(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0.3)
        return fake.handle(request)

    catalog = RemoteCatalog(
        BASE, TOKEN, clock=clock, transport=httpx2.MockTransport(slow), timeout_seconds=0.5
    )
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match="did not answer within 0.5 seconds"):
        run(catalog.find_users(email="same@acme.com"))
    assert time.monotonic() - started < 0.9
    assert 1 <= len(fake.requests) <= 2


def test_connection_error(fake: FakeCatalog, clock: FakeClock) -> None:
    fake.fail = httpx2.ConnectError("connection refused")
    with pytest.raises(ServiceUnavailableError) as info:
        run(_catalog(fake, clock).get_user("user:default/jane"))
    assert info.value.message == (
        f"User lookup failed, could not reach the catalog at {BASE}; "
        "caused by Error: connection refused"
    )


def test_connection_refused_for_real(clock: FakeClock) -> None:
    catalog = RemoteCatalog("http://127.0.0.1:9", TOKEN, clock=clock, timeout_seconds=2)
    try:
        with pytest.raises(ServiceUnavailableError, match="could not reach the catalog"):
            run(catalog.get_user("user:default/jane"))
    finally:
        run(catalog.aclose())


@pytest.mark.parametrize(
    "body",
    [b"<html>Backstage</html>", b"[]", b'{"items": {}}', b'{"items": [], "pageInfo": 3}'],
)
def test_unexpected_bodies(fake: FakeCatalog, clock: FakeClock, body: bytes) -> None:
    fake.body = body
    with pytest.raises(ServiceUnavailableError, match="returned an unexpected response"):
        run(_catalog(fake, clock).get_user("user:default/jane"))


def test_base_url_with_a_path(fake: FakeCatalog, clock: FakeClock) -> None:
    catalog = RemoteCatalog(
        "https://acme.example/backstage", TOKEN, clock=clock, transport=fake.transport()
    )
    with pytest.raises(ServiceUnavailableError, match="answered HTTP 404"):
        run(catalog.get_user("user:default/jane"))  # the fake serves /api/catalog only
    assert fake.requests[0].url.path == "/backstage/api/catalog/entities/by-query"


# --- whole entities (the who-am-i action) ----------------------------------------------


def _by_name(status: int, body: object) -> httpx2.MockTransport:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/api/catalog/entities/by-name/user/default/jane"
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        return httpx2.Response(status, json=body)

    return httpx2.MockTransport(handler)


def test_get_entity_returns_the_whole_entity(clock: FakeClock) -> None:
    entity = {**ENTITIES[0], "metadata": {**ENTITIES[0]["metadata"], "uid": "u-1"}}
    catalog = RemoteCatalog(BASE, TOKEN, clock=clock, transport=_by_name(200, entity))
    assert run(catalog.get_entity("user:default/jane")) == entity


def test_get_entity_of_a_missing_user_is_none(clock: FakeClock) -> None:
    catalog = RemoteCatalog(BASE, TOKEN, clock=clock, transport=_by_name(404, {}))
    assert run(catalog.get_entity("user:default/jane")) is None
    assert run(catalog.get_entity("not a ref at all!")) is None


def test_get_entity_failures_are_service_unavailable(clock: FakeClock) -> None:
    catalog = RemoteCatalog(BASE, TOKEN, clock=clock, transport=_by_name(500, []))
    with pytest.raises(ServiceUnavailableError, match="answered HTTP 500"):
        run(catalog.get_entity("user:default/jane"))
