"""File descriptors: the soft limit raised at start, and the connections it leaves room for.

Every open connection holds a descriptor. When they run out, ``accept()`` fails and the
event loop drops new connections without a word (1,100 idle connections took all 1,024 of
a default limit); the database, log files and outbound HTTP need descriptors too. So the
server raises its soft limit to the hard one (allowed without privileges), and refuses
connections past a limit below it (``app.server.protocol``), answering and logging.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)

# Descriptors kept for everything else than client connections (database pool, outbound
# HTTP, logs, the listening sockets): a tenth of the limit, and at least this many.
MIN_RESERVED = 64
# Enough for a server; a hard limit of "unlimited" or millions is not worth a raise above it.
MAX_SOFT_LIMIT = 1 << 20


def raise_soft_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit where allowed;
    returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = MAX_SOFT_LIMIT if hard == resource.RLIM_INFINITY else min(hard, MAX_SOFT_LIMIT)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit from %d to %d: %s", soft, target, exc)
    return MAX_SOFT_LIMIT if soft == resource.RLIM_INFINITY else soft


def connection_limit(soft_limit: int) -> int:
    """How many client connections a process with ``soft_limit`` descriptors keeps open."""
    reserved = max(MIN_RESERVED, soft_limit // 10)
    return max(soft_limit - reserved, 1)
