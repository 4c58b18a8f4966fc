"""Django 2.2's PostgreSQL backend, working with psycopg2 2.9.

Django 2.2 supports psycopg2 below 2.9, but no psycopg2 below 2.9 runs on Python 3.11
(2.8.6 builds and then fails on import). psycopg2 2.9 calls a cursor's
``tzinfo_factory`` with a ``timedelta`` instead of minutes, and Django 2.2's factory
then reads a UTC connection as not UTC and raises on every timestamp it reads
(Django ticket #32798, fixed in 3.2.5, never in 2.2). This backend installs a factory
that accepts both; nothing else differs.
"""
import datetime

from django.conf import settings
from django.db.backends.postgresql import base
from django.utils.timezone import utc


def utc_tzinfo_factory(offset):
    if offset not in (0, datetime.timedelta(0)):
        raise AssertionError("database connection isn't set to UTC (offset %r)" % (offset,))
    return utc


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        cursor.tzinfo_factory = utc_tzinfo_factory if settings.USE_TZ else None
        return cursor
