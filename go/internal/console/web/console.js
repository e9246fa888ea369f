// detailpage operator console: the page. No dependencies, no build step.
//
// It asks GET /api/session whether it has a session (else it shows the
// login form, which POSTs /login as JSON), then follows the SSE stream
// /api/stream (one "overview" event a second) and renders each snapshot.
// Every value from the server goes into the DOM through textContent or an
// attribute, never as markup. Controls POST JSON with the session's CSRF
// token, after a confirmation in a <dialog>, and show every target's answer.
(function () {
  "use strict";

  var HISTORY = 60;         // samples kept per command for its sparkline (1/s)
  var STALE_MS = 5000;      // no event for this long: the stream is down
  var RETRY_MIN_MS = 1000;  // reconnect backoff
  var RETRY_MAX_MS = 10000;
  var RESULTS_KEPT = 6;
  var REQUEST_TIMEOUT_MS = 15000; // a control waits for every target (the console's --timeout, twice)
  var SVG_NS = "http://www.w3.org/2000/svg";
  var LINKS = ["replica", "direct"];
  var LEVELS = ["L1", "L2", "redis", "direct", "stale", "negative"]; // the app tier's order; others after

  var csrf = "";
  var source = null;        // the EventSource
  var retryMs = RETRY_MIN_MS;
  var retryTimer = 0;
  var watchdog = 0;
  var lastEvent = 0;
  var history = new Map();  // command name -> {rate: [], err: [], seen: n}
  var ticks = 0;

  function $(id) { return document.getElementById(id); }

  // el builds an element: el("td", {class: "num", "data-x": 1}, "text", child…).
  function el(tag, attrs) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    for (var i = 2; i < arguments.length; i++) { append(e, arguments[i]); }
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) { return; }
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) { return; }
      e.setAttribute(k, v === true ? "" : String(v));
    });
  }

  function append(e, c) {
    if (c === null || c === undefined || c === false) { return; }
    if (Array.isArray(c)) { c.forEach(function (x) { append(e, x); }); return; }
    e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }

  // setText changes a node's text only when it differs (no needless layout).
  function setText(e, s) {
    s = String(s);
    if (e.textContent !== s) { e.textContent = s; }
  }

  function setData(e, name, v) {
    v = v === null || v === undefined ? "" : String(v);
    if (e.getAttribute("data-" + name) !== v) { e.setAttribute("data-" + name, v); }
  }

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function fmtNum(v, digits) {
    if (!isNum(v)) { return "—"; }
    return v.toFixed(digits);
  }

  function fmtInt(v) {
    if (!isNum(v)) { return "—"; }
    return Math.round(v).toLocaleString("en-US");
  }

  function fmtMs(v) {
    if (!isNum(v)) { return "—"; }
    if (v < 10) { return v.toFixed(2); }
    if (v < 100) { return v.toFixed(1); }
    return Math.round(v).toString();
  }

  function fmtRate(v) {
    if (!isNum(v)) { return "—"; }
    return v < 100 ? v.toFixed(1) : Math.round(v).toString();
  }

  function fmtPct(v) {
    if (!isNum(v)) { return "—"; }
    return v.toFixed(v < 10 ? 1 : 0) + " %";
  }

  function fmtRatio(v) {
    if (!isNum(v)) { return "—"; }
    return (v * 100).toFixed(1) + " %";
  }

  function fmtTime(s) {
    if (typeof s !== "string" || s === "") { return "—"; }
    var d = new Date(s);
    if (isNaN(d.getTime())) { return s; }
    return d.toLocaleTimeString("en-GB", { hour12: false });
  }

  function fmtSince(s) {
    if (typeof s !== "string" || s === "") { return "—"; }
    var d = new Date(s);
    if (isNaN(d.getTime())) { return s; }
    var secs = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (secs < 90) { return secs + " s ago"; }
    if (secs < 5400) { return Math.round(secs / 60) + " min ago"; }
    return Math.round(secs / 3600) + " h ago";
  }

  function str(v) { return typeof v === "string" ? v : ""; }
  function arr(v) { return Array.isArray(v) ? v : []; }
  function obj(v) { return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {}; }

  // ---- views ----------------------------------------------------------

  function show(view) {
    document.body.setAttribute("data-view", view);
    $("login").hidden = view !== "login";
    $("app").hidden = view !== "app";
    $("logout").hidden = view !== "app";
    if (view === "login") {
      disconnect();
      setConn("logged-out", "not logged in");
      $("login-token").focus();
    }
  }

  function setConn(state, text) {
    var c = $("conn");
    setData(c, "conn", state);
    setText(c, text);
  }

  // ---- HTTP -----------------------------------------------------------

  function request(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    if (method !== "GET" && csrf) { opts.headers["X-CSRF-Token"] = csrf; }
    // A frozen console must not leave a request (and the page) waiting.
    var abort = new AbortController();
    var timer = setTimeout(function () { abort.abort(); }, REQUEST_TIMEOUT_MS);
    opts.signal = abort.signal;
    return fetch(path, opts).then(function (resp) {
      return resp.text().then(function (text) {
        clearTimeout(timer);
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { status: resp.status, data: data, text: text };
      });
    }, function (err) {
      clearTimeout(timer);
      throw abort.signal.aborted ? new Error("no answer within " + REQUEST_TIMEOUT_MS / 1000 + " s") : err;
    });
  }

  function loadSession() {
    return request("GET", "/api/session").then(function (r) {
      if (r.status === 200 && r.data && typeof r.data.csrf === "string") {
        csrf = r.data.csrf;
        return true;
      }
      if (r.status === 401) { return false; }
      throw new Error("GET /api/session answered " + r.status);
    });
  }

  function start() {
    loadSession().then(function (ok) {
      if (ok) { enter(); } else { show("login"); }
    }, function (err) {
      setConn("disconnected", "disconnected");
      showError("login-error", "The console does not answer: " + err.message);
      show("login");
      scheduleStart();
    });
  }

  var startTimer = 0;
  function scheduleStart() {
    clearTimeout(startTimer);
    startTimer = setTimeout(function () {
      if (document.body.getAttribute("data-view") === "login" && !$("login-token").value) { start(); }
    }, 5000);
  }

  function enter() {
    show("app");
    hideError("login-error");
    connect();
  }

  function showError(id, text) {
    var e = $(id);
    setText(e, text);
    e.hidden = false;
  }

  function hideError(id) { $(id).hidden = true; }

  function onLogin(ev) {
    ev.preventDefault();
    var input = $("login-token");
    var token = input.value;
    if (!token) { return; }
    var button = $("login-submit");
    button.disabled = true;
    hideError("login-error");
    request("POST", "/login", { token: token }).then(function (r) {
      button.disabled = false;
      if (r.status === 200) {
        input.value = "";
        if (r.data && typeof r.data.csrf === "string") {
          csrf = r.data.csrf;
          enter();
          return;
        }
        loadSession().then(function (ok) {
          if (ok) { enter(); } else { showError("login-error", "Logged in, but the console has no session for this browser (cookies blocked?)."); }
        });
        return;
      }
      var msg = r.data && typeof r.data.error === "string" ? r.data.error : "status " + r.status;
      showError("login-error", r.status === 401 ? "Wrong token." : "Login failed: " + msg);
      input.select();
    }, function (err) {
      button.disabled = false;
      showError("login-error", "The console does not answer: " + err.message);
    });
  }

  function onLogout() {
    request("POST", "/logout").then(function () {
      csrf = "";
      show("login");
    }, function () {
      csrf = "";
      show("login");
    });
  }

  // ---- the stream -----------------------------------------------------

  function connect() {
    disconnect();
    setConn("connecting", "connecting");
    var es = new EventSource("/api/stream");
    source = es;
    es.addEventListener("overview", function (e) {
      if (source !== es) { return; }
      var snap;
      try { snap = JSON.parse(e.data); } catch (err) { return; }
      lastEvent = Date.now();
      retryMs = RETRY_MIN_MS;
      setConn("live", "live");
      render(snap);
    });
    es.onopen = function () {
      if (source !== es) { return; }
      lastEvent = Date.now();
    };
    es.onerror = function () {
      if (source !== es) { return; }
      setConn("disconnected", "disconnected");
      // The browser reconnects by itself unless the answer was not a
      // stream (401, 5xx): then ask whether the session is still there.
      if (es.readyState === EventSource.CLOSED) { reconnectLater(); }
    };
    lastEvent = Date.now();
    watchdog = setInterval(function () {
      if (Date.now() - lastEvent > STALE_MS) {
        setConn("disconnected", "disconnected");
        reconnectLater();
      }
    }, 1000);
  }

  function disconnect() {
    clearInterval(watchdog);
    clearTimeout(retryTimer);
    watchdog = 0;
    retryTimer = 0;
    if (source) {
      source.close();
      source = null;
    }
  }

  function reconnectLater() {
    disconnect();
    var wait = retryMs;
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    retryTimer = setTimeout(function () {
      loadSession().then(function (ok) {
        if (ok) { connect(); } else { show("login"); }
      }, function () {
        setConn("disconnected", "disconnected");
        reconnectLater();
      });
    }, wait);
  }

  // ---- rendering ------------------------------------------------------

  function render(s) {
    s = obj(s);
    ticks++;
    var at = $("updated-at");
    setData(at, "at", str(s.at));
    setText(at, fmtTime(s.at));
    if (str(s.at)) { at.setAttribute("datetime", str(s.at)); }
    renderCommands(arr(s.commands));
    renderApps(arr(s.app_nodes));
    renderDist(obj(s.dist));
    renderHot(obj(s.hot));
    renderPipeline(obj(s.pipeline));
    renderServices(arr(s.services));
  }

  // sync keeps container's children, one per item keyed by key(item),
  // in the items' order: it reuses a child with the same key (so a button
  // being clicked is not replaced under the pointer), creates the missing
  // ones, drops the others.
  function sync(container, items, key, create, update) {
    var old = new Map();
    Array.prototype.forEach.call(container.children, function (c) { old.set(c.getAttribute("data-key"), c); });
    var prev = null;
    items.forEach(function (item) {
      var k = String(key(item));
      var node = old.get(k);
      if (node) { old.delete(k); } else {
        node = create(item);
        node.setAttribute("data-key", k);
      }
      update(node, item);
      var want = prev ? prev.nextSibling : container.firstChild;
      if (want !== node) { container.insertBefore(node, want); }
      prev = node;
    });
    old.forEach(function (node) { container.removeChild(node); });
  }

  function worstFirst(a, b) {
    var oa = a.circuit === "open" ? 1 : 0, ob = b.circuit === "open" ? 1 : 0;
    if (oa !== ob) { return ob - oa; }
    var ea = isNum(a.error_pct) ? a.error_pct : 0, eb = isNum(b.error_pct) ? b.error_pct : 0;
    if (ea !== eb) { return eb - ea; }
    var pa = isNum(a.p99_ms) ? a.p99_ms : 0, pb = isNum(b.p99_ms) ? b.p99_ms : 0;
    if (pa !== pb) { return pb - pa; }
    return str(a.name) < str(b.name) ? -1 : 1;
  }

  function remember(c) {
    var h = history.get(c.name);
    if (!h) {
      h = { rate: [], err: [], seen: 0 };
      history.set(c.name, h);
    }
    h.rate.push(isNum(c.rate) ? c.rate : 0);
    h.err.push(isNum(c.error_pct) ? c.error_pct : 0);
    if (h.rate.length > HISTORY) { h.rate.shift(); h.err.shift(); }
    h.seen = ticks;
    return h;
  }

  function renderCommands(list) {
    var cmds = list.filter(function (c) { return c && typeof c.name === "string"; }).slice().sort(worstFirst);
    cmds.forEach(remember);
    history.forEach(function (h, name) { if (ticks - h.seen > HISTORY) { history.delete(name); } });
    setText($("commands-count"), cmds.length ? "(" + cmds.length + ")" : "");
    $("commands-empty").hidden = cmds.length > 0;
    sync($("command-tiles"), cmds, function (c) { return c.name; }, createTile, updateTile);
  }

  function createTile(c) {
    var t = el("article", { class: "tile", "data-command": c.name });
    var spark = svg("svg", { class: "spark", viewBox: "0 0 120 32", preserveAspectRatio: "none", "aria-hidden": "true" });
    spark.appendChild(svg("polyline", { class: "rate", points: "" }));
    spark.appendChild(svg("polyline", { class: "err", points: "" }));
    append(t, [
      el("header", null,
        el("h3", { class: "name", title: c.name }, c.name),
        el("span", { class: "circuit", "data-field": "circuit" })),
      el("p", { class: "where", "data-field": "where" }),
      spark,
      el("dl", { class: "stats" },
        el("dt", null, "rate"), el("dd", { "data-field": "rate" }),
        el("dt", null, "errors"), el("dd", { "data-field": "error" }),
        el("dt", null, "p50 / p99"), el("dd", { "data-field": "latency" }),
        el("dt", null, "in flight"), el("dd", { "data-field": "bulkhead" },
          el("span", { class: "bar" }, el("span", { class: "fill" })), el("span", { class: "n" })))
    ]);
    return t;
  }

  function field(node, name) { return node.querySelector('[data-field="' + name + '"]'); }

  function updateTile(t, c) {
    var circuit = c.circuit === "open" ? "open" : c.circuit === "closed" ? "closed" : "unknown";
    setData(t, "circuit", circuit);
    setData(t, "error-pct", isNum(c.error_pct) ? c.error_pct : "");
    setData(t, "rate", isNum(c.rate) ? c.rate : "");
    var errPct = isNum(c.error_pct) ? c.error_pct : 0;
    setData(t, "health", circuit === "open" ? "bad" : errPct >= 10 ? "warn" : errPct > 0 ? "some" : "ok");
    setText(field(t, "circuit"), circuit);
    var svcs = arr(c.services).filter(function (x) { return typeof x === "string"; });
    setText(field(t, "where"), (svcs.length ? svcs.join(", ") : "—") + " · " + (isNum(c.hosts) ? c.hosts : "?") + (c.hosts === 1 ? " host" : " hosts"));
    setText(field(t, "rate"), fmtRate(c.rate) + " /s");
    setText(field(t, "error"), fmtPct(c.error_pct));
    setText(field(t, "latency"), fmtMs(c.p50_ms) + " / " + fmtMs(c.p99_ms) + " ms");
    var bh = field(t, "bulkhead");
    var limit = isNum(c.limit) && c.limit > 0 ? c.limit : null;
    var inFlight = isNum(c.in_flight) ? c.in_flight : null;
    setText(bh.querySelector(".n"), fmtInt(inFlight) + " / " + fmtInt(limit));
    var frac = limit && inFlight !== null ? Math.min(1, inFlight / limit) : 0;
    bh.querySelector(".fill").style.width = (frac * 100).toFixed(0) + "%";
    setData(bh, "full", frac >= 1 ? "true" : "false");
    drawSpark(t.querySelector("svg.spark"), history.get(c.name));
  }

  function points(values, max) {
    var n = values.length;
    if (n === 0) { return ""; }
    var out = new Array(n);
    var step = n > 1 ? 120 / (HISTORY - 1) : 0;
    var x0 = 120 - step * (n - 1);
    for (var i = 0; i < n; i++) {
      var y = 30 - (max > 0 ? values[i] / max : 0) * 27;
      out[i] = (x0 + step * i).toFixed(1) + "," + y.toFixed(1);
    }
    return out.join(" ");
  }

  function drawSpark(s, h) {
    if (!h) { return; }
    var max = 0;
    for (var i = 0; i < h.rate.length; i++) { if (h.rate[i] > max) { max = h.rate[i]; } }
    s.querySelector("polyline.rate").setAttribute("points", points(h.rate, max * 1.1));
    s.querySelector("polyline.err").setAttribute("points", points(h.err, 100));
  }

  function renderApps(nodes) {
    nodes = nodes.filter(function (n) { return n && typeof n.name === "string"; });
    sync($("app-nodes"), nodes, function (n) { return n.name; }, createApp, updateApp);
  }

  function createApp(n) {
    var linkRows = LINKS.map(function (l) {
      return el("tr", { "data-link": l },
        el("th", { scope: "row" }, l),
        el("td", null, el("span", { class: "badge", "data-field": "state" })),
        el("td", { "data-field": "mode" }),
        el("td", { class: "num", "data-field": "failures" }),
        el("td", { "data-field": "retry" }));
    });
    return el("article", { class: "node", "data-app": n.name },
      el("header", null, el("h3", null, n.name), el("span", { class: "url", "data-field": "url" })),
      el("p", { class: "error", "data-field": "error", hidden: true }),
      el("table", { class: "grid links" },
        el("thead", null, el("tr", null, el("th", null, "link"), el("th", null, "state"), el("th", null, "mode"), el("th", { class: "num" }, "failures"), el("th", null, "retry"))),
        el("tbody", null, linkRows)),
      el("table", { class: "grid cache" },
        el("thead", null, el("tr", null, el("th", null, "cache"), el("th", { class: "num" }, "hits"), el("th", null, "hit ratio"))),
        el("tbody", { "data-field": "cache" })));
  }

  function updateApp(node, n) {
    setData(node, "ok", n.ok === true ? "true" : "false");
    setText(field(node, "url"), str(n.url));
    var errEl = field(node, "error");
    errEl.hidden = n.ok === true;
    setText(errEl, n.ok === true ? "" : "unreachable: " + (str(n.error) || "no answer"));
    var links = obj(n.links);
    LINKS.forEach(function (l) {
      var row = node.querySelector('tr[data-link="' + l + '"]');
      var k = obj(links[l]);
      var state = str(k.state) || "unknown";
      var mode = str(k.mode) || "unknown";
      var forced = mode === "force-degraded" || mode === "force-normal";
      setData(row, "state", state);
      setData(row, "mode", mode);
      setData(row, "forced", forced ? "true" : "false");
      var badge = field(row, "state");
      setData(badge, "state", state);
      setText(badge, state);
      setText(field(row, "mode"), forced ? mode + " (forced)" : mode);
      setText(field(row, "failures"), fmtInt(k.failures));
      setText(field(row, "retry"), isNum(k.retry_in_ms) ? "in " + (k.retry_in_ms / 1000).toFixed(1) + " s" : "—");
    });
    var cache = obj(n.cache);
    var levels = Object.keys(cache).sort(function (a, b) {
      var ia = LEVELS.indexOf(a), ib = LEVELS.indexOf(b);
      if (ia < 0) { ia = LEVELS.length; }
      if (ib < 0) { ib = LEVELS.length; }
      return ia !== ib ? ia - ib : a < b ? -1 : a > b ? 1 : 0;
    }).map(function (lv) { return { level: lv, c: obj(cache[lv]) }; });
    sync(field(node, "cache"), levels, function (x) { return x.level; }, function (x) {
      return el("tr", { "data-level": x.level },
        el("th", { scope: "row" }, x.level),
        el("td", { class: "num", "data-field": "hits" }),
        el("td", { class: "ratio" }, el("span", { class: "bar" }, el("span", { class: "fill" })), el("span", { class: "n", "data-field": "ratio" })));
    }, function (row, x) {
      var c = x.c;
      setText(field(row, "hits"), fmtInt(c.hits));
      setText(field(row, "ratio"), fmtRatio(c.ratio));
      setData(row, "ratio", isNum(c.ratio) ? c.ratio : "");
      row.querySelector(".fill").style.width = isNum(c.ratio) ? (Math.max(0, Math.min(1, c.ratio)) * 100).toFixed(0) + "%" : "0%";
    });
  }

  function statusText(e, part) {
    setData(e, "ok", part.ok === true ? "true" : "false");
    setText(e, part.ok === true ? "" : "unreachable: " + (str(part.error) || "no answer"));
  }

  function stateItem(attr) {
    return function (n) {
      var a = { class: "state" };
      a[attr] = n.name;
      return el("li", a, el("span", { class: "badge" }), el("span", { class: "name" }, n.name));
    };
  }

  function updateState(li, n) {
    var state = str(n.state) || "unknown";
    setData(li, "state", state);
    var b = li.querySelector(".badge");
    setData(b, "state", state);
    setText(b, state);
  }

  function named(list) { return arr(list).filter(function (n) { return n && typeof n.name === "string"; }); }

  function renderDist(d) {
    statusText($("dist-status"), d);
    sync($("dist-nodes"), named(d.nodes), function (n) { return n.name; }, stateItem("data-dist-node"), updateState);
    sync($("one-nodes"), named(d.one_nodes), function (n) { return n.name; }, stateItem("data-one-node"), updateState);
  }

  function renderHot(h) {
    statusText($("hot-status"), h);
    var ids = arr(h.ids).filter(function (x) { return x && isNum(x.id); });
    $("hot-empty").hidden = ids.length > 0;
    sync($("hot-ids"), ids, function (x) { return x.id; }, function (x) {
      return el("tr", { "data-hot-id": x.id },
        el("td", { class: "id" }, String(x.id), " ", el("span", { class: "pin-mark", "data-field": "pinned" })),
        el("td", { class: "num", "data-field": "rate" }),
        el("td", { "data-field": "since" }),
        el("td", { class: "act" }, el("button", { type: "button", class: "small", "data-action": "hot", "data-id": x.id })));
    }, function (row, x) {
      var pinned = x.pinned === true;
      setData(row, "pinned", pinned ? "true" : "false");
      setText(field(row, "pinned"), pinned ? "pinned" : "");
      setText(field(row, "rate"), fmtRate(x.rate));
      setText(field(row, "since"), fmtSince(x.since));
      var b = row.querySelector("button");
      setData(b, "hot-action", pinned ? "unpin" : "pin");
      setText(b, pinned ? "Unpin" : "Pin");
    });
  }

  function setValue(e, v) {
    setData(e, "value", isNum(v) ? v : "");
    setText(e, fmtInt(v));
  }

  function renderPipeline(p) {
    setValue($("outbox-backlog"), p.outbox_backlog);
    setValue($("dlq"), p.dlq);
    var lag = obj(p.consumer_lag);
    var groups = Object.keys(lag).sort().map(function (g) { return { name: g, lag: lag[g] }; });
    sync($("consumer-lag"), groups, function (g) { return g.name; }, function (g) {
      return el("li", { "data-group": g.name }, el("span", { class: "k" }, g.name), el("span", { class: "v" }));
    }, function (li, g) {
      var v = li.querySelector(".v");
      setData(li, "value", isNum(g.lag) ? g.lag : "");
      setText(v, fmtInt(g.lag));
    });
  }

  function renderServices(list) {
    sync($("services"), named(list), function (s) { return s.name; }, function (s) {
      return el("li", { class: "state", "data-service": s.name },
        el("span", { class: "badge" }), el("span", { class: "name" }, s.name), el("span", { class: "url" }), el("span", { class: "why" }));
    }, function (li, s) {
      var state = s.ok === true && s.stream !== "retrying" ? "up" : "down";
      setData(li, "ok", s.ok === true ? "true" : "false");
      setData(li, "stream", str(s.stream));
      setData(li, "state", state);
      var b = li.querySelector(".badge");
      setData(b, "state", state);
      setText(b, str(s.stream) || (s.ok === true ? "ok" : "down"));
      setText(li.querySelector(".url"), str(s.url));
      setText(li.querySelector(".why"), str(s.error));
    });
  }

  // ---- controls -------------------------------------------------------

  var dialog = null;
  var pending = null;  // the confirmed action's callback

  function confirmThen(text, run) {
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(text)) { run(); }
      return;
    }
    pending = run;
    setText($("confirm-text"), text);
    dialog.showModal();
    $("confirm-cancel").focus();
  }

  // The choice is read from the dialog form's submit event, which fires
  // at the click itself: the dialog's close event comes later, as a task,
  // and could belong to an earlier opening of the dialog.
  function onDialogSubmit(ev) {
    var run = pending;
    pending = null;
    if (run && ev.submitter && ev.submitter.value === "ok") { run(); }
  }

  function onDialogCancel() { pending = null; } // Escape

  var resultSeq = 0;

  // act POSTs body to path and shows every target's answer in a result
  // block (data-action, data-state pending|done|failed).
  function act(kind, title, path, body) {
    hideError("form-error");
    resultSeq++;
    var block = el("article", { class: "result", id: "result-" + resultSeq, "data-action": kind, "data-state": "pending", "data-seq": resultSeq },
      el("header", null, el("h3", null, title), el("time", null, new Date().toLocaleTimeString("en-GB", { hour12: false }))),
      el("p", { class: "summary" }, "sending…"));
    var box = $("results");
    box.insertBefore(block, box.firstChild);
    while (box.children.length > RESULTS_KEPT) { box.removeChild(box.lastChild); }
    $("results-empty").hidden = true;
    send(path, body, true).then(function (r) { showResult(block, r); }, function (err) {
      setData(block, "state", "failed");
      setText(block.querySelector(".summary"), "The console does not answer: " + err.message);
    });
  }

  // send POSTs; on 403 (CSRF token out of date) it fetches the session's
  // token again and retries once; on 401 it shows the login form.
  function send(path, body, retry) {
    return request("POST", path, body).then(function (r) {
      if (r.status === 403 && retry) {
        return loadSession().then(function (ok) {
          if (!ok) { return r; }
          return send(path, body, false);
        });
      }
      return r;
    });
  }

  function showResult(block, r) {
    var summary = block.querySelector(".summary");
    if (r.status === 401) {
      setData(block, "state", "failed");
      setText(summary, "Not logged in (401): log in again.");
      show("login");
      return;
    }
    var results = r.data && Array.isArray(r.data.results) ? r.data.results : null;
    if (!results) {
      setData(block, "state", "failed");
      var msg = r.data && typeof r.data.error === "string" ? r.data.error : r.text.slice(0, 200);
      setText(summary, "Failed: " + r.status + (msg ? " — " + msg : ""));
      return;
    }
    var okCount = results.filter(function (x) { return x && x.ok === true; }).length;
    setData(block, "state", r.status === 200 ? "done" : "failed");
    setData(block, "ok-count", okCount);
    setData(block, "count", results.length);
    setText(summary, okCount + " of " + results.length + " targets OK (status " + r.status + ")");
    var rows = results.map(function (x) {
      x = obj(x);
      return el("tr", { "data-target": str(x.target), "data-ok": x.ok === true ? "true" : "false" },
        el("td", null, str(x.target)),
        el("td", null, el("span", { class: "badge", "data-state": x.ok === true ? "up" : "down" }, x.ok === true ? "ok" : "failed")),
        el("td", { class: "num" }, isNum(x.status) && x.status > 0 ? String(x.status) : "—"),
        el("td", { class: "why" }, str(x.error)));
    });
    block.appendChild(el("table", { class: "grid" },
      el("thead", null, el("tr", null, el("th", null, "target"), el("th", null, "result"), el("th", { class: "num" }, "status"), el("th", null, "error"))),
      el("tbody", null, rows)));
  }

  var MODE_TEXT = { "force-degraded": "Force-degrade", "force-normal": "Force normal", "auto": "Set back to automatic" };

  function onDegrade(b) {
    var link = b.getAttribute("data-link"), mode = b.getAttribute("data-mode");
    var text = MODE_TEXT[mode] + " the " + link + " link on every app node?";
    confirmThen(text, function () {
      act("degrade", link + " → " + mode + " on every app node", "/api/degrade", { link: link, mode: mode });
    });
  }

  function hotAction(id, action) {
    var text = (action === "pin" ? "Pin" : "Unpin") + " product " + id + " in the hot set on every hot service instance?";
    confirmThen(text, function () {
      act("hot", action + " " + id, "/api/hot", { id: id, action: action });
    });
  }

  // parseID accepts a positive integer an int64 holds exactly in JS.
  function parseID(s) {
    s = String(s).trim();
    if (!/^[0-9]{1,15}$/.test(s)) { return null; }
    var n = parseInt(s, 10);
    return n > 0 ? n : null;
  }

  function onPinForm(ev) {
    ev.preventDefault();
    var action = ev.submitter && ev.submitter.getAttribute("data-hot-action") === "unpin" ? "unpin" : "pin";
    var id = parseID($("pin-id").value);
    if (id === null) {
      showError("form-error", "Pin: the product id must be a positive whole number.");
      return;
    }
    hideError("form-error");
    hotAction(id, action);
  }

  function onPurgeForm(ev) {
    ev.preventDefault();
    var parts = $("purge-ids").value.split(/[\s,]+/).filter(function (x) { return x !== ""; });
    var ids = [], seen = new Set();
    for (var i = 0; i < parts.length; i++) {
      var id = parseID(parts[i]);
      if (id === null) {
        showError("form-error", "Purge: " + JSON.stringify(parts[i]) + " is not a product id.");
        return;
      }
      if (!seen.has(id)) { seen.add(id); ids.push(id); }
    }
    if (ids.length === 0 || ids.length > 100) {
      showError("form-error", "Purge: name 1 to 100 product ids.");
      return;
    }
    hideError("form-error");
    confirmThen("Purge " + ids.length + (ids.length === 1 ? " product" : " products") + " (" + ids.slice(0, 10).join(", ") + (ids.length > 10 ? ", …" : "") + ") from every app node and the dist tier?", function () {
      act("purge", "purge " + ids.join(", "), "/api/purge", { ids: ids });
    });
  }

  function onClick(ev) {
    var b = ev.target.closest ? ev.target.closest("button[data-action]") : null;
    if (!b) { return; }
    var a = b.getAttribute("data-action");
    if (a === "degrade") {
      onDegrade(b);
    } else if (a === "hot") {
      var id = parseID(b.getAttribute("data-id"));
      if (id !== null) { hotAction(id, b.getAttribute("data-hot-action") === "unpin" ? "unpin" : "pin"); }
    }
  }

  function init() {
    dialog = $("confirm-dialog");
    if (dialog) {
      dialog.querySelector("form").addEventListener("submit", onDialogSubmit);
      dialog.addEventListener("cancel", onDialogCancel);
    }
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("pin-form").addEventListener("submit", onPinForm);
    $("purge-form").addEventListener("submit", onPurgeForm);
    $("app").addEventListener("click", onClick);
    // Relative times (hot "since") and the staleness shown keep moving
    // between events only through the stream; nothing else polls.
    start();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
