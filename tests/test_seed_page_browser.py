"""The study note's own test page, its JavaScript unchanged, in a real Chromium."""
import json

SUPPORTED = "您的浏览器支持 WebSocket!"


def test_seed_page_shows_hello_world_coming_back(runserver, page):
    alerts = []

    def accept(dialog):
        alerts.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("http://127.0.0.1:%d/seed/" % runserver.port)
    # The page alerts every frame: the room's welcome and history come first, then the reply.
    with page.expect_event("dialog", predicate=lambda dialog: '"type": "message"' in dialog.message,
                           timeout=15000) as reply:
        page.click("text=运行 WebSocket")
    assert alerts[0] == SUPPORTED
    assert [json.loads(alert)["type"] for alert in alerts[1:3]] == ["welcome", "history"]
    frame = json.loads(reply.value.message)
    assert (frame["type"], frame["room"], frame["message"]) == ("message", "channels_example", "hello world")
