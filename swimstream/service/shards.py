"""Which shard an agent belongs to: where its state lives in the changelog.

Shard p is partition p of every (co-partitioned) source topic, so an agent fed by a
keyed topic must land in the shard of its key: an agent whose route parameter is filled
from the record key (``/device/{key}`` into ``/device/:id``) hashes that parameter with
the producers' partitioner, exactly as its records were. Agents no keyed topic names
(``/tower/:id``, ``/world``) hash their node URI the same way.
"""

from __future__ import annotations

import functools

from swimstream.config import AppConfig
from swimstream.routing import Partitioner, RouteTable, shard_for, shard_for_uri

SHARD_CACHE_SIZE = 1 << 17
"""Node URIs whose shard a :class:`ShardMap` remembers (the most recently asked)."""


class ShardMap:
    """``shard_map(node_uri) -> shard`` for one app and shard count."""

    def __init__(self, config: AppConfig, shards: int) -> None:
        self.shards = shards
        self._partitioner: Partitioner = config.broker.partitioner
        self._routes: RouteTable[str] = config.agent_routes()
        self._key_params: dict[str, str] = {}
        for source in config.sources:
            for pattern, _ in self._routes:
                param = source.route.key_param(pattern)
                if param is not None:
                    self._key_params[pattern.text] = param
        # Every checkpoint asks for the shard of each agent that changed, and the answer
        # (a route look-up and a hash in Python) was a fortieth of the service's main
        # thread in the e2e bench's durable row; it never changes for a node.
        self._cached = functools.lru_cache(maxsize=SHARD_CACHE_SIZE)(self._shard_of)

    def __call__(self, node_uri: str) -> int:
        return self._cached(node_uri)

    def _shard_of(self, node_uri: str) -> int:
        found = self._routes.lookup(node_uri)
        if found is not None:
            param = self._key_params.get(found.pattern.text)
            if param is not None:
                return shard_for(found.params[param].encode(), self.shards, self._partitioner)
        return shard_for_uri(node_uri, self.shards, self._partitioner)
