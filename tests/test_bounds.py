"""The bounds' own parts: the token bucket and the settings that configure them."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from channels_example import settings as project_settings
from channels_example.interface.ratelimit import TokenBucket


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_bucket_passes_its_burst_at_once_then_its_rate():
    clock = Clock()
    bucket = TokenBucket(5, 20, clock)
    assert [bucket.take() for _ in range(20)] == [0] * 20
    assert bucket.take() == pytest.approx(0.2)
    clock.now += 0.2
    assert bucket.take() == 0
    assert bucket.take() == pytest.approx(0.2)


def test_a_bucket_never_holds_more_than_its_burst():
    clock = Clock()
    bucket = TokenBucket(5, 3, clock)
    clock.now += 3600
    assert [bucket.take() == 0 for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("text, limit", [("5/s:20", (5.0, 20)), ("0.5/s:1", (0.5, 1)), ("off", None), (" OFF ", None)])
def test_chat_rate_limit_is_read_from_the_environment(text, limit):
    assert project_settings._rate_limit(text) == limit


@pytest.mark.parametrize("text", ["5", "5/s", "0/s:3", "5/s:0", "fast", "5/m:20"])
def test_a_chat_rate_limit_that_is_not_rate_and_burst_is_refused_naming_the_form(text):
    with pytest.raises(ImproperlyConfigured, match="<frames>/s:<burst>"):
        project_settings._rate_limit(text)
