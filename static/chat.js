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
 * A dropped connection is retried with capped exponential backoff, keeping the handle
 * and asking the room for what the page missed (?since=, the last seq it showed): a mark
 * in the list says where it came back and how much it missed, and no message (known by
 * its seq) is shown twice. A refused connection (an error frame before the welcome, or
 * close 4400) is not retried, since the same URL would be refused again; nor is one closed
 * because its user signed out (4401, from this page's Log out or anywhere else): the page
 * says so and rejoins only when asked, as a guest. Every piece of text reaches the DOM
 * through textContent.
 */
"use strict";

var CLOSE_REFUSED = 4400;
var CLOSE_SIGNED_OUT = 4401;
var RETRY_FIRST_MS = 500;
var RETRY_MAX_MS = 10000;
var FOLLOW_SLACK_PX = 48;
var MUTE_SECONDS = 300;
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
var chat = {
  room: null, chosen: "", handle: "", socket: null, retries: 0, lost: false, timer: null, lastError: null,
  welcomed: false, seqs: new Set(), lastSeq: 0, resumable: false, members: new Map(),
  sender: null, signedIn: false, staff: false
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
  setStatus("connected", chat.signedIn ? "signed in: you speak as your username" : "a guest: no account",
            [element("span", "name", chat.handle), " in ", element("span", "name", chat.room),
             chat.signedIn ? " (signed in)" : " (guest)"]);
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
  mark.title = "signed in: an account";
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
  var button = element("button", "mod delete", "delete");
  button.type = "button";
  button.title = "Delete this message for everyone (staff)";
  button.addEventListener("click", function () {
    sendFrame({action: "delete", seq: seq}, "not deleted: not connected");
  });
  return button;
}

function muteButton(handle) {
  var button = element("button", "mod mute", "mute " + duration(MUTE_SECONDS));
  button.type = "button";
  button.title = "Refuse this name's messages here for " + duration(MUTE_SECONDS) + " (staff)";
  button.addEventListener("click", function () {
    sendFrame({action: "mute", target: handle, seconds: MUTE_SECONDS}, "not muted: not connected");
  });
  return button;
}

function duration(seconds) {
  var whole = Math.max(0, Math.ceil(Number(seconds) || 0));
  if (whole < 120) return whole + " s";
  if (whole < 7200) return Math.round(whole / 60) + " min";
  return Math.round(whole / 3600) + " h";
}

function showMessage(frame, fromHistory) {
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
  meta.appendChild(who);
  if (typeof frame.ts === "number") {
    var sent = new Date(frame.ts);
    var time = element("time", "", sent.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
    time.dateTime = sent.toISOString();
    time.title = sent.toLocaleString();
    meta.appendChild(time);
  }
  if (typeof frame.seq === "number") {
    item.dataset.seq = String(frame.seq);
    if (chat.staff) meta.appendChild(deleteButton(frame.seq));
  }
  item.appendChild(meta);
  item.appendChild(element("p", "text", String(frame.message)));
  append(item, own || fromHistory);
}

/* A moderator deleted message seq: it leaves the page, and a note says who removed whose. */
function showDeleted(frame) {
  var item = Array.from(byId("messages").querySelectorAll(".message")).find(function (message) {
    return message.dataset.seq === String(frame.seq);
  });
  var whose = "";
  if (item) {
    whose = " from " + item.querySelector(".handle").textContent;
    item.remove();
  }
  note(String(frame.by) + " deleted a message" + whose, "moderation");
}

function showMuted(frame) {
  var handle = String(frame.handle);
  note(String(frame.by) + " muted " + (handle === chat.handle ? "you" : handle) + " here for " +
       duration(frame.seconds), "moderation");
}

function showError(frame) {
  chat.lastError = {code: String(frame.code), detail: String(frame.detail || frame.code)};
  var text = chat.lastError.detail;
  if (frame.code === "muted" && typeof frame.retry_after === "number") {
    text = "not sent: a moderator muted you here, " + duration(frame.retry_after) + " to go";
  }
  note(text, "error");
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
    showSignedOut("before this page joined: you are " + chat.handle + ", a guest");
  }
  rememberRoom();
  chat.members = new Map();
  var signedIn = new Set((Array.isArray(frame.members_signed_in) ? frame.members_signed_in : []).map(String));
  (Array.isArray(frame.members) ? frame.members : []).forEach(function (handle) {
    countMember(String(handle), 1, signedIn.has(String(handle)));
  });
  countMember(chat.handle, 0, chat.signedIn);
  showMembers(Array.isArray(frame.members) ? frame.members.length : 0);
  if (!chat.welcomed) note("you are " + chat.handle + " in " + chat.room + (chat.signedIn ? ", signed in" : ""));
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
}

function resumeMark(missed, complete, lost) {
  if (lost) return "reconnected — the server no longer has the messages shown before; this is the room as it is now";
  if (!complete) return "reconnected — more than " + missed + " messages were missed; the oldest are not shown";
  if (missed === 0) return "reconnected — nothing missed";
  return "reconnected — " + missed + (missed === 1 ? " message" : " messages") + " you missed";
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
    note(handle + " joined", "presence");
  } else if (frame.event === "leave") {
    countMember(handle, -1);
    note(handle + " left", "presence");
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
  byId("member-count").textContent = typeof count === "number" ? String(count) : "";
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
    showMessage(frame, false);
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
  var openedAt = null, welcomed = false;
  chat.socket = socket;
  chat.lastError = null;
  setStatus(chat.lost ? "reconnecting" : "connecting");
  socket.onopen = function () {
    if (socket === chat.socket) openedAt = Date.now();
  };
  socket.onmessage = function (event) {
    if (socket !== chat.socket) return;
    var frame = onFrame(event);
    if (frame && frame.type === "welcome") welcomed = true;
    // An error before the welcome is the server refusing this socket. The close 4400 that follows
    // can reach the page as 1006: daphne 1.4 (autobahn) cuts a connection whose browser has not
    // answered its close within 1 s, as a busy machine's may not.
    if (frame && frame.type === "error" && !welcomed) refused(socket);
  };
  socket.onclose = function (event) {
    if (socket !== chat.socket) return;
    chat.socket = null;
    if (event.code === CLOSE_SIGNED_OUT) {
      signedOut();
      return;
    }
    if (event.code === CLOSE_REFUSED) {
      refused(socket);
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

/* The server refused ``socket``, by its error frame or its close 4400, whichever came first: the page
 * lets go of the socket, so the other changes nothing and nothing retries it, and says so once. */
function refused(socket) {
  chat.socket = null;
  socket.close();
  setStatus("refused", chat.lastError && chat.lastError.detail);
  if (chat.lastError && chat.lastError.code === "sign_in_required") {
    note("log in or sign up to chat here: the page will not retry as a guest");
  } else {
    note("the server refused this room or handle, so the page will not retry: pick another above");
  }
  byId("room").focus();
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
  setStatus("signed-out", "Join to go on as a guest, or log in again", ["signed out"]);
  showSignedOut("(here, in another tab, or by a new password). Pick a name and Join, or Join as a guest, " +
                "to go on as a guest; or log in again.");
}

/* The account bar becomes a guest's, and a note says why. */
function showSignedOut(why) {
  var bar = byId("account");
  var logIn = element("a", "", "Log in");
  var signUp = element("a", "", "Sign up");
  logIn.href = bar.dataset.login;
  signUp.href = bar.dataset.signup;
  bar.dataset.signedIn = "0";
  bar.replaceChildren(element("span", "", "guest"), " · ", logIn, " · ", signUp);
  linkAccountPagesToRoom(chat.room);
  note("you were signed out " + why, "alert");
}

/* Log out without leaving the page: the server then closes every socket of the user
 * with 4401, this page's among them, and signedOut says so. */
function logOut(event) {
  event.preventDefault();
  var form = event.currentTarget;
  fetch(form.action, {method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin"})
    .then(function (response) {
      if (!response.ok) throw new Error("the server answered " + response.status);
      if (!chat.socket) signedOut();  // no socket for the server to close
    })
    .catch(function (failed) {
      note("not logged out: " + failed.message, "error");
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
  item.append("Choose a name to join ", element("span", "name", room),
              ", then Join; or join as a guest, and the room will give you one.");
  append(item, true);
  linkAccountPagesToRoom(room.trim() || "lobby");
  byId("handle").focus();
}

function join(room, handle) {
  if (room.trim() === NOTE_ECHO_ROOM) {
    note(NOTE_ECHO_ROOM + " is the study note's echo (its test page, /seed/), not a room: pick another room",
         "error");
    byId("room").focus();
    return;
  }
  leave();
  chat.room = room.trim() || "lobby";
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
  // Always JSON, so a message that happens to look like JSON is still taken as text.
  if (sendFrame({message: input.value}, "not sent: not connected (your message is still in the box)")) input.value = "";
}

/* The study note's test, unchanged in flow: open /channels_example/ (the note's echo,
 * not a room), send "hello world", and show the reply (in the page rather than in alert()). */
function WebSocketTest() {
  var output = byId("seed-output");
  output.textContent = "connecting to /channels_example/ …";
  var socket = new WebSocket(socketUrl("/channels_example/"));
  socket.onopen = function () {
    socket.send("hello world");
  };
  socket.onmessage = function (event) {
    output.textContent = event.data;
    socket.close();
  };
  socket.onerror = function () {
    output.textContent = "the WebSocket failed";
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
