"""docs/message-path.svg, the picture of one chat message's way in docs/architecture.md, drawn anew:

    python3 scripts/message_path_svg.py

A sequence diagram in plain SVG: the processes across, time down, and the ten ideas numbered
as architecture.md numbers them.
"""
import os
W, H = 1060, 700
lanes = [("ann's browser", 110), ("daphne", 320), ("Redis", 560), ("a runworker", 800), ("the clock", 975)]
x = dict((name, pos) for name, pos in lanes)
out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
       'font-family="DejaVu Sans, Arial, sans-serif" font-size="13">' % (W, H, W, H),
       '<rect width="100%" height="100%" fill="#ffffff"/>',
       '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto">'
       '<path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>']
for name, pos in lanes:
    out.append('<rect x="%d" y="14" width="150" height="30" rx="5" fill="#eef3f8" stroke="#5b7a99"/>' % (pos - 75))
    out.append('<text x="%d" y="34" text-anchor="middle" font-weight="bold">%s</text>' % (pos, name))
    out.append('<line x1="%d" y1="44" x2="%d" y2="%d" stroke="#9aa" stroke-dasharray="4 4"/>' % (pos, pos, H - 20))


def arrow(a, b, y, label, number=None):
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="1.5" marker-end="url(#a)"/>'
               % (x[a], y, x[b], y))
    mid = (x[a] + x[b]) / 2
    text = ("%s  " % number if number else "") + label
    out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (mid, y - 6, text))


def note(lane, y, lines, height=None, width=200):
    height = height or 18 * len(lines) + 10
    out.append('<rect x="%d" y="%d" width="%d" height="%d" rx="4" fill="#fff8e6" stroke="#c9a44a"/>'
               % (x[lane] - width / 2, y, width, height))
    for i, line in enumerate(lines):
        out.append('<text x="%d" y="%d" text-anchor="middle">%s</text>' % (x[lane], y + 19 + 18 * i, line))


arrow("ann's browser", "daphne", 80, 'text frame "hello"')
note("daphne", 92, ["1 bounds: length, rate, backlog;", "stamped, numbered (order)"], width=230)
arrow("daphne", "Redis", 160, "websocket.receive", "1")
note("Redis", 172, ["2 the layer: one queue,", "any worker takes it"], width=190)
arrow("Redis", "a runworker", 232, "BLPOP: the frame", "2")
note("a runworker", 244, ["3 routing.py → ws_message", "4 @channel_session_user", "5 parse_frame",
                          "6 Room(\"lobby\").send", "7 @in_order: order 1"], width=220)
arrow("a runworker", "Redis", 362, "EVALSHA deliver.lua", "8")
note("Redis", 374, ["8 park, take what is due,", "mute? number (seq), keep,", "send to the Group,",
                    "queue for storing"], width=200)
arrow("Redis", "daphne", 484, "BLPOP: the room's message", "8")
note("daphne", 496, ["9 the gate: numbered order,", "each once; framed once"], width=230)
arrow("daphne", "ann's browser", 572, '{"type": "message", ..., "seq": 42}', "9")
out.append('<text x="%d" y="592" text-anchor="middle" font-style="italic">and every member of lobby</text>'
           % x["ann's browser"])
arrow("the clock", "Redis", 636, "chat.store, every 0.2 s", "10")
arrow("Redis", "a runworker", 672, "store_messages: 100 a batch → the database", "10")
out.append("</svg>")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "message-path.svg"), "w") as svg:
    svg.write("\n".join(out) + "\n")
