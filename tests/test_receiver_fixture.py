"""The loopback receiver the delivery tests rely on answers as scripted."""

from __future__ import annotations

import requests

from tests.receiver import Receiver, Reply


def test_receiver_answers_script_in_order_and_records_requests():
    with Receiver() as rx:
        rx.script = [Reply(500), Reply(201, body=b"done")]
        first = requests.post(rx.url("/a"), data=b"{}", timeout=5)
        second = requests.post(rx.url("/a"), data=b'{"x":1}', headers={"webhook-id": "msg_1"}, timeout=5)
        third = requests.post(rx.url("/a"), data=b"{}", timeout=5)
        assert [first.status_code, second.status_code, third.status_code] == [500, 201, 201]
        got = rx.wait_for(3, timeout=2)
        assert got[1].body == b'{"x":1}' and got[1].headers["webhook-id"] == "msg_1"
