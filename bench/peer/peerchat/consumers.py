"""The same chat as channels_example's consumers, written the Channels 4 way.

Same wire protocol (docs/protocol.md) for the parts the benchmark uses: the room from
the path, ?handle=, a JSON {"message"} or plain text in, {"type": "message", ...} out.
"""
import hashlib
import json
import time
from urllib.parse import parse_qs, unquote

from channels.generic.websocket import AsyncWebsocketConsumer


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.room = unquote(self.scope["path"]).strip("/") or "lobby"
        self.group = "chat-" + hashlib.sha256(self.room.encode()).hexdigest()[:20]
        query = parse_qs(self.scope["query_string"].decode())
        self.handle = query.get("handle", ["guest"])[0]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        message, handle = text_data, self.handle
        try:
            data = json.loads(text_data)
        except (TypeError, ValueError):
            data = None
        if isinstance(data, dict):
            message, handle = data.get("message"), data.get("handle", handle)
        frame = {"type": "message", "room": self.room, "handle": handle, "message": message,
                 "ts": int(time.time() * 1000)}
        await self.channel_layer.group_send(self.group, {"type": "chat.message", "text": json.dumps(frame)})

    async def chat_message(self, event):
        await self.send(text_data=event["text"])
