"""The HTTP pages a person may type the address of (channels_example/views.py)."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


def test_typing_the_logout_address_shows_a_page_with_the_button_and_logs_no_one_out():
    get_user_model().objects.create_user("ann", password="a-long-password-9")
    client = Client()
    client.login(username="ann", password="a-long-password-9")

    page = client.get("/accounts/logout/")

    assert page.status_code == 200
    assert 'action="/accounts/logout/"' in page.content.decode("utf-8") and "<button>Log out</button>" in page.content.decode("utf-8")
    assert client.get("/").context["user"].is_authenticated
    client.post("/accounts/logout/")
    assert not client.get("/").context["user"].is_authenticated


def test_the_chat_page_gives_each_box_the_servers_limit():
    page = Client().get("/").content.decode("utf-8")
    for box, limit in (("handle", 32), ("room", 100), ("message", 2000)):
        assert re.search(r'<input id="%s" [^>]*maxlength="%d"' % (box, limit), page), box
