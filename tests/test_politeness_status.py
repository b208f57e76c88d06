"""Host budgets and pauses in status (text, JSON) and on the console page, with its pause/resume controls."""

from __future__ import annotations

import json

from consoleserver import console_server, request

from hotelimages import control, status
from hotelimages.claims import BoundScripts
from hotelimages.keys import Keys
from hotelimages.politeness import GRANT, REFUSE

KEYS = Keys()


def budget_state(client) -> None:
    """img.test: budget 300/s, cut to 150/s by a 429 with Retry-After: 30; api.test: untouched at 50/s."""
    scripts = BoundScripts(client, KEYS)
    scripts.run(GRANT, 300, 10, 0, 0.05, 1.0, 600, "n", 0, 0.5, more_keys=(KEYS.budget("img.test"), "u"))
    scripts.run(REFUSE, 300, 30, 0.5, 0.05, 600, 1.0, "img.test", more_keys=(KEYS.budget("img.test"),
                                                                            KEYS.budget_events))
    scripts.run(GRANT, 50, 1, 0, 0.05, 1.0, 600, "n", 0, 0.5, more_keys=(KEYS.budget("api.test"), "u"))


def test_status_shows_budgets_and_pauses(redis_client):
    budget_state(redis_client)
    control.pause(redis_client, KEYS, node="pc12", note="owner's video call")
    fleet = status.gather(redis_client, KEYS)
    assert [h["host"] for h in fleet.hosts] == ["api.test", "img.test"]
    api, img = fleet.hosts
    assert (api["budget"], api["rate"], api["paused_seconds"], api["recent_refusals"]) == (50, 50, 0, 0)
    assert (img["budget"], img["rate"], img["recent_refusals"], img["refusals"]) == (300, 150, 1, 1)
    assert 25 <= img["paused_seconds"] <= 30
    data = json.loads(json.dumps(fleet.to_json()))
    assert data["hosts"][1]["rate"] == 150 and set(data["pauses"]) == {"node:pc12"}
    text = status.render_text(fleet)
    assert "PAUSED      node pc12 since" in text and "(owner's video call)" in text and "--node pc12" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("img.test"))
    assert row.split()[:3] == ["img.test", "300", "150.0"] and row.split()[-2:] == ["1", "1"]
    control.resume(redis_client, KEYS, node="pc12")
    control.pause(redis_client, KEYS)
    assert "PAUSED      the whole fleet since" in status.render_text(status.gather(redis_client, KEYS))


def test_console_shows_budgets_and_pauses_and_resumes(redis_url, redis_client):
    budget_state(redis_client)
    with console_server(redis_url, "s3cret") as srv:
        assert request(srv.url + "api/pause", {}, "ann", "wrong")[0] == 401
        code, body = request(srv.url + "api/pause", {}, "ann", "s3cret")
        assert code == 200 and json.loads(body) == {"paused": True, "node": None, "changed": True}
        code, body = request(srv.url + "api/pause", {"node": "pc3"}, "ann", "s3cret")
        assert code == 200
        assert set(control.pauses(redis_client, KEYS)) == {"fleet", "node:pc3"}
        code, body = request(srv.url + "api/status?range=hour")
        data = json.loads(body)
        assert set(data["pauses"]) == {"fleet", "node:pc3"} and data["pauses"]["fleet"]["note"] == "console, ann"
        assert [h["host"] for h in data["hosts"]] == ["api.test", "img.test"]
        assert data["controls"] == {"enabled": True, "pause": True}
        code, body = request(srv.url + "api/resume", {}, "ann", "s3cret")
        assert code == 200 and json.loads(body)["changed"] is True
        assert request(srv.url + "api/resume", {"node": 5}, "ann", "s3cret")[0] == 400
        code, page = request(srv.url)
        assert b'id="hosts"' in page and b'id="pause-fleet"' in page
        log = srv.log()
    assert set(control.pauses(redis_client, KEYS)) == {"node:pc3"}
    assert "ann from 127.0.0.1 paused the fleet" in log and "ann from 127.0.0.1 resumed the fleet" in log
