/* The chat page at /: one room at a time, over the protocol in docs/protocol.md.
 *
 * The page URL /?room=ROOM&handle=HANDLE opens a room directly; the WebSocket is
 * ws://HOST/<ROOM>/?handle=HANDLE, or without ?handle= when the person chose none, and
 * the server's welcome frame tells the page the handle it got. On joining the page
 * shows the room's history, then live messages; the presence bar lists who is there.
 * A dropped connection is retried with capped exponential backoff (keeping the handle,
 * and showing only messages it has not shown yet); a refused one (close 4400) is not,
 * since the same URL would be refused again. Every piece of text reaches the DOM
 * through textContent.
 */
"use strict";

var CLOSE_REFUSED = 4400;
var RETRY_FIRST_MS = 500;
var RETRY_MAX_MS = 10000;
var FOLLOW_SLACK_PX = 48;

// retries: consecutive attempts since the connection last held; lost: the room was
// joined, then the connection dropped (the status says "reconnecting"); lastSeq: the
// room's number of the last message shown; members: a Map, handle -> how many sockets use it
// (a Map, not an object: a handle such as "constructor" or "__proto__" is a key like any other).
var chat = {
  room: null, handle: "", socket: null, retries: 0, lost: false, timer: null, lastError: null,
  welcomed: false, lastSeq: 0, members: new Map()
};

function byId(id) {
  return document.getElementById(id);
}

function socketUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
}

function element(tag, className, text) {
  var node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(state, detail) {
  var status = byId("status");
  status.dataset.state = state;
  status.textContent = state;
  status.title = detail || "";
}

/* Append an item to the message list, following it if the reader was at the bottom. */
function append(item, follow) {
  var list = byId("messages");
  var atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < FOLLOW_SLACK_PX;
  list.appendChild(item);
  if (atBottom || follow) list.scrollTop = list.scrollHeight;
}

function note(text, className) {
  append(element("li", className ? "note " + className : "note", text), true);
}

function showMessage(frame, fromHistory) {
  if (typeof frame.seq === "number") {
    if (frame.seq <= chat.lastSeq) return;  // shown before a reconnect
    chat.lastSeq = frame.seq;
  }
  var own = frame.handle === chat.handle;
  var item = element("li", "message" + (own ? " own" : "") + (fromHistory ? " earlier" : ""));
  var meta = element("div", "meta");
  meta.appendChild(element("span", "handle", String(frame.handle)));
  if (typeof frame.ts === "number") {
    var sent = new Date(frame.ts);
    var time = element("time", "", sent.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
    time.dateTime = sent.toISOString();
    time.title = sent.toLocaleString();
    meta.appendChild(time);
  }
  item.appendChild(meta);
  item.appendChild(element("p", "text", String(frame.message)));
  append(item, own || fromHistory);
}

function showWelcome(frame) {
  chat.handle = String(frame.handle);
  byId("handle").value = chat.handle;
  rememberRoom();
  chat.members = new Map();
  (Array.isArray(frame.members) ? frame.members : []).forEach(function (handle) {
    countMember(String(handle), 1);
  });
  showMembers(Array.isArray(frame.members) ? frame.members.length : 0);
  if (!chat.welcomed) note("you are " + chat.handle + " in " + chat.room);
  chat.welcomed = true;
  setStatus("connected", chat.handle + " in " + chat.room);
}

function showHistory(frame) {
  // A server that lost its numbering (a restart without its data) starts again lower.
  if (typeof frame.upto === "number" && frame.upto < chat.lastSeq) chat.lastSeq = 0;
  (Array.isArray(frame.messages) ? frame.messages : []).forEach(function (message) {
    if (message && typeof message === "object") showMessage(message, true);
  });
}

function showPresence(frame) {
  var handle = String(frame.handle);
  if (frame.event === "join") {
    countMember(handle, 1);
    note(handle + " joined", "presence");
  } else if (frame.event === "leave") {
    countMember(handle, -1);
    note(handle + " left", "presence");
  } else {
    return;
  }
  showMembers(frame.members);
}

function countMember(handle, change) {
  var times = (chat.members.get(handle) || 0) + change;
  if (times > 0) chat.members.set(handle, times);
  else chat.members.delete(handle);
}

/* The presence bar: how many are here and their handles (one handle used twice shows ×2). */
function showMembers(count) {
  var list = byId("members");
  list.replaceChildren();
  Array.from(chat.members.keys()).sort().forEach(function (handle) {
    var times = chat.members.get(handle);
    var item = element("li", handle === chat.handle ? "member own" : "member", handle);
    if (times > 1) item.appendChild(element("span", "times", " ×" + times));
    list.appendChild(item);
  });
  byId("member-count").textContent = typeof count === "number" ? String(count) : "";
  byId("presence").hidden = false;
}

function onFrame(event) {
  var frame;
  try {
    frame = JSON.parse(event.data);
  } catch (notJson) {
    return;
  }
  if (frame === null || typeof frame !== "object") return;
  if (frame.type === "message") {
    showMessage(frame, false);
  } else if (frame.type === "welcome") {
    showWelcome(frame);
  } else if (frame.type === "history") {
    showHistory(frame);
  } else if (frame.type === "presence") {
    showPresence(frame);
  } else if (frame.type === "error") {
    chat.lastError = String(frame.detail || frame.code);
    note(chat.lastError, "error");
  }
  // Frame types this page does not know are for later versions of it.
}

function connect() {
  var path = "/" + encodeURIComponent(chat.room) + "/" + (chat.handle ? "?handle=" + encodeURIComponent(chat.handle) : "");
  var socket = new WebSocket(socketUrl(path));
  var openedAt = null;
  chat.socket = socket;
  chat.lastError = null;
  setStatus(chat.lost ? "reconnecting" : "connecting");
  socket.onopen = function () {
    if (socket !== chat.socket) return;
    openedAt = Date.now();
    if (chat.lost) note("reconnected");
    chat.lost = false;
    setStatus("connected", chat.room);
  };
  socket.onmessage = function (event) {
    if (socket === chat.socket) onFrame(event);
  };
  socket.onclose = function (event) {
    if (socket !== chat.socket) return;
    chat.socket = null;
    if (event.code === CLOSE_REFUSED) {
      setStatus("refused", chat.lastError);
      note("the server refused this room or handle, so the page will not retry: pick another above");
      byId("room").focus();
      return;
    }
    if (!chat.lost) note("connection lost, reconnecting");
    chat.lost = true;
    byId("presence").hidden = true;
    // Only a connection that lasted resets the backoff: a server that accepts and
    // drops at once must not be hammered every RETRY_FIRST_MS.
    if (openedAt !== null && Date.now() - openedAt > RETRY_MAX_MS) chat.retries = 0;
    var delay = Math.min(RETRY_FIRST_MS * Math.pow(2, chat.retries), RETRY_MAX_MS);
    chat.retries += 1;
    setStatus("reconnecting", "next attempt in " + delay / 1000 + " s");
    chat.timer = setTimeout(connect, delay);
  };
}

function leave() {
  clearTimeout(chat.timer);
  if (chat.socket) {
    var socket = chat.socket;
    chat.socket = null;
    socket.close();
  }
}

function rememberHandle(handle) {
  try {
    localStorage.setItem("handle", handle);
  } catch (unavailable) {
    // Private windows may refuse storage; the handle stays in the page URL anyway.
  }
}

function rememberedHandle() {
  try {
    return localStorage.getItem("handle") || "";
  } catch (unavailable) {
    return "";
  }
}

function roomLink(room) {
  return location.origin + "/?room=" + encodeURIComponent(room);
}

/* Keep the room and handle in the page URL (and the handle for next time). */
function rememberRoom() {
  var params = {room: chat.room};
  if (chat.handle) {
    params.handle = chat.handle;
    rememberHandle(chat.handle);
  }
  history.replaceState(null, "", "/?" + new URLSearchParams(params));
}

function join(room, handle) {
  leave();
  chat.room = room.trim() || "lobby";
  // No handle: the server gives one (guest-...), and the welcome frame says which.
  chat.handle = handle.trim();
  chat.retries = 0;
  chat.lost = false;
  chat.welcomed = false;
  chat.lastSeq = 0;
  chat.members = new Map();
  byId("room").value = chat.room;
  byId("handle").value = chat.handle;
  byId("room-name").textContent = chat.room;
  document.title = chat.room + " · channels_example chat";
  var share = byId("share");
  share.href = roomLink(chat.room);
  share.title = "Share this room: " + location.origin + "/?room=" + chat.room;
  share.hidden = false;
  rememberRoom();
  byId("messages").replaceChildren();
  byId("presence").hidden = true;
  connect();
  byId("message").focus();
}

function send(event) {
  event.preventDefault();
  var input = byId("message");
  input.focus();
  if (input.value === "") return;
  if (!chat.socket || chat.socket.readyState !== WebSocket.OPEN) {
    note("not sent: not connected (your message is still in the box)", "error");
    return;
  }
  // Always JSON, so a message that happens to look like JSON is still taken as text.
  chat.socket.send(JSON.stringify({message: input.value}));
  input.value = "";
}

/* The study note's test, unchanged in flow: open /channels_example/, send
 * "hello world", and show the reply (in the page rather than in alert()). The room's
 * welcome and history frames come first; the reply is the first chat message. */
function WebSocketTest() {
  var output = byId("seed-output");
  output.textContent = "connecting to /channels_example/ …";
  var socket = new WebSocket(socketUrl("/channels_example/"));
  socket.onopen = function () {
    socket.send("hello world");
  };
  socket.onmessage = function (event) {
    var frame = null;
    try {
      frame = JSON.parse(event.data);
    } catch (notJson) {
      // Not ours: show it as it came.
    }
    if (frame && frame.type !== "message") return;
    output.textContent = event.data;
    socket.close();
  };
  socket.onerror = function () {
    output.textContent = "the WebSocket failed";
  };
}

document.addEventListener("DOMContentLoaded", function () {
  byId("join").addEventListener("submit", function (event) {
    event.preventDefault();
    join(byId("room").value, byId("handle").value);
  });
  byId("send").addEventListener("submit", send);
  byId("seed-test").addEventListener("click", function (event) {
    event.preventDefault();
    WebSocketTest();
  });
  var params = new URLSearchParams(location.search);
  var handle = params.get("handle") || rememberedHandle();
  byId("handle").value = handle;
  if (params.has("room")) {
    join(params.get("room"), handle);
  } else {
    byId(handle ? "room" : "handle").focus();
  }
});
