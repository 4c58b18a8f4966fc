/*
 * The status page: the deployment's figures from /status.json, every 2 s, as cards, tables
 * and a chart of messages per second (an SVG drawn here: no library, no CDN).
 * Text goes into the page as text.
 */
"use strict";

var POLL_MS = 2000;

function byId(id) { return document.getElementById(id); }

function cell(row, text) {
  var td = document.createElement("td");
  td.textContent = String(text);
  row.appendChild(td);
}

function fill(body, rows) {
  var tbody = byId(body);
  tbody.replaceChildren();
  rows.forEach(function (values) {
    var row = document.createElement("tr");
    values.forEach(function (value) { cell(row, value); });
    tbody.appendChild(row);
  });
}

/* Messages per second from the samples ([time, total messages] once a second). */
function rates(samples) {
  var out = [];
  for (var i = 1; i < samples.length; i++) {
    var seconds = samples[i][0] - samples[i - 1][0];
    if (seconds > 0) out.push(Math.max(0, (samples[i][1] - samples[i - 1][1]) / seconds));
  }
  return out;
}

function chart(values) {
  var svg = byId("chart"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (!values.length) return;
  var top = Math.max.apply(null, values.concat([1])), step = 600 / Math.max(values.length - 1, 1);
  var points = values.map(function (value, i) {
    return (i * step).toFixed(1) + "," + (115 - value / top * 110).toFixed(1);
  });
  var line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", "line");
  svg.appendChild(line);
  var label = document.createElementNS(ns, "text");
  label.setAttribute("x", "4");
  label.setAttribute("y", "12");
  label.setAttribute("class", "label");
  label.textContent = interpolate(gettext("max %(rate)s/s"), {rate: top.toFixed(1)}, true);
  svg.appendChild(label);
}

/* The clock stores and sweeps: the chat goes on without it, but nothing reaches the database. */
function showClock(figures) {
  var seconds = figures.clock_seconds, card = byId("clock-card"), text;
  byId("store-queue").textContent = String(figures.store_queue);
  if (seconds === null) {
    text = gettext("no clock has ticked yet: messages are not stored (run manage.py runclock)");
  } else if (seconds > figures.clock_silent_seconds) {
    text = interpolate(gettext("no clock for %(seconds)s s: messages are not stored (run manage.py runclock)"),
                       {seconds: Math.round(seconds)}, true);
  } else {
    text = gettext("the clock ticks");
  }
  card.dataset.state = seconds !== null && seconds <= figures.clock_silent_seconds ? "ok" : "warning";
  byId("clock").textContent = text;
}

function show(figures) {
  var connections = Object.keys(figures.connections).reduce(function (sum, name) {
    return sum + figures.connections[name];
  }, 0);
  var perSecond = rates(figures.samples);
  byId("connections").textContent = String(connections);
  byId("connections-label").textContent = ngettext("connection", "connections", connections);
  byId("rooms").textContent = String(figures.rooms);
  byId("rooms-label").textContent = ngettext("room with members", "rooms with members", figures.rooms);
  byId("rate").textContent = perSecond.length ? perSecond[perSecond.length - 1].toFixed(1) : "0";
  byId("workers").textContent = String(figures.workers);
  byId("workers-label").textContent = ngettext("worker", "workers", figures.workers);
  byId("daphnes").textContent = String(figures.daphnes);
  byId("daphnes-label").textContent = ngettext("daphne", "daphnes", figures.daphnes);
  byId("dropped").textContent = String(figures.dropped);
  showClock(figures);
  chart(perSecond);
  fill("busiest", figures.busiest.map(function (room) {
    return [room.room, room.members, room.handles.join(", ")];
  }));
  fill("queues", Object.keys(figures.queues).sort().map(function (name) { return [name, figures.queues[name]]; }));
  fill("daphne-list", Object.keys(figures.connections).sort().map(function (name) {
    return [name, figures.connections[name]];
  }));
  var updated = byId("updated");
  updated.dataset.state = "connected";
  updated.textContent = interpolate(gettext("updated %(time)s"),
                                    {time: new Date().toLocaleTimeString(document.documentElement.lang)}, true);
}

function poll() {
  fetch("/status.json", {cache: "no-store", credentials: "same-origin"}).then(function (response) {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }).then(show).catch(function (error) {
    var updated = byId("updated");
    updated.dataset.state = "error";
    updated.textContent = interpolate(gettext("cannot read the figures: %(reason)s"), {reason: error.message}, true);
  }).finally(function () {
    setTimeout(poll, POLL_MS);
  });
}

document.addEventListener("DOMContentLoaded", poll);
