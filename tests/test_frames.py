"""What daphne hands the layer for each socket (channels_example.interface.frames), on any layer."""
import json

import pytest
from asgiref.inmemory import ChannelLayer

from channels_example.chat import ordering
from channels_example.chat.rooms import Room
from channels_example.interface import frames


def test_a_frame_too_long_for_a_worker_is_answered_with_its_length_in_characters(settings):
    assert frames.too_long(("好" * settings.MAX_FRAME_LENGTH).encode("utf-8"), False) is None
    refused = json.loads(frames.too_long(("好" * (settings.MAX_FRAME_LENGTH + 1)).encode("utf-8"), False)["text"])
    assert refused == {"type": "error", "code": "message_too_long",
                       "detail": "a frame has at most 16384 characters, this one had 16385"}
    assert frames.too_long(b"\x00" * (settings.MAX_FRAME_LENGTH + 1), True) is not None


def test_each_message_of_a_socket_carries_its_rooms_shard_key_and_each_frame_when_daphne_took_it():
    layer = ChannelLayer()
    sends = frames.SocketSends(layer, "/lobby/")
    sends.send("websocket.receive", {"reply_channel": "daphne.response.x!a", "text": "hi"})
    sends.send("websocket.disconnect", {"reply_channel": "daphne.response.x!a", "code": 1000})
    _, frame = layer.receive(["websocket.receive"])
    _, disconnect = layer.receive(["websocket.disconnect"])
    assert frame["shard_key"] == disconnect["shard_key"] == Room("lobby").shard_key
    assert isinstance(frame["received_at"], float) and "received_at" not in disconnect
    assert sends.ChannelFull is layer.ChannelFull


def test_a_path_that_names_no_room_carries_no_shard_key():
    layer = ChannelLayer()
    frames.SocketSends(layer, "/a/b/").send("websocket.connect", {"reply_channel": "daphne.response.x!a"})
    assert "shard_key" not in layer.receive(["websocket.connect"])[1]


@pytest.mark.django_db
def test_how_far_a_sockets_frames_were_handled_is_the_chats_answer():
    socket = "daphne.response.x!busy"
    assert frames.handled_upto(socket, "/lobby/", known=1) == 1
    for order in (1, 2):
        ordering.sequencer().complete(socket, order, [])
    assert frames.handled_upto(socket, "/lobby/", known=1) == 3


def test_when_the_chat_cannot_tell_the_last_answer_stands(monkeypatch):
    def down(socket, path):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(ordering, "next_order", down)
    assert frames.handled_upto("daphne.response.x!a", "/lobby/", known=7) == 7
