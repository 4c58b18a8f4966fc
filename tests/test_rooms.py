"""Rooms from paths, and the room -> Group name mapping."""
import re
import unicodedata

import pytest
from django.conf import settings as django_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from channels_example.chat import rooms

VALID_GROUP = re.compile(r"[A-Za-z0-9._-]+\Z")

room_names = st.text(min_size=1, max_size=django_settings.MAX_ROOM_LENGTH).filter(
    lambda name: _is_room(name)
)


def _is_room(name):
    try:
        return rooms.room_from_path("/%s/" % name) == name
    except rooms.InvalidRoom:
        return False


@pytest.mark.parametrize(
    "path, room",
    [
        ("/lobby/", "lobby"),
        ("/lobby", "lobby"),
        ("/", rooms.DEFAULT_ROOM),
        ("", rooms.DEFAULT_ROOM),
        ("/channels_example/", "channels_example"),
        ("/聊天室/", "聊天室"),
        ("/a b/", "a b"),
        ("/" + "x" * django_settings.MAX_ROOM_LENGTH + "/", "x" * django_settings.MAX_ROOM_LENGTH),
    ],
)
def test_room_is_the_path_without_slashes(path, room):
    assert rooms.room_from_path(path) == room


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/" + "x" * (django_settings.MAX_ROOM_LENGTH + 1) + "/", "at most"),
        ("/a\x00b/", "U+0000"),
        ("/a\nb/", "U+000A"),
        ("/a\u200bb/", "U+200B"),
        ("/a/b/", "one path segment"),
        ("/ lobby/", "whitespace"),
    ],
)
def test_path_that_cannot_be_a_room_is_refused_with_the_reason(path, reason):
    with pytest.raises(rooms.InvalidRoom) as refused:
        rooms.room_from_path(path)
    assert reason in refused.value.detail
    assert refused.value.code == "invalid_room"


def test_readable_room_keeps_its_name_as_group():
    assert rooms.group_name("lobby") == "chat-lobby"


def test_unicode_room_gets_a_valid_group_name():
    name = rooms.group_name("聊天室")
    assert VALID_GROUP.match(name) and len(name) < 100
    assert name != rooms.group_name("聊天")


@given(room_names)
@settings(max_examples=500)
def test_every_room_yields_a_valid_group_name(room):
    name = rooms.group_name(room)
    assert VALID_GROUP.match(name), name
    assert len(name) < 100


@given(st.lists(room_names, min_size=2, max_size=50, unique=True))
@settings(max_examples=300)
def test_distinct_rooms_never_share_a_group(distinct_rooms):
    names = [rooms.group_name(room) for room in distinct_rooms]
    assert len(set(names)) == len(names)


@given(st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True))
def test_readable_and_encoded_forms_never_meet(room):
    # "lobby" and "lobby!" both slug to "lobby"; only the readable one has no dot.
    assert rooms.group_name(room) != rooms.group_name(room + "!")


@given(room_names)
def test_a_room_typed_in_either_form_is_one_room_with_one_group(room):
    composed, decomposed = (rooms.room_from_path("/%s/" % unicodedata.normalize(form, room)) for form in ("NFC", "NFD"))
    assert composed == decomposed == room
    assert rooms.group_name(composed) == rooms.group_name(decomposed)


@pytest.mark.parametrize("name, why", [
    ("\u3164", "visible"), ("\u2800\u2800", "visible"), ("a\u202eb", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("a\u2028b", "U+2028"), ("a\u200bb", "U+200B"),
])
def test_rooms_with_nothing_visible_or_with_bidi_and_invisible_characters_are_refused(name, why):
    with pytest.raises(rooms.InvalidRoom) as refused:
        rooms.room_from_path("/%s/" % name)
    assert why in refused.value.detail
