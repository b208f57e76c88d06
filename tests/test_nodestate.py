"""NodeState: the stop state the node's components share, against a real Redis."""

from __future__ import annotations

import asyncio
import errno

import pytest
from scrapy.utils.test import get_crawler
from support import run_with_client

from hotelimages.claims import LeaseManager
from hotelimages.keys import Keys
from hotelimages.nodestate import EXIT_STORE, NodeState
from hotelimages.redisconn import async_client

KEYS = Keys()


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO])
def test_a_store_error_of_any_errno_drains_gives_back_and_sets_the_exit_status_once(redis_url, code):
    async def steps(client):
        state = NodeState(LeaseManager(client, KEYS, "pc1/1-a", 60), heartbeat_seconds=1)
        assert (state.draining, state.giving_back, state.exit_code) == (False, False, 0)
        assert state.stop_for_store(OSError(code, "refused")) is True
        assert (state.draining, state.giving_back, state.leases.freed.is_set()) == (True, True, True)
        assert state.exit_code == EXIT_STORE and errno.errorcode[code] in state.stopped_claiming
        assert state.stop_for_store(OSError(errno.ENOSPC, "again")) is False  # already stopping

    run_with_client(redis_url, steps)


def test_close_gives_unfinished_claims_back(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, "1", "2")

    async def steps():
        state = NodeState(LeaseManager(async_client(redis_url), KEYS, "pc1/1-a", 60), heartbeat_seconds=1)
        await state.leases.claim(2)
        await state.spider_closed(None, "shutdown")

    asyncio.run(steps())
    assert sorted(redis_client.lrange(KEYS.start_ids, 0, -1)) == [b"1", b"2"]
    assert redis_client.zcard(KEYS.leases) == 0


def test_components_find_it_through_the_crawler_or_get_a_clear_error():
    crawler = get_crawler(settings_dict={"EXTENSIONS": {"hotelimages.nodestate.NodeState": 0}, "NODE_ID": "pc7"})
    crawler._apply_settings()
    state = NodeState.of(crawler)
    assert state is crawler.get_extension(NodeState) and state.leases.owner.startswith("pc7/")
    bare = get_crawler(settings_dict={"EXTENSIONS": {}})
    bare._apply_settings()
    with pytest.raises(RuntimeError, match="NodeState must be enabled in EXTENSIONS"):
        NodeState.of(bare)
