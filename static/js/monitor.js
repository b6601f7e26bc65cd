/* The chairside tablet page.
   - Entries are sent with fetch. If the connection drops, or the session locked after inactivity, the
     entry is kept on this tablet and sent again later with the same client key (the server saves each
     key once), so nothing is lost and nothing is doubled.
   - The session chart is drawn with plotly.js from the figure the server built. */
(function () {
  "use strict";
  var QUEUE = "chairside.queue.v1";
  var note = function () { return document.getElementById("offline-queue"); };

  function load() { try { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); } catch (e) { return []; } }
  function store(q) { localStorage.setItem(QUEUE, JSON.stringify(q)); showQueue(); }

  function showQueue(message) {
    var el = note(); if (!el) return;
    var q = load();
    if (!q.length && !message) { el.hidden = true; return; }
    el.hidden = false;
    el.textContent = message || (q.length + " entr" + (q.length === 1 ? "y is" : "ies are") +
      " kept on this tablet and will be sent when the connection is back.");
  }

  function fieldsOf(form, submitter) {
    var data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    var out = [];
    data.forEach(function (v, k) { out.push([k, String(v)]); });
    return out;
  }

  function post(url, fields) {
    var body = new URLSearchParams();
    var token = window.chairside ? window.chairside.csrfToken : "";
    fields.forEach(function (kv) { body.append(kv[0], kv[0] === "csrf_token" ? token : kv[1]); });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": token }
    });
  }

  function keep(url, fields, why, takenAt) {
    // A kept entry keeps the time it was taken, not the time the connection came back.
    fields = fields.map(function (kv) {
      return (kv[0] === "measured_at" && !kv[1]) ? ["measured_at", new Date(takenAt || Date.now()).toISOString()] : kv;
    });
    var q = load();
    var key = (fields.filter(function (kv) { return kv[0] === "client_key"; })[0] || [])[1];
    if (!q.some(function (item) { return item.key === key; })) q.push({ url: url, fields: fields, key: key, at: Date.now() });
    store(q);
    showQueue(why);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-entry]") || form.dataset.native === "1") return;
    event.preventDefault();
    event.stopImmediatePropagation();
    var submitter = event.submitter;
    var takenAt = Date.now();
    var fields = fieldsOf(form, submitter);
    var url = form.action;
    form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    post(url, fields).then(function (r) {
      if (r.ok) { window.location.reload(); return; }
      if (r.status === 401) {
        keep(url, fields, "Your session locked after inactivity. Sign in again; the entry is kept on this tablet and will be sent.", takenAt);
        window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
        return;
      }
      // The server refused it (nothing was saved): show its answer with the error next to the field.
      if (submitter && submitter.name) {
        var h = document.createElement("input"); h.type = "hidden"; h.name = submitter.name; h.value = submitter.value;
        form.appendChild(h);
      }
      form.dataset.native = "1";
      form.submit();
    }).catch(function () {
      keep(url, fields, null, takenAt);
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      form.reset();
    });
  }, true);

  var flushing = false;
  function flush() {
    var q = load();
    if (!q.length || flushing) { showQueue(); return; }
    flushing = true;
    var item = q[0];
    post(item.url, item.fields).then(function (r) {
      flushing = false;
      if (r.status === 401) { showQueue("Sign in again to send the kept entries."); return; }
      var rest = load().filter(function (x) { return x.key !== item.key; });
      store(rest);  // saved, or refused by the server for good (it says why on the page)
      if (!r.ok) {
        r.json().then(function (body) { showQueue("A kept entry was not accepted: " + (body.message || r.status)); });
        return;
      }
      if (rest.length) flush(); else window.location.reload();
    }).catch(function () { flushing = false; showQueue(); });
  }

  function drawChart() {
    var data = document.getElementById("session-chart-data");
    var target = document.getElementById("session-chart");
    if (!data || !target || !window.Plotly) return;
    var fig = JSON.parse(data.textContent);
    if (document.documentElement.dataset.theme === "dark") {
      fig.layout.font = Object.assign({}, fig.layout.font, { color: "#e8eef4" });
    }
    // No toolbar: its buttons are too small to tap, and one of them would offer to upload the chart.
    window.Plotly.newPlot(target, fig.data, fig.layout,
      { responsive: true, displaylogo: false, displayModeBar: false, showSendToCloud: false });
  }

  window.addEventListener("online", flush);
  document.addEventListener("DOMContentLoaded", function () {
    drawChart();
    flush();
    setInterval(flush, 15000);
  });
})();
