// The hotelimages console page: polls api/status, draws uPlot charts and tables, runs the controls.
// With window.SNAPSHOT set (status --html), it draws that data once and offers no controls.
"use strict";

(function () {
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf"];
  // Integer tick steps only: a count of hotels or photos has no fractions.
  const INT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 2.5e3, 5e3, 1e4, 2e4, 2.5e4, 5e4,
    1e5, 2e5, 2.5e5, 5e5, 1e6, 2e6, 2.5e6, 5e6, 1e7, 2e7, 5e7, 1e8, 2e8, 5e8, 1e9];

  const state = {range: "hour", charts: {}, zoomed: false, auth: null, data: null, timer: null, updates: 0};
  window.hotelConsole = state;
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------ formatting

  function int(n) { return n == null ? "-" : Math.round(n).toLocaleString("en-US"); }
  function fixed(n, d) { return n == null ? "-" : Number(n).toFixed(d); }
  function pct(r) { return r == null ? "-" : (100 * r).toFixed(1) + "%"; }
  function duration(s) {
    if (s == null) return "-";
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }
  function bytes(n) {
    if (n == null) return "-";
    for (const [unit, size] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]]) {
      if (n >= size) return (n / size).toFixed(1) + " " + unit;
    }
    return Math.round(n) + " B";
  }
  function utc(t) { return t == null ? "-" : new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }

  // ------------------------------------------------------------ charts

  function chart(id, lines, t) {
    const el = $(id);
    const names = Object.keys(lines);
    const key = names.join("\u0000");
    const data = [t].concat(names.map((n) => lines[n]));
    let c = state.charts[id];
    if (c && c.key !== key) { c.plot.destroy(); c = null; }
    if (!c) {
      const series = [{}].concat(names.map((n, i) => ({
        label: n, stroke: n === "fleet" ? "#000" : COLOURS[i % COLOURS.length], width: n === "fleet" ? 2 : 1.3,
        spanGaps: false, points: {show: false},
      })));
      const opts = {
        width: Math.max(el.clientWidth, 320), height: 230, series,
        scales: {x: {time: true}},
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        axes: [{}, {incrs: INT_INCRS, values: (u, splits) => splits.map((v) => int(v)), size: 60}],
        cursor: {drag: {x: true, y: false}},
        hooks: {setSelect: [(u) => { if (u.select.width > 0) state.zoomed = true; }]},
      };
      const plot = new uPlot(opts, data, el);
      plot.over.addEventListener("dblclick", () => { state.zoomed = false; });
      c = state.charts[id] = {plot, key};
    } else {
      c.plot.setData(data, !state.zoomed);
    }
    c.data = data;
  }

  // ------------------------------------------------------------ tables

  function row(tbody, cells) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
    return tr;
  }

  function button(label, onClick) {
    const b = document.createElement("button");
    b.textContent = label;
    b.className = "control";
    b.addEventListener("click", onClick);
    return b;
  }

  function fill(id, rows) {
    const tbody = $(id).querySelector("tbody");
    tbody.replaceChildren();
    rows(tbody);
  }

  // ------------------------------------------------------------ one update

  function render(d) {
    state.data = d;
    state.updates += 1;
    const controls = !window.SNAPSHOT && d.controls && d.controls.enabled;
    document.body.classList.toggle("nocontrols", !controls);
    $("controls-off").hidden = !!window.SNAPSHOT || controls;
    $("updated").textContent = (window.SNAPSHOT ? "snapshot at " : "updated ") + utc(d.at) +
      (d.redis ? "  (" + d.redis + ")" : "");
    $("percent").textContent = d.percent_done == null ? "-" : d.percent_done.toFixed(1) + "%";
    $("eta").textContent = d.eta_seconds === 0 ? "done" : duration(d.eta_seconds);
    $("done").textContent = int(d.done);
    $("pending").textContent = int(d.pending);
    $("inflight").textContent = int(d.leased);
    $("failed").textContent = int(d.failed_hotels);
    $("photos").textContent = fixed(d.images_per_s, 1);
    $("mbps").textContent = fixed(d.mb_per_s, 2);
    $("failrate").textContent = pct(d.failure_rate);
    const mem = d.redis_memory || {};
    $("redismem").textContent = bytes(mem.used_memory) +
      (mem.maxmemory ? " / " + bytes(mem.maxmemory) + " (" + Math.round(100 * mem.used_memory / mem.maxmemory) + "%)" : "");

    const alerts = $("alerts");
    alerts.hidden = !d.alerts.length;
    alerts.replaceChildren();
    if (d.alerts.length) {
      const h = document.createElement("strong");
      h.textContent = "Alerts";
      const ul = document.createElement("ul");
      for (const a of d.alerts) {
        const li = document.createElement("li");
        li.textContent = a.name + ": " + a.message;
        li.dataset.alert = a.name;
        ul.appendChild(li);
      }
      alerts.append(h, ul);
    }

    const ch = d.charts;
    chart("chart-images", ch.images, ch.t);
    chart("chart-mb", ch.mb, ch.t);
    chart("chart-queue", {done: ch.done, pending: ch.pending, "in flight": ch.in_flight}, ch.t);
    chart("chart-reasons", ch.reasons, ch.t);

    const live = d.nodes.filter((n) => n.state === "live");
    const gone = d.nodes.filter((n) => n.state !== "live");
    fill("live", (tb) => {
      for (const n of live) {
        row(tb, [n.node_id, n.owner, n.activity || "claiming", int(n.hotels), int(n.images), fixed(n.images_per_s, 1),
          fixed(n.mb_per_s, 2), pct(n.failure_rate), bytes(n.disk_free), int(n.in_flight), int(n.leases),
          n.last_seen == null ? "-" : duration(d.at - n.last_seen) + " ago"]);
      }
    });
    fill("gone", (tb) => {
      for (const n of gone) {
        const act = controls && n.leases ? button("Requeue leases", () => control(
          "Put the " + n.leases + " leases of " + n.owner + " back on the queue?", "api/requeue", {owner: n.owner},
          (r) => "Requeued " + r.requeued + " leases of " + n.owner)) : "";
        const tr = row(tb, [n.node_id, n.owner, n.state, n.last_seen == null ? "never" : duration(d.at - n.last_seen) + " ago",
          int(n.hotels), int(n.leases), duration(n.oldest_lease_age), act]);
        tr.className = "state-" + n.state;
      }
    });
    fill("reasons", (tb) => {
      for (const [field, count] of Object.entries(d.reasons)) {
        const cut = field.indexOf("/");
        row(tb, [field.slice(0, cut), field.slice(cut + 1), int(count)]);
      }
    });
    fill("failedby", (tb) => {
      for (const [reason, count] of Object.entries(d.failed_by_reason)) {
        const act = controls ? button("Retry", () => control(
          "Put the " + count + " failed hotels with reason " + reason + " back on the queue?", "api/retry",
          {reason}, (r) => "Moved " + r.moved + " hotels with reason " + reason + " back to the queue")) : "";
        const tr = row(tb, [reason, int(count), act]);
        tr.dataset.reason = reason;
      }
    });
  }

  async function load() {
    try {
      const r = await fetch("api/status?range=" + state.range, {cache: "no-store"});
      if (!r.ok) throw new Error(r.status + " " + (await r.text()));
      render(await r.json());
      $("updated").classList.remove("error");
    } catch (e) {
      $("updated").textContent = "cannot update: " + e.message;
      $("updated").classList.add("error");
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    const every = ((state.data && state.data.refresh) || 5) * 1000;
    state.timer = setTimeout(async () => { await load(); schedule(); }, every);
  }

  // ------------------------------------------------------------ controls

  function askPassword(why) {
    const dialog = $("login");
    $("login-why").textContent = why;
    $("login-error").textContent = state.loginError || "";
    $("login-password").value = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "ok" ? {user: $("login-user").value, password: $("login-password").value} : null);
      }, {once: true});
      dialog.returnValue = "";
      dialog.showModal();
      $("login-password").focus();
    });
  }

  async function authed(path, init, why) {
    for (;;) {
      if (!state.auth) {
        state.auth = await askPassword(why);
        if (!state.auth) return null;
      }
      const token = btoa(unescape(encodeURIComponent(state.auth.user + ":" + state.auth.password)));
      const r = await fetch(path, Object.assign({}, init, {headers: Object.assign({}, init.headers, {Authorization: "Basic " + token})}));
      if (r.status !== 401) { state.loginError = ""; return r; }
      state.auth = null;
      state.loginError = "Wrong password.";
    }
  }

  function say(text, error) {
    $("message").textContent = text;
    $("message").className = error ? "error" : "";
  }

  async function control(question, path, body, done) {
    if (!window.confirm(question)) return;
    const r = await authed(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)},
      question);
    if (!r) { say("Cancelled."); return; }
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) { say("Failed: " + (answer.error || r.status), true); return; }
    say(done(answer));
    await load();
  }

  async function exportCsv() {
    if (!window.confirm("Download every failed hotel with its reason as CSV?")) return;
    const r = await authed("api/failed.csv", {method: "GET"}, "Export the failed hotels");
    if (!r) { say("Cancelled."); return; }
    if (!r.ok) { say("Failed: " + r.status, true); return; }
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = "failed-hotels.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    say("Exported the failed hotels.");
  }

  // ------------------------------------------------------------ start

  if (window.SNAPSHOT) {
    document.body.classList.add("snapshot");
    $("ranges").hidden = true;
    render(window.SNAPSHOT);
    return;
  }
  for (const b of document.querySelectorAll("#ranges button")) {
    b.addEventListener("click", async () => {
      state.range = b.dataset.range;
      state.zoomed = false;
      for (const other of document.querySelectorAll("#ranges button")) other.classList.toggle("on", other === b);
      await load();
      schedule();
    });
  }
  $("export").addEventListener("click", exportCsv);
  load().then(schedule);
})();
