"""The study note's own test page, its JavaScript unchanged, in a real Chromium."""

SUPPORTED = "您的浏览器支持 WebSocket!"


def test_seed_page_alerts_that_websocket_is_supported_then_hello_world_and_nothing_else(runserver, page):
    alerts = []

    def accept(dialog):
        alerts.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    page.goto("http://127.0.0.1:%d/seed/" % runserver.port)
    with page.expect_event("dialog", predicate=lambda dialog: dialog.message == "hello world", timeout=15000):
        page.click("text=运行 WebSocket")
    # Close the page's socket (a global of its script) and wait for it: every frame the server
    # sent before has been alerted by then.
    page.evaluate("new Promise(function (closed) { socket.onclose = closed; socket.close(); })")
    assert alerts == [SUPPORTED, "hello world"]
