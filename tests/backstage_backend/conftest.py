"""One split set-up (the real Backstage backend, our server, the real OpenID provider)
for the whole folder: starting Backstage takes seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backstage_backend.plugin import BROKEN, PEER, PeerPlugin, peer_plugin
from tests.backstage_backend.support import Split, split_set_up


@pytest.fixture(scope="package")
def plugin() -> Iterator[PeerPlugin]:
    with peer_plugin() as served:
        yield served


@pytest.fixture(scope="package")
def split(tmp_path_factory: pytest.TempPathFactory, plugin: PeerPlugin) -> Iterator[Split]:
    plugins = {PEER: plugin.base, BROKEN: plugin.base}
    with split_set_up(tmp_path_factory.mktemp("split"), extra_plugins=plugins) as s:
        yield s
