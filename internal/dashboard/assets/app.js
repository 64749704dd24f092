// distq dashboard: polls the master's JSON endpoints, draws the queues'
// depths and rates on canvases, and posts actions with the session's CSRF
// token. Everything from the master is put in the page as text, never as
// markup.
"use strict";

(function () {
  const POLL_MS = 1000;
  const HISTORY = 120; // samples kept per queue for the charts (2 minutes)
  const MIN_SPAN = 30; // the charts' time axis spans at least this many samples
  const $ = (id) => document.getElementById(id);

  let csrf = "";
  let features = { pause: false, workers: false };
  let timer = 0;
  let busy = false;
  const history = new Map(); // queue -> [{t, ready, leased, delayed, dead, rates}]
  let lastSample = new Map(); // queue -> {t, counters}

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method === "POST" && csrf) opts.headers["X-CSRF-Token"] = csrf;
    const res = await fetch("api/" + path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (res.status === 401 && path !== "login") {
      showLogin("");
      throw new Error("logged out");
    }
    if (!res.ok) throw new Error((data && data.error) || res.status + " " + res.statusText);
    return data;
  }

  function setStatus(text) { $("status").textContent = text; }

  function showLogin(msg) {
    clearTimeout(timer);
    timer = 0;
    csrf = "";
    $("app").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = msg || "";
    setStatus("not logged in");
    $("credential").focus();
  }

  function showApp(info) {
    csrf = info.csrf;
    features = info.features || features;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    $("credential").value = "";
    const note = $("pause-note");
    note.hidden = features.pause;
    note.textContent = "Pause and resume are not available on this master yet.";
    if (!timer) poll();
  }

  async function login(ev) {
    ev.preventDefault();
    $("login-submit").disabled = true;
    try {
      const info = await api("POST", "login", { credential: $("credential").value });
      showApp(info);
    } catch (e) {
      $("login-error").textContent = e.message;
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function logout() {
    try { await api("POST", "logout", {}); } catch (e) { /* logged out either way */ }
    history.clear();
    lastSample.clear();
    showLogin("Logged out.");
  }

  // rates from two samples of the counters, per second of the master's clock.
  const RATES = [
    ["puts", "puts/s", "#2f6fdb"],
    ["deliveries", "deliveries/s", "#16a085"],
    ["acks", "acks/s", "#1e8449"],
    ["nacks", "nacks/s", "#e08a00"],
    ["deadLettered", "dead/s", "#c0392b"],
  ];
  const DEPTHS = [
    ["ready", "ready", "#2f6fdb"],
    ["leased", "leased", "#e08a00"],
    ["delayed", "delayed", "#8e44ad"],
    ["dead", "dead", "#c0392b"],
  ];

  function record(now, q) {
    const prev = lastSample.get(q.name);
    const rates = {};
    for (const [k] of RATES) {
      let r = 0;
      if (prev && now > prev.t && q[k] >= prev[k]) r = (q[k] - prev[k]) * 1000 / (now - prev.t);
      rates[k] = r;
    }
    lastSample.set(q.name, Object.assign({ t: now }, q));
    let h = history.get(q.name);
    if (!h) { h = []; history.set(q.name, h); }
    if (prev) h.push({ t: now, ready: q.ready, leased: q.leased, delayed: q.delayed, dead: q.dead, rates });
    while (h.length > HISTORY) h.shift();
    return rates;
  }

  function fmtRate(r) {
    if (r >= 100) return Math.round(r).toLocaleString("en");
    if (r >= 10) return r.toFixed(1);
    return r.toFixed(2);
  }

  function queueRow(q, rates) {
    let tr = document.querySelector('#queues tbody tr[data-queue="' + CSS.escape(q.name) + '"]');
    if (!tr) {
      tr = el("tr", { "data-queue": q.name });
      const cells = ["name", "ready", "leased", "delayed", "dead", "consumers", "puts", "acks",
        "r-puts", "r-deliveries", "r-acks", "r-nacks", "r-deadLettered", "state"];
      for (const c of cells) tr.append(el("td", { class: "c-" + c }));
      tr.append(el("td", { class: "actions" }));
      $("queues").tBodies[0].append(tr);
    }
    const set = (c, v) => { tr.querySelector(".c-" + c).textContent = v; };
    set("name", q.name);
    for (const c of ["ready", "leased", "delayed", "dead", "consumers", "puts", "acks"]) set(c, q[c].toLocaleString("en"));
    for (const [k] of RATES) set("r-" + k, fmtRate(rates[k]));
    const state = q.closed ? "closed" : q.paused ? "paused" : "open";
    const st = tr.querySelector(".c-state");
    st.textContent = state;
    st.className = "c-state state-" + state;
    const act = tr.querySelector(".actions");
    const want = [features.pause, q.paused, q.closed].join();
    if (act.dataset.want !== want) {
      act.dataset.want = want;
      act.replaceChildren();
      if (features.pause) {
        act.append(el("button", { type: "button", class: "pause", textContent: q.paused ? "Resume" : "Pause",
          onclick: () => act1("pause", { queue: q.name, paused: !q.paused }) }));
      }
      if (!q.closed) {
        act.append(el("button", { type: "button", class: "close danger", textContent: "Close",
          onclick: () => { if (confirm("Close " + q.name + " to puts? This cannot be undone.")) act1("close", { queue: q.name }); } }));
      }
    }
  }

  async function act1(path, body) {
    try {
      await api("POST", path, body);
      setStatus(path + " done");
      poll();
    } catch (e) {
      setStatus(path + " failed: " + e.message);
    }
  }

  // chart draws series of history h on canvas c: lines, a grid with the
  // maximum on the left axis, and a legend.
  function chart(c, h, series, pick) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, hgt = c.clientHeight;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    // The legend first, wrapping as the width asks; the plot below it.
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    g.textAlign = "left";
    let lx = 48, ly = 7;
    const keys = [];
    for (const [, label, color] of series) {
      const lw = 20 + g.measureText(label).width;
      if (lx + lw > w && lx > 48) { lx = 48; ly += 14; }
      keys.push([label, color, lx, ly]);
      lx += lw;
    }
    const L = 48, R = 6, T = ly + 13, B = 16;
    const pw = w - L - R, ph = hgt - T - B;
    let max = 0;
    for (const p of h) for (const [k] of series) max = Math.max(max, pick(p, k));
    max = niceMax(max);
    g.strokeStyle = "#e3e7ed";
    g.fillStyle = "#5b6678";
    g.lineWidth = 1;
    g.textAlign = "right";
    for (let i = 0; i <= 4; i++) {
      const y = T + ph - ph * i / 4;
      g.beginPath(); g.moveTo(L, y + .5); g.lineTo(L + pw, y + .5); g.stroke();
      g.fillText(short(max * i / 4), L - 4, y);
    }
    // The time axis spans the history held, at least MIN_SPAN samples.
    const span = Math.max(h.length, MIN_SPAN);
    g.textAlign = "left";
    g.fillText("last " + Math.round(span * POLL_MS / 1000) + " s", L, T + ph + 9);
    const x = (i) => L + pw - (h.length - 1 - i) * pw / (span - 1);
    for (const [k, , color] of series) {
      g.strokeStyle = color;
      g.lineWidth = 1.6;
      g.beginPath();
      h.forEach((p, i) => {
        const y = T + ph - (max ? pick(p, k) / max : 0) * ph;
        if (i === 0) g.moveTo(x(i), y); else g.lineTo(x(i), y);
      });
      g.stroke();
    }
    for (const [label, color, kx, ky] of keys) {
      g.fillStyle = color;
      g.fillRect(kx, ky - 1.5, 10, 3);
      g.fillStyle = "#1d2430";
      g.fillText(label, kx + 13, ky);
    }
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function short(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  function chartCard(name) {
    let card = document.querySelector('#charts .chart-card[data-queue="' + CSS.escape(name) + '"]');
    if (!card) {
      card = el("div", { class: "chart-card", "data-queue": name },
        el("h3", {}, name),
        el("div", { class: "chart-pair" },
          el("canvas", { class: "depths", ariaLabel: name + ": depths" }),
          el("canvas", { class: "rates", ariaLabel: name + ": rates per second" })));
      $("charts").append(card);
    }
    return card;
  }

  function drawCharts(names) {
    for (const name of names) {
      const card = chartCard(name);
      const h = history.get(name) || [];
      chart(card.querySelector("canvas.depths"), h, DEPTHS, (p, k) => p[k]);
      chart(card.querySelector("canvas.rates"), h, RATES, (p, k) => p.rates[k]);
    }
  }

  function drawWorkers(ov) {
    const box = $("workers");
    if (!ov.features.workers) {
      box.replaceChildren(el("p", { class: "note" },
        "The list of connected workers is not available on this master yet; the consumers column above counts them per queue."));
      return;
    }
    const ws = ov.workers || [];
    if (!ws.length) {
      box.replaceChildren(el("p", { class: "note", id: "workers-empty" }, "No worker is connected."));
      return;
    }
    const tb = el("tbody");
    for (const w of ws) {
      tb.append(el("tr", {},
        el("td", {}, w.peer), el("td", {}, w.queue), el("td", {}, w.credit), el("td", {}, w.held),
        el("td", {}, w.delivered), el("td", {}, w.acked), el("td", {}, w.failed),
        el("td", {}, ago(ov.now, w.since)), el("td", {}, ago(ov.now, w.lastSeen))));
    }
    box.replaceChildren(el("table", { class: "grid", id: "workers-table" },
      el("thead", {}, el("tr", {}, ...["peer", "queue", "credit", "held", "delivered", "acked", "failed", "connected", "last seen"].map((h) => el("th", {}, h)))),
      tb));
  }

  function ago(now, iso) {
    const t = Date.parse(iso);
    if (!t) return "";
    const s = Math.max(0, Math.round((now - t) / 1000));
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function deadQueues(ov) {
    const sel = $("dead-queue");
    const names = ov.queues.map((q) => q.name);
    const have = Array.from(sel.options).map((o) => o.value);
    if (have.join("\n") !== names.join("\n")) {
      const keep = sel.value;
      sel.replaceChildren(...names.map((n) => el("option", { value: n, textContent: n })));
      // Start on the first queue that has dead items.
      const first = ov.queues.find((q) => q.dead > 0);
      sel.value = names.includes(keep) ? keep : first ? first.name : names[0] || "";
    }
  }

  // The dead items are shown a page at a time. deadView is the page the
  // operator is on: it stays across polls, goes back to the first page
  // when another queue is chosen, and back to the last page there is when
  // the items under it went (requeued or purged). deadSeq drops answers
  // that a later load (a poll, a click) has overtaken.
  const DEAD_PAGE = 50;
  const deadView = { queue: "", offset: 0 };
  let deadSeq = 0;

  async function loadDead() {
    const name = $("dead-queue").value;
    if (!name) return;
    if (deadView.queue !== name) Object.assign(deadView, { queue: name, offset: 0 });
    const seq = ++deadSeq;
    const get = () => api("GET", "dead?queue=" + encodeURIComponent(name) +
      "&offset=" + deadView.offset + "&limit=" + DEAD_PAGE);
    let page = await get();
    if (seq !== deadSeq) return;
    if (deadView.offset > 0 && deadView.offset >= page.total) {
      deadView.offset = Math.max(0, Math.ceil(page.total / DEAD_PAGE) - 1) * DEAD_PAGE;
      page = await get();
      if (seq !== deadSeq) return;
    }
    drawDead(name, page);
  }

  function drawDead(name, page) {
    const first = deadView.offset + 1, last = deadView.offset + page.items.length;
    $("dead-count").textContent = page.total === 0 ? "0 dead" :
      page.items.length === 0 ? page.total + " dead, none listed (held by a reader)" :
      (first === last ? "item " : "items " + first.toLocaleString("en") + "–") +
        last.toLocaleString("en") + " of " + page.total.toLocaleString("en");
    $("dead-prev").disabled = deadView.offset === 0;
    $("dead-next").disabled = deadView.offset + DEAD_PAGE >= page.total;
    $("requeue-all").disabled = page.total === 0;
    $("purge-dead").disabled = page.total === 0;
    $("dead-empty").hidden = page.items.length > 0;
    $("dead").hidden = page.items.length === 0;
    const tb = el("tbody");
    for (const it of page.items) {
      const payload = it.payloadIsText ? it.payload : "hex " + it.payload;
      tb.append(el("tr", { "data-id": it.id },
        el("td", {}, it.id),
        el("td", {}, it.attempt),
        el("td", { class: "err" }, it.error || "(none)"),
        el("td", { class: "payload", title: it.payloadBytes + " bytes" }, payload + (it.payloadClipped ? " …" : "")),
        el("td", {}, el("button", { type: "button", class: "requeue", textContent: "Requeue",
          onclick: () => act1("requeue", { queue: name, ids: [it.id] }) }))));
    }
    $("dead").tBodies[0].replaceWith(tb);
  }

  function turnDeadPage(step) {
    deadView.offset = Math.max(0, deadView.offset + step * DEAD_PAGE);
    loadDead().catch((e) => setStatus("dead items: " + e.message));
  }

  async function poll() {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
    if (busy) return;
    busy = true;
    try {
      const ov = await api("GET", "overview");
      features = ov.features;
      const names = [];
      for (const q of ov.queues) {
        names.push(q.name);
        queueRow(q, record(ov.now, q));
      }
      drawCharts(names);
      drawWorkers(ov);
      deadQueues(ov);
      await loadDead();
      setStatus("updated " + new Date(ov.now).toLocaleTimeString("en-GB"));
    } catch (e) {
      if (e.message !== "logged out") setStatus("update failed: " + e.message);
    } finally {
      busy = false;
    }
  }

  async function start() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("dead-queue").addEventListener("change", () => loadDead().catch(() => {}));
    $("dead-prev").addEventListener("click", () => turnDeadPage(-1));
    $("dead-next").addEventListener("click", () => turnDeadPage(1));
    $("requeue-all").addEventListener("click", () => {
      const name = $("dead-queue").value;
      if (name && confirm("Requeue every dead item of " + name + "?")) act1("requeue", { queue: name, all: true });
    });
    $("purge-dead").addEventListener("click", () => {
      const name = $("dead-queue").value;
      if (name && confirm("Throw away every dead item of " + name + "? This cannot be undone.")) act1("purge", { queue: name });
    });
    try {
      const res = await fetch("api/session", { credentials: "same-origin" });
      if (res.ok) showApp(await res.json());
      else showLogin("");
    } catch (e) {
      showLogin("The master does not answer: " + e.message);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
