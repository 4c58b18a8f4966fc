"""Backends the project plugs into Django and channels: where its state lives.

    shards.py      the project's own Redis keys, on the channel layer's Redis servers
    sessions.py    channel sessions in Redis (CHANNEL_SESSION_ENGINE with REDIS_URL)
    postgresql/    Django 2.2's PostgreSQL backend, working with psycopg2 2.9
"""
