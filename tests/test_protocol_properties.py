"""Properties of the wire protocol's rules, fed arbitrary text and JSON by Hypothesis.

Whatever a client sends, ``parse_frame`` and the room and handle rules raise nothing but
ProtocolError, and never accept what docs/protocol.md refuses. The rules are written out
here again from the docs, not taken from the code they check.
"""
import json
import re
import unicodedata

from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from channels_example.chat import protocol, rooms
from channels_example.chat.protocol import ProtocolError

# Slow examples are not a failure here: the machine is shared with other test runs.
hypothesis_settings.register_profile("protocol", deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = hypothesis_settings.get_profile("protocol")

# Text of every kind: any code point (surrogates included, as a JSON escape can carry one),
# and the kinds the rules are about, more often than chance would give them.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
TRICKY = st.sampled_from(["\u0000", "\t", "\n", "\r", "\x7f", "\x85", "\u00a0", "\u200b", "\u200e", "\u202e",
                          "\u2028", "\u2029", "\u3164", "\u2800", "\ud800", "\udfff", "\ue000", "\U0010ffff",
                          "\u0301", "e", "\u00e9", "/", " ", "a", "聊"])
TEXT = st.text(st.one_of(ANY_CHAR, TRICKY), max_size=40)
LONG_TEXT = st.one_of(TEXT, st.builds(lambda text, times: text * times, TEXT, st.integers(1, 3000)))
# JSON nested deeper than Python's recursion limit (a RecursionError once escaped the parser).
DEEP = st.builds(lambda opener, depth: opener * depth, st.sampled_from(["[", '{"a":', '[{"message":']),
                 st.integers(1, 5000))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12)
FRAME_OBJECTS = st.fixed_dictionaries({}, optional={
    "message": st.one_of(LONG_TEXT, JSON), "handle": JSON, "action": st.one_of(st.sampled_from(["delete", "mute"]), JSON),
    "seq": st.one_of(st.integers(), JSON), "target": st.one_of(TEXT, JSON), "seconds": st.one_of(st.integers(), JSON)})


def documented_message(text):
    """docs/protocol.md: 1 to 2000 characters, not only whitespace, and no lone surrogate, NUL or
    other control character but tab, line feed and carriage return."""
    return (bool(text.strip()) and len(text) <= settings.MAX_MESSAGE_LENGTH
            and not any(unicodedata.category(char) in ("Cs",) or (unicodedata.category(char) == "Cc"
                                                                  and char not in "\t\n\r") for char in text))


def documented_name(name, longest):
    """docs/protocol.md, for a handle and a room: NFC, 1 to ``longest`` characters, no control, format,
    surrogate, private-use or unassigned code point, no line or paragraph separator, no edge
    whitespace, and a visible character (not a Hangul filler or blank Braille)."""
    invisible = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}
    return (name == unicodedata.normalize("NFC", name) and 1 <= len(name) <= longest and name == name.strip()
            and not any(unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp")
                        for char in name)
            and any(unicodedata.category(char)[0] in "LNPS" and char not in invisible for char in name))


def parsed(text):
    """``parse_frame`` on a text frame: what it returns, or the ProtocolError it raises."""
    try:
        return protocol.parse_frame({"text": text})
    except ProtocolError as refused:
        return refused


def check_frame(text):
    result = parsed(text)
    if isinstance(result, ProtocolError):
        return result
    kind, *args = result
    if kind == "message":
        assert documented_message(args[0]), (text, result)
        data = _json_or_none(text)
        assert args[0] == (data["message"] if isinstance(data, dict) else text)
    elif kind == "delete":
        (seq,) = args
        assert type(seq) is int and seq >= 1
    else:
        assert kind == "mute"
        target, seconds = args
        assert documented_name(target, settings.MAX_HANDLE_LENGTH)
        assert type(seconds) is int and 1 <= seconds <= settings.MAX_MUTE_SECONDS
    assert not (isinstance(_json_or_none(text), dict) and "handle" in _json_or_none(text)), "a frame chose who speaks"
    return result


def _json_or_none(text):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


@PROFILE
@given(st.one_of(LONG_TEXT, DEEP))
def test_any_text_frame_is_a_documented_message_or_a_protocol_error(text):
    check_frame(text)


@PROFILE
@given(JSON)
def test_any_json_frame_is_parsed_by_the_documented_rules_or_refused_with_a_protocol_error(value):
    check_frame(json.dumps(value))


@PROFILE
@given(FRAME_OBJECTS)
def test_any_object_a_client_may_send_is_parsed_by_the_documented_rules_or_refused(value):
    result = check_frame(json.dumps(value))
    if "handle" in value:
        assert isinstance(result, ProtocolError) and result.code == "handle_not_allowed"


@PROFILE
@given(st.binary(max_size=64))
def test_a_binary_frame_is_always_refused(data):
    for content in ({"bytes": data}, {"text": None, "bytes": data}):
        assert isinstance(parsed_content(content), ProtocolError)


def parsed_content(content):
    try:
        return protocol.parse_frame(content)
    except ProtocolError as refused:
        return refused


@PROFILE
@given(st.one_of(TEXT, LONG_TEXT, JSON))
def test_a_handle_is_valid_by_the_documented_rules_normalised_and_stable_or_refused(value):
    try:
        handle = protocol.validate_handle(value)
    except ProtocolError as refused:
        assert refused.code == "bad_handle"
        return
    assert documented_name(handle, settings.MAX_HANDLE_LENGTH)
    assert handle == unicodedata.normalize("NFC", value).strip()
    assert protocol.validate_handle(handle) == handle


@PROFILE
@given(st.one_of(TEXT, LONG_TEXT))
def test_a_room_is_valid_by_the_documented_rules_with_a_group_name_layers_take_or_refused(name):
    path = "/%s/" % name
    try:
        room = rooms.room_from_path(path)
    except ProtocolError as refused:
        assert refused.code == "invalid_room"
        return
    if room != rooms.DEFAULT_ROOM:
        assert documented_name(room, settings.MAX_ROOM_LENGTH) and "/" not in room
        assert room == unicodedata.normalize("NFC", path.strip("/"))
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,99}", rooms.group_name(room))


@PROFILE
@given(st.one_of(TEXT, st.binary(max_size=40)), st.text(max_size=10))
def test_a_query_string_gives_a_documented_handle_and_since_or_a_protocol_error(query, channel):
    try:
        handle = protocol.handle_from_query_string(query, "daphne.response.test!" + channel)
        since = protocol.since_from_query_string(query)
    except ProtocolError as refused:
        assert refused.code in ("bad_handle", "bad_since")
        return
    assert documented_name(handle, settings.MAX_HANDLE_LENGTH)
    assert since is None or (type(since) is int and since >= 0)
