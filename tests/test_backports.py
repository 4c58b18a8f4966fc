"""Django 2.2's security backports (channels_example/backports.py), each against the advisory's attack."""
from unittest import mock

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import make_password
from django.test import Client

from channels_example.models import Message

pytestmark = pytest.mark.django_db


def test_filter_refuses_connector_and_negated_as_lookups_cve_2025_64459():
    for name in ("_connector", "_negated"):
        with pytest.raises(TypeError, match=name):
            Message.objects.filter(**{"handle": "x", name: "OR 1=1 OR"})
        with pytest.raises(TypeError):
            Message.objects.exclude(**{name: True})
    assert list(Message.objects.filter(handle="x")) == []


def test_the_admins_change_list_cannot_be_made_to_inject_sql_cve_2025_64459():
    Message.objects.create(room="secret", seq=1, handle="ann", message="private", created="2026-01-01T00:00Z")
    staff = get_user_model().objects.create_superuser("admin", "a@example.com", "admin-password-1")
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/channels_example/message/",
                      {"handle": "none", "message": "none", "_connector": "OR 1=1 OR"})
    # Refused as an incorrect lookup (the admin redirects with ?e=1), and nothing listed.
    assert page.status_code == 302 and "e=1" in page["Location"]
    assert b"private" not in page.content


def test_a_user_with_an_unusable_password_costs_a_hash_like_any_other_cve_2024_39329():
    users = get_user_model().objects
    users.create_user("usable", password="a-password-1")
    unusable = users.create_user("unusable")
    unusable.set_unusable_password()
    unusable.save()
    for username in ("usable", "unusable", "nobody"):
        with mock.patch("django.contrib.auth.base_user.make_password", wraps=make_password) as hashed, \
                mock.patch("django.contrib.auth.hashers.PBKDF2PasswordHasher.verify", return_value=False) as verified:
            assert authenticate(username=username, password="wrong") is None
        assert hashed.call_count + verified.call_count >= 1, username


def test_a_huge_accept_language_header_is_cut_before_it_is_parsed_cve_2023_23969():
    from django.utils.translation import trans_real

    header = "zh-hans," + "x" * 600
    with mock.patch("channels_example.backports._parse_accept_lang_header", return_value=()) as parsed:
        trans_real.parse_accept_lang_header(header)
    parsed.assert_called_once_with("zh-hans")
    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9," + "en;q=0.1," * 100).get("/accounts/login/")
    assert page["Content-Language"] == "zh-hans"


def test_a_language_code_over_500_characters_is_no_language_cve_2024_39614():
    from django.utils.translation import trans_real

    with pytest.raises(LookupError):
        trans_real.get_supported_language_variant("zh-" + "a" * 600)
    client = Client()
    client.cookies["django_language"] = "en-" + "a" * 600
    assert client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="zh-CN")["Content-Language"] == "zh-hans"
