"""The wire protocol: parsing what clients send, and the frames the server sends."""
import json
import unicodedata

import pytest
from django.conf import settings
from hypothesis import given
from hypothesis import strategies as st

from channels_example.chat import protocol
from channels_example.chat.identity import Speaker

ANN = Speaker("ann", True, False, "user:1")


def test_plain_text_is_taken_whole_as_the_message():
    assert protocol.parse_frame({"text": "hello world"}) == ("message", "hello world")


def test_json_object_carries_the_message():
    assert protocol.parse_frame({"text": json.dumps({"message": "你好"})}) == ("message", "你好")


def test_a_frame_cannot_choose_who_speaks():
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_frame({"text": json.dumps({"message": "send me your password", "handle": "ann"})})
    assert refused.value.code == "handle_not_allowed"


@pytest.mark.parametrize("text", ["[1, 2]", "42", '"quoted"', "null", "{not json"])
def test_json_that_is_not_an_object_is_plain_text(text):
    assert protocol.parse_frame({"text": text}) == ("message", text)


@pytest.mark.parametrize("frame, parsed", [
    ({"action": "delete", "seq": 12}, ("delete", 12)),
    ({"action": "mute", "target": " bob ", "seconds": 300}, ("mute", "bob", 300)),
])
def test_moderators_frames_are_actions(frame, parsed):
    assert protocol.parse_frame({"text": json.dumps(frame)}) == parsed


@pytest.mark.parametrize("frame", [
    {"action": "delete"}, {"action": "delete", "seq": "12"}, {"action": "delete", "seq": 0},
    {"action": "delete", "seq": True}, {"action": "mute", "target": "bob"},
    {"action": "mute", "target": "bob", "seconds": 86401}, {"action": "mute", "target": "", "seconds": 5},
    {"action": "ban", "target": "bob"},
])
def test_a_malformed_action_is_refused(frame):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_frame({"text": json.dumps(frame)})
    assert refused.value.code in {"bad_action", "bad_handle"}


@pytest.mark.parametrize(
    "content, code",
    [
        ({"bytes": b"\x00\x01"}, "binary_frame"),
        ({"text": ""}, "empty_message"),
        ({"text": " \n\t "}, "empty_message"),
        ({"text": json.dumps({"message": "  "})}, "empty_message"),
        ({"text": "x" * (settings.MAX_MESSAGE_LENGTH + 1)}, "message_too_long"),
        ({"text": json.dumps({"text": "ann"})}, "bad_message"),
        ({"text": json.dumps({"message": 5})}, "bad_message"),
        ({"text": json.dumps({"message": "hi", "handle": 5})}, "handle_not_allowed"),
    ],
)
def test_bad_frames_raise_a_protocol_error_with_a_stable_code(content, code):
    with pytest.raises(protocol.ProtocolError) as invalid:
        protocol.parse_frame(content)
    assert invalid.value.code == code
    assert json.loads(invalid.value.frame()["text"]) == {"type": "error", "code": code, "detail": invalid.value.detail}


def test_message_at_the_limit_is_accepted():
    text = "x" * settings.MAX_MESSAGE_LENGTH
    assert protocol.parse_frame({"text": text}) == ("message", text)


def test_chat_frame_has_the_documented_fields():
    frame = json.loads(protocol.message_frame(protocol.chat_message("聊天室", ANN, "hi"), 7)["text"])
    assert set(frame) == {"type", "room", "handle", "signed_in", "sender", "message", "ts", "seq"}
    assert (frame["type"], frame["room"], frame["handle"], frame["signed_in"], frame["message"], frame["seq"]) == (
        "message", "聊天室", "ann", True, "hi", 7)
    assert frame["sender"] == ANN.sender and "user" not in frame["sender"]
    assert isinstance(frame["ts"], int)


def test_join_frames_have_the_documented_fields():
    welcome = json.loads(protocol.welcome("lobby", ANN, ["bob", "ann"])["text"])
    assert welcome == {"type": "welcome", "room": "lobby", "handle": "ann", "signed_in": True, "staff": False,
                       "sender": ANN.sender, "members": ["ann", "bob"], "members_signed_in": []}
    history = json.loads(protocol.history("lobby", [], 0)["text"])
    assert history == {"type": "history", "room": "lobby", "messages": [], "upto": 0}
    event = json.loads(protocol.presence("lobby", "leave", "bob", 1, False)["text"])
    assert event == {"type": "presence", "room": "lobby", "event": "leave", "handle": "bob", "signed_in": False,
                     "members": 1}


def test_refusal_accepts_explains_and_closes_in_one_reply():
    reply = protocol.ProtocolError("invalid_room", "why").refusal()
    assert reply["accept"] is True
    assert reply["close"] == protocol.CLOSE_REFUSED
    assert json.loads(reply["text"])["code"] == "invalid_room"


def test_handle_comes_from_the_query_string():
    assert protocol.handle_from_query_string(b"handle=%E5%B0%8F%E6%98%8E", "r!1") == "小明"


def test_missing_handle_is_generated_and_stable_per_socket():
    first = protocol.handle_from_query_string(b"", "daphne.response.a!b")
    assert first == protocol.handle_from_query_string(None, "daphne.response.a!b")
    assert first.startswith("guest-")
    assert first != protocol.handle_from_query_string(b"", "daphne.response.a!c")


def test_invalid_handle_in_query_string_is_refused():
    with pytest.raises(protocol.ProtocolError):
        protocol.handle_from_query_string(b"handle=" + b"x" * 40, "r!1")


@given(st.text(min_size=1, max_size=20).filter(lambda handle: any(protocol.visible(c) for c in handle)))
def test_a_handle_in_any_normal_form_is_the_same_handle(handle):
    try:
        expected = protocol.validate_handle(unicodedata.normalize("NFC", handle))
    except protocol.ProtocolError:
        return
    assert protocol.validate_handle(unicodedata.normalize("NFD", handle)) == expected


@pytest.mark.parametrize("handle, why", [
    ("\u3164", "visible"), ("\u115f\u1160", "visible"), ("   ", "1 to"), ("a\u202eb", "U+202E"),
    ("a\u2066b", "U+2066"), ("ann\u200d", "U+200D"), ("a\u2029b", "U+2029"), ("a\x07", "U+0007"),
])
def test_handles_that_show_nothing_or_hide_something_are_refused(handle, why):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.validate_handle(handle)
    assert refused.value.code == "bad_handle" and why in refused.value.detail


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff", "bell\x07", "\x1b[31m", "a\x85b"])
def test_text_no_database_or_encoder_takes_is_refused(text):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.parse_frame({"text": json.dumps({"message": text})})
    assert refused.value.code == "invalid_text"


def test_tabs_newlines_and_any_printable_text_pass():
    text = "line one\n\tline two\r\n😀 ∑ 漢字 \u200e"
    assert protocol.parse_frame({"text": json.dumps({"message": text})}) == ("message", text)


def test_json_nested_too_deep_to_parse_is_taken_as_text():
    assert protocol.parse_frame({"text": "[" * 1900}) == ("message", "[" * 1900)


def test_an_error_frame_may_carry_more_fields():
    assert json.loads(protocol.error("rate_limited", "slow down", retry_after=0.2)["text"]) == {
        "type": "error", "code": "rate_limited", "detail": "slow down", "retry_after": 0.2}


@pytest.mark.parametrize("query, since", [(b"", None), (b"handle=ann", None), (b"since=0", 0), (b"since=42&handle=a", 42)])
def test_since_comes_from_the_query_string(query, since):
    assert protocol.since_from_query_string(query) == since


@pytest.mark.parametrize("query", [b"since=", b"since=-1", b"since=1.5", b"since=abc", "since=\u0663".encode()])
def test_a_since_that_is_not_a_seq_is_refused(query):
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.since_from_query_string(query)
    assert refused.value.code == "bad_since"
