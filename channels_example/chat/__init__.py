"""The chat: what a room does, on top of channels 1.x's Groups and channel sessions.

    rooms.py      Room: a room's name, Group and keys; join, leave, send (as a Group is used)
    identity.py   who a socket is: its Django user, or a guest, and the id its messages carry
    moderation.py staff delete a message or mute a name
    history.py    each room's numbering, recent messages and stored history
    presence.py   each room's members, and the sockets of dead daphnes
    ordering.py   @in_order: a socket's messages delivered in the order it sent them
    protocol.py   the wire format (docs/protocol.md)

Imports go one way, down this list from ordering.py (ordering -> rooms, identity and
moderation -> history and presence -> protocol), and on to the stores (channels_example.backends) and the
transport (channels_example.layers), never back: .importlinter says so, and CI checks it.
"""
