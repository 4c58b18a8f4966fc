/* The chat page at /: one room at a time, over the protocol in docs/protocol.md.
 *
 * The page URL /?room=ROOM&handle=HANDLE opens a room directly for a signed-in person
 * and for a guest with a name (in the URL, or remembered from last time); a guest
 * without one is asked for it first, the room filled in, and joins on Join, or on Join
 * as a guest, which lets the server name them: the room sees one join, under the name
 * chosen. The WebSocket is ws://HOST/<ROOM>/?handle=HANDLE, or without ?handle= when
 * the person chose none or is signed in (a signed-in socket speaks as its username:
 * the server decides). The welcome frame tells the page who it is: its handle, whether
 * it is signed in or staff, and its sender id. The handle box holds only what the
 * person typed (or their account's name, read-only): a name the server gave is shown
 * in the status line, never written where a keystroke could add to it. A message is
 * the reader's own when it carries that sender, never because its handle matches:
 * anyone can choose a name in another room, or after the reader left. On joining the
 * page shows the room's history, then live messages; the presence bar lists who is
 * there, with a mark for names the server says are signed in. Staff see a delete
 * button on each message and a mute button on each other member.
 *
 * Nothing typed is lost. The message box keeps its text until the room's frame for it comes
 * back (the pending message: one at a time, recognised by its sender and text, or by the id
 * the server echoes once it does); a refusal (too long, rate limited, muted, not joined, a
 * close, a lost connection) leaves the text where it is and says why beside the box. A
 * message longer than the server takes is refused here, before it is sent, and a paste
 * longer than the box's maxlength is kept whole instead of cut. What is typed is kept in
 * sessionStorage too, so a reload (the language switch) keeps it.
 *
 * Every word of the page comes from Django's JavaScript catalogue (gettext), in the reader's
 * language; every refusal the server sends is shown by its stable ``code``, its English
 * ``detail`` being only the fallback for a code this page does not know. Numbers, dates and
 * times are formatted for the page's language.
 *
 * The room's messages are kept by their seq: one already shown is dropped, live ones that
 * arrive before the history frame wait for it, and each is placed in seq order.
 *
 * A dropped connection is retried with capped exponential backoff, keeping the handle
 * and asking the room for what the page missed (?since=, the last seq it showed): a mark
 * in the list says where it came back and how much it missed, and no message (known by
 * its seq) is shown twice. A refused connection (an error frame before the welcome, or
 * close 4400) is not retried, since the same URL would be refused again; nor is one closed
 * because its user signed out (4401, from this page's Log out or anywhere else): the page
 * says so and rejoins only when asked, as a guest. A refused room is not kept as the current
 * room: the header, the room's link and the page URL change only once the server welcomed
 * the page into it. Every piece of text reaches the DOM through textContent.
 */
"use strict";

var CLOSE_REFUSED = 4400;
var CLOSE_SIGNED_OUT = 4401;
var RETRY_FIRST_MS = 500;
var RETRY_MAX_MS = 10000;
var FOLLOW_SLACK_PX = 48;
var MUTE_SECONDS = 300;
// How long the page waits for the room's frame of a message it sent before it says so.
var PENDING_MS = 15000;
// The path /channels_example/ is the study note's echo (channels_example/echo.py), not a room.
var NOTE_ECHO_ROOM = "channels_example";

// chosen: the name a guest chose for the room ("": the server names them); handle: the
// name the page speaks as (the welcome's, once it came); retries: consecutive attempts
// since the connection last held; lost: the room was joined, then the connection dropped
// (the status says "reconnecting"); seqs: the room's numbers of the messages shown, and
// lastSeq the highest; resumable: the page has shown the room's history, so a reconnect
// asks for what came after lastSeq; members: a Map, handle -> {times: how many
// sockets use it, account: true when the server said it is signed in} (a Map, not an
// object: a handle such as "constructor" or "__proto__" is a key like any other).
// sender, signedIn, staff: who the server says this page is (the welcome frame; before
// it, the account bar the page was served with).
// pending: the message sent and not yet seen in the room, {id, text, lost}: lost once its
// connection closed (a resume may still show it was taken). inRoom: this socket was
// welcomed; historyShown: its history frame has been shown, and early holds the live
// messages that came before it.
var chat = {
  room: null, chosen: "", handle: "", socket: null, retries: 0, lost: false, timer: null, lastError: null,
  welcomed: false, seqs: new Set(), lastSeq: 0, resumable: false, members: new Map(),
  sender: null, signedIn: false, staff: false,
  pending: null, pendingTimer: null, nextId: 1, inRoom: false, historyShown: false, early: []
};

var LANGUAGE = document.documentElement.lang || "en";

/* The catalogue's gettext with named values: say("%(count)s characters", {count: 3}). */
function say(text, values) {
  return values ? interpolate(text, values, true) : text;
}

function number(value) {
  return Number(value).toLocaleString(LANGUAGE);
}

/* A message's length as the server counts it: in characters (code points), not UTF-16 units. */
function characters(text) {
  return Array.from(text).length;
}

function limit(name) {
  return Number(byId("send").dataset["max" + name]) || Infinity;
}

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

/* The status line: its state (data-state, for styles and tests), and what it says (the
 * state itself unless parts, strings or nodes, are given). */
function setStatus(state, detail, parts) {
  var status = byId("status");
  status.dataset.state = state;
  status.replaceChildren.apply(status, parts || [state]);
  status.title = detail || "";
}

/* "ann in lobby (signed in)": who the server says this page is. */
function showIdentity() {
  var parts = interpolate(chat.signedIn ? gettext("%(handle)s in %(room)s (signed in)")
                                         : gettext("%(handle)s in %(room)s (guest)"),
                          {handle: "\u0000h\u0000", room: "\u0000r\u0000"}, true).split("\u0000");
  setStatus("connected", chat.signedIn ? gettext("signed in: you speak as your username") : gettext("a guest: no account"),
            parts.map(function (part) {
              if (part === "h") return element("span", "name", chat.handle);
              if (part === "r") return element("span", "name", chat.room);
              return part;
            }));
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

/* The mark of a name the server says is signed in: drawn by the page, so no name a guest
 * picks (say "bob ✓") can look like it. */
function accountMark() {
  var mark = element("span", "account-mark", "✓");
  mark.title = gettext("signed in: an account");
  return mark;
}

/* Send a frame if connected; otherwise show ``failure``. */
function sendFrame(frame, failure) {
  if (!chat.socket || chat.socket.readyState !== WebSocket.OPEN) {
    note(failure, "error");
    return false;
  }
  chat.socket.send(JSON.stringify(frame));
  return true;
}

function deleteButton(seq) {
  var button = element("button", "mod delete", gettext("delete"));
  button.type = "button";
  button.title = gettext("Delete this message for everyone (staff)");
  button.addEventListener("click", function () {
    sendFrame({action: "delete", seq: seq}, gettext("not deleted: not connected"));
  });
  return button;
}

function muteButton(handle) {
  var button = element("button", "mod mute", say(gettext("mute %(duration)s"), {duration: duration(MUTE_SECONDS)}));
  button.type = "button";
  button.title = say(gettext("Refuse this name's messages here for %(duration)s (staff)"),
                     {duration: duration(MUTE_SECONDS)});
  button.addEventListener("click", function () {
    sendFrame({action: "mute", target: handle, seconds: MUTE_SECONDS}, gettext("not muted: not connected"));
  });
  return button;
}

/* "5 min", "12 s", "1.5 s": a wait as a person reads it (a fraction under ten seconds, never 0). */
function duration(seconds) {
  var value = Math.max(0, Number(seconds) || 0);
  if (value < 10) return say(gettext("%(count)s s"), {count: number(Math.max(0.1, Math.ceil(value * 10) / 10))});
  var whole = Math.ceil(value);
  if (whole < 120) return say(gettext("%(count)s s"), {count: number(whole)});
  if (whole < 7200) return say(gettext("%(count)s min"), {count: number(Math.round(whole / 60))});
  return say(gettext("%(count)s h"), {count: number(Math.round(whole / 3600))});
}

/* A live message: shown once the history is (until then it waits with the early ones). */
function roomMessage(frame) {
  if (!chat.historyShown) {
    chat.early.push(frame);
    return;
  }
  showMessage(frame, false);
}

function showMessage(frame, fromHistory) {
  if (isPending(frame)) taken();
  if (typeof frame.seq === "number") {
    if (chat.seqs.has(frame.seq)) return;  // shown already: in the history a reconnect brought, say
    chat.seqs.add(frame.seq);
    chat.lastSeq = Math.max(chat.lastSeq, frame.seq);
  }
  var own = chat.sender !== null && frame.sender === chat.sender;
  var item = element("li", "message" + (own ? " own" : "") + (fromHistory ? " earlier" : ""));
  var meta = element("div", "meta");
  var who = element("span", "who");
  who.appendChild(element("span", "handle", String(frame.handle)));
  if (frame.signed_in === true) who.appendChild(accountMark());
  if (own) who.appendChild(element("span", "you", " " + gettext("(you)")));
  meta.appendChild(who);
  if (typeof frame.ts === "number") {
    var sent = new Date(frame.ts);
    var time = element("time", "", sent.toLocaleTimeString(LANGUAGE, {hour: "2-digit", minute: "2-digit"}));
    time.dateTime = sent.toISOString();
    time.title = sent.toLocaleString(LANGUAGE, {dateStyle: "full", timeStyle: "medium"});
    meta.appendChild(time);
  }
  if (typeof frame.seq === "number") {
    item.dataset.seq = String(frame.seq);
    if (chat.staff) meta.appendChild(deleteButton(frame.seq));
  }
  item.appendChild(meta);
  item.appendChild(element("p", "text", String(frame.message)));
  place(item, frame.seq, own || fromHistory);
}

/* Put a message in seq order: before the first shown message numbered above it, else last. */
function place(item, seq, follow) {
  var list = byId("messages");
  var shown = typeof seq === "number" ? list.querySelectorAll(".message[data-seq]") : [];
  var before = null;
  for (var index = shown.length - 1; index >= 0 && Number(shown[index].dataset.seq) > seq; index--) {
    before = shown[index];
  }
  if (before) list.insertBefore(item, before);
  else append(item, follow);
}

/* A moderator deleted message seq: it leaves the page, and a note says who removed whose. */
function showDeleted(frame) {
  var item = Array.from(byId("messages").querySelectorAll(".message")).find(function (message) {
    return message.dataset.seq === String(frame.seq);
  });
  var text = say(gettext("%(by)s deleted a message"), {by: String(frame.by)});
  if (item) {
    text = say(gettext("%(by)s deleted a message from %(handle)s"),
               {by: String(frame.by), handle: item.querySelector(".handle").textContent});
    item.remove();
  }
  note(text, "moderation");
}

function showMuted(frame) {
  var handle = String(frame.handle);
  var values = {by: String(frame.by), handle: handle, duration: duration(frame.seconds)};
  note(say(handle === chat.handle ? gettext("%(by)s muted you here for %(duration)s")
                                  : gettext("%(by)s muted %(handle)s here for %(duration)s"), values), "moderation");
}

// The codes that refuse a chat message (shown beside the message box, its text kept). Those that
// refuse a connection come before the socket's welcome and are shown beside the join form once
// the close 4400 follows (NAME_CODES: the name is what to change). The others refuse a
// moderator's action, and are notes in the list.
var MESSAGE_CODES = ["binary_frame", "empty_message", "message_too_long", "invalid_text", "rate_limited",
                     "bad_message", "handle_not_allowed", "muted", "not_joined"];
var NAME_CODES = ["bad_handle", "handle_taken", "handle_in_use", "sign_in_required"];

/* What a refusal says, in the reader's language, for each code the server sends
 * (docs/protocol.md#errors); ``text`` is the message it refused, when there is one. */
function refusal(frame, text) {
  var retry = duration(frame.retry_after);
  switch (frame.code) {
    case "empty_message":
      return gettext("The message is empty: type something to send.");
    case "message_too_long":
      return tooLong(text || "") || say(gettext("Too long: a message has at most %(limit)s characters."),
                                       {limit: number(limit("Message"))});
    case "invalid_text":
      return say(gettext("The message contains %(character)s, which cannot be sent: remove it and send again."),
                 {character: unsendable(text || "") || gettext("a control character")});
    case "rate_limited":
      return say(gettext("Too many messages at once: this one was not sent. Send it again in %(duration)s."),
                 {duration: retry});
    case "muted":
      return say(gettext("A moderator muted you here: this message was not sent. You can write again in %(duration)s."),
                 {duration: retry});
    case "not_joined":
      return gettext("Not sent: this connection is in no room any more. Join the room again, then send it.");
    case "binary_frame":
      return gettext("Not sent: the server takes chat messages as text only.");
    case "bad_message":
      return gettext("Not sent: the server did not understand this message.");
    case "handle_not_allowed":
      return gettext("Not sent: a message cannot choose who speaks; you speak as the name you joined with.");
    case "bad_action":
      return gettext("The server did not understand that moderator's action.");
    case "not_allowed":
      return gettext("Only staff can delete messages or mute names.");
    case "no_such_message":
      return gettext("That message is gone already: there is nothing to delete.");
    case "invalid_room":
      return say(gettext("“%(room)s” cannot be a room: a room name has 1 to %(limit)s characters, no “/”, no control characters and no spaces at either end. Choose another."),
                 {room: chat.room, limit: number(byId("room").maxLength)});
    case "bad_since":
      return gettext("The server could not resume this room where the page left it: join it again.");
    case "sign_in_required":
      return gettext("Guests cannot chat here: log in or sign up, then join.");
    case "bad_handle":
      if (chat.signedIn) return gettext("Your username cannot be a name in the chat: ask an administrator.");
      if (!chat.inRoom && chat.handle) {
        return say(gettext("“%(handle)s” cannot be a name: 1 to %(limit)s characters, at least one of them visible, and no control characters. Choose another."),
                   {handle: chat.handle, limit: number(byId("handle").maxLength)});
      }
      return gettext("That is not a name anyone can have here.");
    case "handle_taken":
      return say(gettext("“%(handle)s” is an account's name: log in to use it, or choose another name."),
                 {handle: chat.handle});
    case "handle_in_use":
      return say(gettext("Someone else in %(room)s is called “%(handle)s” now: choose another name."),
                 {room: chat.room, handle: chat.handle});
    default:  // a code newer than this page: the server's own words
      return String(frame.detail || frame.code);
  }
}

function showError(frame) {
  chat.lastError = {code: String(frame.code), detail: String(frame.detail || frame.code)};
  if (!chat.inRoom) return;  // a refused connection: said once, by refused()
  clearTimeout(chat.pendingTimer);
  if (MESSAGE_CODES.indexOf(frame.code) >= 0) {
    var text = chat.pending ? chat.pending.text : byId("message").value;
    chat.pending = null;
    sending(false);
    showSendError(refusal(frame, text));
  } else {
    note(refusal(frame), "error");
  }
}

/* The first character a message may not contain, named as the server names it ("U+0000"). */
function unsendable(text) {
  for (var index = 0; index < text.length; index++) {
    var code = text.charCodeAt(index);
    var surrogate = code >= 0xd800 && code <= 0xdfff;
    if (surrogate && code <= 0xdbff && index + 1 < text.length &&
        text.charCodeAt(index + 1) >= 0xdc00 && text.charCodeAt(index + 1) <= 0xdfff) {
      index++;  // a pair: one character
      continue;
    }
    if (surrogate || (code < 0x20 && code !== 9 && code !== 10 && code !== 13) || (code >= 0x7f && code <= 0x9f)) {
      return "U+" + ("000" + code.toString(16).toUpperCase()).slice(-4);
    }
  }
  return null;
}

/* Why the page will not send ``text`` as it is, or null: longer than the server takes. */
function tooLong(text) {
  var count = characters(text);
  if (count <= limit("Message")) return null;
  return say(gettext("%(count)s characters: at most %(limit)s. Shorten it, or send it in parts."),
             {count: number(count), limit: number(limit("Message"))});
}

/* Show or take away the staff controls on the messages shown (the members' are redrawn by showMembers). */
function setStaff(staff) {
  if (staff === chat.staff) return;
  chat.staff = staff;
  document.querySelectorAll(".mod").forEach(function (control) {
    control.remove();
  });
  if (!staff) return;
  byId("messages").querySelectorAll(".message[data-seq]").forEach(function (item) {
    item.querySelector(".meta").appendChild(deleteButton(Number(item.dataset.seq)));
  });
}

function showWelcome(frame) {
  var wasSignedIn = chat.signedIn;
  chat.inRoom = true;
  showCurrentRoom();
  chat.handle = String(frame.handle);
  chat.sender = typeof frame.sender === "string" ? frame.sender : null;
  chat.signedIn = frame.signed_in === true;
  setStaff(frame.staff === true);
  // A signed-in person's name is decided, and shown read-only; a guest's box keeps what they typed.
  var input = byId("handle");
  input.readOnly = chat.signedIn;
  if (chat.signedIn) input.value = chat.handle;
  byId("join-guest").hidden = chat.signedIn;
  if (wasSignedIn && !chat.signedIn) {
    input.value = "";
    showSignedOut(say(gettext("you were signed out before this page joined: you are %(handle)s, a guest"),
                      {handle: chat.handle}));
  }
  rememberRoom();
  chat.members = new Map();
  var signedIn = new Set((Array.isArray(frame.members_signed_in) ? frame.members_signed_in : []).map(String));
  (Array.isArray(frame.members) ? frame.members : []).forEach(function (handle) {
    countMember(String(handle), 1, signedIn.has(String(handle)));
  });
  countMember(chat.handle, 0, chat.signedIn);
  showMembers(Array.isArray(frame.members) ? frame.members.length : 0);
  if (!chat.welcomed) {
    note(say(chat.signedIn ? gettext("you are %(handle)s in %(room)s, signed in") : gettext("you are %(handle)s in %(room)s"),
             {handle: chat.handle, room: chat.room}));
  }
  chat.welcomed = true;
  chat.lost = false;
  showIdentity();
}

/* The room's history: on joining, its last messages; on coming back (the frame has
 * "since"), what the page missed, after a mark saying how much. A since above the room's
 * latest number means the server lost the room the page shows (its numbers start again):
 * the page then shows the room as a join would, instead of what it had. */
function showHistory(frame) {
  var messages = (Array.isArray(frame.messages) ? frame.messages : []).filter(function (message) {
    return message !== null && typeof message === "object";
  });
  if (typeof frame.since === "number") {
    var lost = frame.complete === false && typeof frame.upto === "number" && frame.since > frame.upto;
    if (lost) forgetShown();
    var missed = messages.filter(function (message) {
      return !(typeof message.seq === "number" && chat.seqs.has(message.seq));
    }).length;
    var complete = frame.complete !== false;
    note(resumeMark(missed, complete, lost), complete ? "resumed" : "resumed incomplete");
  }
  messages.forEach(function (message) {
    showMessage(message, true);
  });
  chat.resumable = true;
  chat.historyShown = true;
  var early = chat.early;
  chat.early = [];
  early.forEach(function (message) {
    showMessage(message, false);
  });
  if (chat.pending && chat.pending.lost) chat.pending = null;  // not in what the room had: it was not sent
}

function resumeMark(missed, complete, lost) {
  if (lost) return gettext("reconnected — the server no longer has the messages shown before; this is the room as it is now");
  if (!complete) {
    return say(ngettext("reconnected — more than %(count)s message was missed; the oldest are not shown",
                        "reconnected — more than %(count)s messages were missed; the oldest are not shown", missed),
               {count: number(missed)});
  }
  if (missed === 0) return gettext("reconnected — nothing missed");
  return say(ngettext("reconnected — %(count)s message you missed", "reconnected — %(count)s messages you missed", missed),
             {count: number(missed)});
}

/* Empty the message list, and forget which of the room's messages it showed. */
function forgetShown() {
  byId("messages").replaceChildren();
  chat.seqs = new Set();
  chat.lastSeq = 0;
}

function showPresence(frame) {
  var handle = String(frame.handle);
  if (frame.event === "join") {
    countMember(handle, 1, frame.signed_in === true);
    note(say(gettext("%(handle)s joined"), {handle: handle}), "presence");
  } else if (frame.event === "leave") {
    countMember(handle, -1);
    note(say(gettext("%(handle)s left"), {handle: handle}), "presence");
  } else {
    return;
  }
  showMembers(frame.members);
}

/* Count a socket in (change 1) or out (-1) under a handle; ``account``, when given, is
 * what the server said of it (a join event's signed_in, the welcome's members_signed_in). */
function countMember(handle, change, account) {
  var member = chat.members.get(handle) || {times: 0, account: false};
  member.times += change;
  if (account !== undefined) member.account = account;
  if (member.times > 0) chat.members.set(handle, member);
  else chat.members.delete(handle);
}

/* The presence bar: how many are here and their handles (one handle used twice shows ×2). */
function showMembers(count) {
  var list = byId("members");
  list.replaceChildren();
  Array.from(chat.members.keys()).sort().forEach(function (handle) {
    var member = chat.members.get(handle);
    var item = element("li", handle === chat.handle ? "member own" : "member");
    item.appendChild(element("span", "name", handle));
    if (member.account) item.appendChild(accountMark());
    if (member.times > 1) item.appendChild(element("span", "times", " ×" + member.times));
    if (chat.staff && handle !== chat.handle) item.appendChild(muteButton(handle));
    list.appendChild(item);
  });
  byId("member-count").textContent = typeof count === "number" ? number(count) : "";
  byId("presence").hidden = false;
}

/* Show a frame; the frame, or null for one that is not a JSON object. */
function onFrame(event) {
  var frame;
  try {
    frame = JSON.parse(event.data);
  } catch (notJson) {
    return null;
  }
  if (frame === null || typeof frame !== "object") return null;
  if (frame.type === "message") {
    roomMessage(frame);
  } else if (frame.type === "welcome") {
    showWelcome(frame);
  } else if (frame.type === "history") {
    showHistory(frame);
  } else if (frame.type === "presence") {
    showPresence(frame);
  } else if (frame.type === "deleted") {
    showDeleted(frame);
  } else if (frame.type === "muted") {
    showMuted(frame);
  } else if (frame.type === "error") {
    showError(frame);
  }
  // Frame types this page does not know are for later versions of it.
  return frame;
}

function connect() {
  var query = new URLSearchParams();
  if (chat.handle && !chat.signedIn) query.set("handle", chat.handle);
  if (chat.resumable) query.set("since", String(chat.lastSeq));  // back in the room: what came after
  var search = String(query);
  var path = "/" + encodeURIComponent(chat.room) + "/" + (search ? "?" + search : "");
  var socket = new WebSocket(socketUrl(path));
  var openedAt = null;
  chat.socket = socket;
  chat.lastError = null;
  chat.inRoom = false;
  chat.historyShown = false;
  chat.early = [];
  setStatus(chat.lost ? "reconnecting" : "connecting", "", [chat.lost ? gettext("reconnecting") : gettext("connecting")]);
  socket.onopen = function () {
    if (socket === chat.socket) openedAt = Date.now();
  };
  socket.onmessage = function (event) {
    if (socket !== chat.socket) return;
    var frame = onFrame(event);
    // An error before the welcome is the server refusing this socket. The close 4400 that follows
    // can reach the page as 1006: daphne 1.4 (autobahn) cuts a connection whose browser has not
    // answered its close within 1 s, as a busy machine's may not.
    if (frame && frame.type === "error" && !chat.inRoom) refused(socket);
  };
  socket.onclose = function (event) {
    if (socket !== chat.socket) return;
    if (event.code === CLOSE_REFUSED) {
      refused(socket);
      return;
    }
    chat.socket = null;
    notSent(event.code);
    if (event.code === CLOSE_SIGNED_OUT) {
      signedOut();
      return;
    }
    if (!chat.lost) note(closeNote(event.code));
    chat.lost = true;
    byId("presence").hidden = true;
    // Only a connection that lasted resets the backoff: a server that accepts and
    // drops at once must not be hammered every RETRY_FIRST_MS.
    if (openedAt !== null && Date.now() - openedAt > RETRY_MAX_MS) chat.retries = 0;
    var delay = Math.min(RETRY_FIRST_MS * Math.pow(2, chat.retries), RETRY_MAX_MS);
    chat.retries += 1;
    setStatus("reconnecting", say(gettext("next attempt in %(duration)s"), {duration: duration(delay / 1000)}),
              [gettext("reconnecting")]);
    chat.timer = setTimeout(connect, delay);
  };
}

/* The server refused ``socket``, by its error frame or its close 4400, whichever came first: the page
 * lets go of the socket, so the other changes nothing and nothing retries it, says why beside the join
 * form, once, and leaves the room it asked for. */
function refused(socket) {
  chat.socket = null;
  socket.close();
  notSent(CLOSE_REFUSED);
  var code = chat.lastError && chat.lastError.code;
  var why = chat.lastError ? refusal(chat.lastError) :
    gettext("The server refused this room or name: choose another.");
  setStatus("refused", why, [gettext("refused")]);
  showJoinError(why + (code === "sign_in_required" ? "" : " " + gettext("The page will not retry by itself.")));
  forgetCurrentRoom();
  byId(NAME_CODES.indexOf(code) >= 0 && !chat.signedIn ? "handle" : "room").focus();
}

/* What the list says when the connection closed: why, when the server said so. */
function closeNote(code) {
  if (code === 1008) return gettext("the server closed the connection: too many messages, too fast — reconnecting");
  if (code === 1009) return gettext("the server closed the connection: a message was too large — reconnecting");
  if (code === 1013) return gettext("the server is overloaded and closed the connection — reconnecting");
  return gettext("connection lost, reconnecting");
}

/* The connection closed with a message pending: it stays in the box, and why is said beside it.
 * A resume may still show the room had it (showHistory). */
function notSent(code) {
  if (!chat.pending) return;
  clearTimeout(chat.pendingTimer);
  chat.pending.lost = true;
  sending(false);
  var why;
  if (code === 1009) why = gettext("Not sent: the server closed the connection because this message was too large. Shorten it, then send it again.");
  else if (code === 1008) why = gettext("Not sent: the server closed the connection because messages came too fast. Send it again once reconnected.");
  else if (code === 1013) why = gettext("Not sent: the server was overloaded and closed the connection. Send it again once reconnected.");
  else if (code === CLOSE_REFUSED || code === CLOSE_SIGNED_OUT) why = gettext("Not sent: the page is in no room now. Join one, then send it.");
  else why = gettext("Not sent: the connection was lost. It is still here: send it again once reconnected.");
  showSendError(why);
}

function leave() {
  clearTimeout(chat.timer);
  if (chat.socket) {
    var socket = chat.socket;
    chat.socket = null;
    socket.close();
  }
}

/* The person was signed out (4401: here, in another tab, or by a new password): the page
 * stays out of the room until Join, which joins as a guest. */
function signedOut() {
  if (!chat.signedIn && byId("account").dataset.signedIn === "0") return;  // said already
  leave();
  chat.signedIn = false;
  setStaff(false);
  var input = byId("handle");
  input.readOnly = false;
  input.value = "";
  byId("join-guest").hidden = false;
  byId("presence").hidden = true;
  setStatus("signed-out", gettext("Join to go on as a guest, or log in again"), [gettext("signed out")]);
  showSignedOut(gettext("you were signed out (here, in another tab, or by a new password). Pick a name and Join, or Join as a guest, to go on as a guest; or log in again."));
}

/* The account bar becomes a guest's, and a note says why. */
function showSignedOut(why) {
  var bar = byId("account");
  var logIn = element("a", "", gettext("Log in"));
  var signUp = element("a", "", gettext("Sign up"));
  logIn.href = bar.dataset.login;
  signUp.href = bar.dataset.signup;
  bar.dataset.signedIn = "0";
  bar.replaceChildren(element("span", "", gettext("guest")), " · ", logIn, " · ", signUp);
  linkAccountPagesToRoom(chat.room);
  note(why, "alert");
}

/* Log out without leaving the page: the server then closes every socket of the user
 * with 4401, this page's among them, and signedOut says so. */
function logOut(event) {
  event.preventDefault();
  var form = event.currentTarget;
  fetch(form.action, {method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin"})
    .then(function (response) {
      if (!response.ok) throw new Error(say(gettext("the server answered %(status)s"), {status: response.status}));
      if (!chat.socket) signedOut();  // no socket for the server to close
    })
    .catch(function (failed) {
      note(say(gettext("not logged out: %(reason)s"), {reason: failed.message}), "error");
    });
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

/* Keep the room and the name a guest chose in the page URL (and the name for next time).
 * Not a name the server gave: the next visit asks again. Nor a signed-in person's: it is
 * their account's, and a guest after them must not inherit it. */
function rememberRoom() {
  var params = {room: chat.room};
  if (chat.chosen && !chat.signedIn) {
    params.handle = chat.handle;
    rememberHandle(chat.handle);
  }
  history.replaceState(null, "", "/?" + new URLSearchParams(params));
  linkAccountPagesToRoom(chat.room);
  document.querySelectorAll(".languages input[name=next]").forEach(function (next) {
    next.value = location.pathname + location.search;  // the language switch comes back here
  });
}

/* Log in and Sign up bring the person back to this room. */
function linkAccountPagesToRoom(room) {
  if (!room) return;
  byId("account").querySelectorAll("a").forEach(function (link) {
    link.search = "?" + new URLSearchParams({next: "/?" + new URLSearchParams({room: room})});
  });
}

/* A room link opened by a guest with no name yet: the join form, the room filled in, asks for one. */
function invite(room) {
  byId("room").value = room;
  var item = element("li", "note invite");
  item.append.apply(item, interpolate(
    gettext("Choose a name to join %(room)s, then Join; or join as a guest, and the room will give you one."),
    {room: "\u0000"}, true).split("\u0000").reduce(function (parts, part, index) {
      return index ? parts.concat([element("span", "name", room), part]) : [part];
    }, []));
  append(item, true);
  linkAccountPagesToRoom(room.trim() || "lobby");
  byId("handle").focus();
}

function join(room, handle) {
  if (room.trim() === NOTE_ECHO_ROOM) {
    showJoinError(say(gettext("%(room)s is the study note's echo (its test page, /seed/), not a room: pick another room"),
                      {room: NOTE_ECHO_ROOM}));
    byId("room").focus();
    return;
  }
  showJoinError(null);
  leave();
  chat.room = room.trim() || "lobby";
  clearTimeout(chat.pendingTimer);
  chat.pending = null;  // a message for the room left behind, unsent: it stays in the box
  // A guest's chosen name, or none: the server gives one (guest-...), and the welcome frame says which.
  chat.chosen = chat.signedIn ? "" : handle.trim();
  chat.handle = chat.chosen;
  chat.retries = 0;
  chat.lost = false;
  chat.welcomed = false;
  chat.seqs = new Set();
  chat.lastSeq = 0;
  chat.resumable = false;
  chat.members = new Map();
  byId("room").value = chat.room;
  byId("messages").replaceChildren();
  byId("presence").hidden = true;
  connect();
  byId("message").focus();
}

/* The room the server welcomed the page into: its name in the header, its link, the page URL. */
function showCurrentRoom() {
  byId("room-name").textContent = chat.room;
  document.title = chat.room + " · " + gettext("channels_example chat");
  var share = byId("share");
  share.href = roomLink(chat.room);
  share.title = say(gettext("Share this room: %(link)s"), {link: location.origin + "/?room=" + chat.room});
  share.hidden = false;
  rememberRoom();
}

/* A room the server refused is nobody's current room: the header, the link and the URL forget it. */
function forgetCurrentRoom() {
  byId("room-name").textContent = "";
  document.title = gettext("channels_example chat");
  byId("share").hidden = true;
  byId("presence").hidden = true;
  history.replaceState(null, "", "/");
}

function showJoinError(text) {
  var shown = byId("join-error");
  shown.textContent = text || "";
  shown.hidden = !text;
}

/* Why the message in the box was not sent (null: nothing to say); the text stays in the box. */
function showSendError(text) {
  var shown = byId("send-error");
  shown.textContent = text || "";
  shown.hidden = !text;
  byId("message").setAttribute("aria-invalid", text ? "true" : "false");
}

function sending(busy) {
  var form = byId("send");
  if (busy) form.dataset.state = "sending";
  else delete form.dataset.state;
}

/* The frame for a message: always JSON, so a message that happens to look like JSON is still
 * taken as text. (The server will echo an "id" field once it takes one: it goes here.) */
function outgoing(pending) {
  return {message: pending.text};
}

/* Whether a room's message is the one this page is waiting for: by the id the server echoes,
 * once it does, else by its sender and text. */
function isPending(frame) {
  var pending = chat.pending;
  if (!pending) return false;
  if (typeof frame.id === "string") return frame.id === pending.id;
  return chat.sender !== null && frame.sender === chat.sender && frame.message === pending.text;
}

/* The server took the pending message: the box empties, unless the person changed it since. */
function taken() {
  var input = byId("message");
  if (input.value === chat.pending.text) input.value = "";
  clearTimeout(chat.pendingTimer);
  chat.pending = null;
  sending(false);
  showSendError(null);
  keepDraft();
}

function send(event) {
  event.preventDefault();
  var input = byId("message");
  input.focus();
  var text = input.value;
  if (text === "") return;
  if (chat.pending && !chat.pending.lost) {
    showSendError(gettext("Still sending the last message: this one goes once it appears above."));
    return;
  }
  var why = tooLong(text);
  if (why === null && !(chat.socket && chat.socket.readyState === WebSocket.OPEN && chat.inRoom)) {
    why = chat.room ? gettext("Not sent: not connected. It is still here: send it again once reconnected.")
                    : gettext("Not sent: join a room first.");
  }
  if (why !== null) {
    showSendError(why);
    return;
  }
  chat.pending = {id: "m" + chat.nextId++, text: text, lost: false};
  sending(true);
  showSendError(null);
  chat.socket.send(JSON.stringify(outgoing(chat.pending)));
  chat.pendingTimer = setTimeout(unanswered, PENDING_MS);
}

/* No frame for the pending message and no refusal: a frame daphne held while Redis was down
 * too long is dropped without a word (docs/protocol.md). The text stays; the person decides. */
function unanswered() {
  if (!chat.pending || chat.pending.lost) return;
  chat.pending = null;
  sending(false);
  showSendError(say(gettext("No word from the server about this message for %(duration)s: it may not have been sent. It is still here: send it again."),
                    {duration: duration(PENDING_MS / 1000)}));
}

/* What is typed, kept for this tab: a reload (the language switch) puts it back. */
function keepDraft() {
  try {
    sessionStorage.setItem("draft", byId("message").value);
  } catch (unavailable) {
    // Private windows may refuse storage: the box still holds it.
  }
}

function keptDraft() {
  try {
    return sessionStorage.getItem("draft") || "";
  } catch (unavailable) {
    return "";
  }
}

/* A paste longer than the box's maxlength is kept whole (the browser would cut it silently),
 * and the page says how much too long it is. */
function pasteWhole(event) {
  var input = event.currentTarget;
  var pasted = event.clipboardData ? event.clipboardData.getData("text/plain").replace(/[\r\n]+/g, " ") : "";
  var start = input.selectionStart, end = input.selectionEnd;
  var whole = input.value.slice(0, start) + pasted + input.value.slice(end);
  if (!pasted || whole.length <= input.maxLength) return;
  event.preventDefault();
  input.value = whole;
  input.setSelectionRange(start + pasted.length, start + pasted.length);
  typed();
}

/* After each change to the box: keep it, and say at once when it became too long (or no longer is). */
function typed() {
  keepDraft();
  var why = tooLong(byId("message").value);
  if (why) showSendError(why);
  else if (!chat.pending && byId("message").getAttribute("aria-invalid") === "true") showSendError(null);
}

/* The study note's test, unchanged in flow: open /channels_example/ (the note's echo,
 * not a room), send "hello world", and show the reply (in the page rather than in alert()). */
function WebSocketTest() {
  var output = byId("seed-output");
  output.textContent = gettext("connecting to /channels_example/ …");
  var socket = new WebSocket(socketUrl("/channels_example/"));
  socket.onopen = function () {
    socket.send("hello world");
  };
  socket.onmessage = function (event) {
    output.textContent = event.data;
    socket.close();
  };
  socket.onerror = function () {
    output.textContent = gettext("the WebSocket failed");
  };
}

document.addEventListener("DOMContentLoaded", function () {
  var account = byId("account");
  chat.signedIn = account.dataset.signedIn === "1";
  byId("join").addEventListener("submit", function (event) {
    event.preventDefault();
    // Join needs a name (the box is required); Join as a guest lets the server give one.
    var asGuest = event.submitter === byId("join-guest");
    if (asGuest) byId("handle").value = "";
    join(byId("room").value, asGuest ? "" : byId("handle").value);
  });
  byId("send").addEventListener("submit", send);
  byId("message").addEventListener("input", typed);
  byId("message").addEventListener("paste", pasteWhole);
  if (!byId("message").value) byId("message").value = keptDraft();
  if (byId("logout")) byId("logout").addEventListener("submit", logOut);
  byId("seed-test").addEventListener("click", function (event) {
    event.preventDefault();
    WebSocketTest();
  });
  var params = new URLSearchParams(location.search);
  var handle = chat.signedIn ? account.dataset.username : params.get("handle") || rememberedHandle();
  byId("handle").value = handle;
  byId("join-guest").hidden = chat.signedIn;
  if (params.has("room") && (chat.signedIn || handle)) {
    join(params.get("room"), handle);
  } else if (params.has("room")) {
    invite(params.get("room"));
  } else {
    byId(handle ? "room" : "handle").focus();
  }
});
