/* Herald chat widget: shows a chat campaign's greeting when its triggers hold, and lets the
 * visitor answer: a live chat with the campaign's inbox, resumed after a reload or page change
 * (the conversation's token is kept in localStorage), agents' answers read from an EventSource.
 * Plain JavaScript, no dependencies, no request but to the Herald that served it. Text is only
 * ever set with textContent. Embedded with:
 *   <script src="https://HERALD/chat/widget.js" data-site="KEY" async></script>
 * The URL rules arrive compiled by Herald (herald_core::chat): each is an expression over a
 * target made of the page URL's parts, built here exactly as Rust builds it (UrlTarget::of). */
(function () {
  "use strict";
  if (window.Herald && window.Herald._loaded) return;
  var VISIT_GAP = 30 * 60 * 1000; // a visit ends after 30 minutes without a page view
  var script = document.currentScript || document.querySelector("script[data-site]");
  var key = script && script.getAttribute("data-site");
  var events = [];
  var api = {
    _loaded: true,
    trigger: function (name, data) {
      events.push([String(name), data && typeof data === "object" ? data : {}]);
      if (check) check();
    },
    _match: function (rule, href) { return ruleMatches(rule, new URL(href)); }
  };
  var check = null;
  window.Herald = api;

  function target(rule, u) {
    var s = rule.host ? u.hostname.toLowerCase() : "";
    s += u.pathname;
    if (rule.query && u.search.length > 1) s += u.search;
    if (rule.fragment && u.hash.length > 1) s += u.hash;
    return s;
  }
  function ruleMatches(rule, u) {
    try { return new RegExp(rule.pattern).test(target(rule, u)); } catch (e) { return false; }
  }

  if (!key || !script.src) return;
  var base = script.src.replace(/\/chat\/widget\.js(\?.*)?$/, "");
  var prefix = "herald:" + key + ":";
  function load(name, fallback) {
    try {
      var v = window.localStorage.getItem(prefix + name);
      return v === null ? fallback : JSON.parse(v);
    } catch (e) { return fallback; }
  }
  function save(name, value) {
    try { window.localStorage.setItem(prefix + name, JSON.stringify(value)); } catch (e) { /* storage off */ }
  }
  function now() { return new Date().getTime(); }

  // The campaign's figures: each count once per page view, sent in one batch (a beacon, so it
  // survives the page going away), soon after the first and when the page is hidden.
  var counted = {}, counts = [], flushTimer = null;
  function count(kind, id) {
    if (counted[kind + id]) return;
    counted[kind + id] = 1;
    counts.push({ campaign: id, kind: kind, n: 1 });
    if (!flushTimer) flushTimer = setTimeout(flush, 2000);
  }
  function flush() {
    flushTimer = null;
    if (!counts.length) return;
    var body = JSON.stringify({ events: counts.splice(0, 30) });
    var url = base + "/chat/v1/sites/" + encodeURIComponent(key) + "/events";
    try {
      if (!(navigator.sendBeacon && navigator.sendBeacon(url, body))) {
        fetch(url, { method: "POST", body: body, keepalive: true, credentials: "omit" }).catch(function () {});
      }
    } catch (e) { /* figures are best effort */ }
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "hidden") flush(); });
  window.addEventListener("pagehide", flush);

  // The visitor and the visit: first-party, in localStorage, no cookie.
  if (!load("visitor", null)) {
    var id = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);
    save("visitor", id);
  }
  var visit = load("visit", null);
  var visits = load("visits", 0);
  if (!visit || now() - visit.last > VISIT_GAP) {
    visits += 1;
    save("visits", visits);
    visit = { shown: [], last: now() };
  }
  visit.last = now();
  save("visit", visit);
  var returning = visits > 1;
  var started = now();

  function langOf() {
    return String(document.documentElement.lang || navigator.language || "").toLowerCase();
  }
  function holds(t) {
    var u = new URL(window.location.href);
    switch (t.kind) {
      case "url":
        var inc = t.include.length === 0 || t.include.some(function (r) { return ruleMatches(r, u); });
        return inc && !t.exclude.some(function (r) { return ruleMatches(r, u); });
      case "time_on_page": return now() - started >= t.seconds * 1000;
      case "visitor": return (t.visitor === "returning") === returning;
      case "language":
        var page = langOf();
        return t.languages.some(function (l) {
          l = l.toLowerCase();
          return l === page || (l.indexOf("-") < 0 && page.split("-")[0] === l);
        });
      case "event":
        return events.some(function (e) {
          if (e[0] !== t.name) return false;
          var c = t.condition;
          if (!c) return true;
          var n = e[1][c.field];
          if (typeof n !== "number") return false;
          return c.op === "gte" ? n >= c.value : c.op === "lte" ? n <= c.value : n === c.value;
        });
      default: return false;
    }
  }

  var ui = null;
  function render(campaign) {
    var host = document.createElement("div");
    host.id = "herald-chat";
    host.setAttribute("data-campaign", campaign.id);
    host.style.cssText = "position:fixed!important;right:0;bottom:0;z-index:2147483000;display:block;width:0;height:0;";
    var root = host.attachShadow({ mode: "open" });
    var style = document.createElement("style");
    style.textContent =
      ".w{all:initial;position:fixed;right:16px;bottom:16px;box-sizing:border-box;width:320px;" +
      "max-width:calc(100vw - 32px);display:flex;gap:8px;align-items:flex-start;padding:14px 12px 14px 16px;" +
      "background:#fff;color:#1d2433;border:1px solid #d5d9e0;border-radius:12px;" +
      "box-shadow:0 6px 24px rgba(0,0,0,.18);font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;flex-wrap:wrap}" +
      ".c{all:initial;display:block;flex-basis:100%;font:inherit;color:inherit}" +
      ".l{all:initial;display:block;max-height:40vh;overflow:auto;font:inherit;color:inherit}" +
      ".l li{all:initial;display:block;margin:6px 0;padding:6px 10px;border-radius:10px;font:inherit;color:inherit;white-space:pre-wrap;overflow-wrap:anywhere}" +
      ".l .v{background:#2f6fed;color:#fff;margin-left:28px}.l .a{background:#eef0f4;margin-right:28px}" +
      ".b{all:initial;display:block;margin-top:6px;font:13px/1.4 system-ui,sans-serif;color:#4a5263}" +
      ".f{all:initial;display:flex;gap:6px;font:inherit;color:inherit}" +
      ".i{all:initial;flex:1;box-sizing:border-box;min-height:40px;padding:6px 8px;border:1px solid #8a93a5;border-radius:8px;background:#fff;font:inherit;color:inherit;white-space:pre-wrap}" +
      ".s{all:initial;cursor:pointer;padding:0 14px;border-radius:8px;background:#2f6fed;color:#fff;font:inherit}" +
      ".e{all:initial;display:block;color:#b00020;font:13px/1.4 system-ui,sans-serif}" +
      ".i:focus-visible,.s:focus-visible{outline:3px solid #2f6fed;outline-offset:1px}" +
      ".t{all:initial;display:block;flex:1;font:inherit;color:inherit;white-space:pre-wrap;overflow-wrap:anywhere}" +
      ".x{all:initial;box-sizing:border-box;flex:none;cursor:pointer;width:32px;height:32px;border-radius:8px;" +
      "text-align:center;font:20px/32px system-ui,sans-serif;color:#1d2433}" +
      ".x:hover{background:#eef0f4}.x:focus-visible{outline:3px solid #2f6fed;outline-offset:1px}";
    var box = document.createElement("div");
    box.className = "w";
    box.setAttribute("role", "complementary");
    box.setAttribute("aria-label", "Chat");
    var text = document.createElement("p");
    text.className = "t";
    text.setAttribute("role", "status");
    text.setAttribute("aria-live", "polite");
    var close = document.createElement("button");
    close.className = "x";
    close.type = "button";
    close.setAttribute("aria-label", "Close chat message");
    close.textContent = "\u00d7";
    close.addEventListener("click", function () { dismiss(campaign.id); });
    box.addEventListener("keydown", function (e) { if (e.key === "Escape") dismiss(campaign.id); });
    box.appendChild(text);
    box.appendChild(close);
    box.appendChild(chatPart(campaign));
    root.appendChild(style);
    root.appendChild(box);
    document.body.appendChild(host);
    // Set after the live region is in the document, so screen readers announce it.
    setTimeout(function () { text.textContent = campaign.greeting; }, 0);
    ui = host;
  }
  // Live chat: the visitor's conversation, if any: {token, campaign, greeting}.
  var conv = load("conv", null);
  var list = null, es = null, last = null, seen = {};
  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (txt) e.textContent = txt;
    return e;
  }
  function call(method, path, body) {
    var h = { "Content-Type": "application/json" };
    if (conv) h["Herald-Chat-Token"] = conv.token;
    return fetch(base + "/chat/v1/sites/" + encodeURIComponent(key) + "/conversations" + path, {
      method: method, headers: h, credentials: "omit", body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { var x = new Error(j.detail || "The message was not sent (" + r.status + ")."); x.status = r.status; throw x; }
        return j;
      });
    });
  }
  function add(m) {
    if (!list || seen[m.id]) return;
    seen[m.id] = 1;
    last = m.id;
    if (m.from === "greeting") return; // shown above, as the panel's text
    var li = el("li", m.from === "visitor" ? "v" : "a", m.body);
    li.setAttribute("data-from", m.from);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }
  function listen() {
    if (es || !conv || !window.EventSource) return;
    es = new EventSource(base + "/chat/v1/sites/" + encodeURIComponent(key) + "/conversations/events?token=" +
      encodeURIComponent(conv.token) + (last ? "&after=" + last : ""));
    es.addEventListener("message", function (e) { try { add(JSON.parse(e.data)); } catch (x) { /* not ours */ } });
  }
  function chatPart(campaign) {
    var part = el("div", "c");
    list = el("ol", "l");
    list.setAttribute("aria-label", "Messages");
    list.setAttribute("aria-live", "polite");
    var form = el("form", "f");
    var input = el("textarea", "i");
    input.id = "herald-reply";
    input.rows = 2;
    input.maxLength = 2000;
    var label = el("label", "b", "Your reply");
    label.htmlFor = input.id;
    var name = null, email = null, asked = [];
    function ask(id, type, auto, text) {
      var i = el("input", "i");
      i.type = type;
      i.id = id;
      i.autocomplete = auto;
      i.required = true;
      var l = el("label", "b", text);
      l.htmlFor = id;
      part.appendChild(l);
      part.appendChild(i);
      asked.push(l, i);
      return i;
    }
    if (campaign.onboarding && !conv) {
      name = ask("herald-name", "text", "name", "Your name");
      name.maxLength = 100;
      email = ask("herald-email", "email", "email", "Your email");
    }
    var send = el("button", "s", "Send");
    send.type = "submit";
    var err = el("p", "e");
    err.setAttribute("role", "alert");
    function submit() {
      var body = input.value.trim();
      if (!body || send.disabled) return;
      send.disabled = true;
      err.textContent = "";
      var done = conv ? call("POST", "/messages", { body: body }).then(add)
        : call("POST", "", { campaign_id: campaign.id, page_url: window.location.href, body: body, email: email ? email.value : undefined, name: name ? name.value : undefined })
          .then(function (r) {
            conv = { token: r.token, campaign: campaign.id, greeting: campaign.greeting };
            save("conv", conv);
            // Asked once: the chat goes on under the visitor's name.
            asked.forEach(function (n) { n.remove(); });
            r.messages.forEach(add);
            listen();
          });
      done.then(function () { input.value = ""; }, function (x) { err.textContent = x.message; })
        .then(function () { send.disabled = false; input.focus(); });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
    });
    form.appendChild(input);
    form.appendChild(send);
    part.appendChild(list);
    part.appendChild(label);
    part.appendChild(form);
    part.appendChild(err);
    return part;
  }
  function resume() {
    render({ id: conv.campaign, greeting: conv.greeting });
    call("GET", "/messages").then(function (v) {
      v.messages.forEach(add);
      listen();
    }, function (x) {
      // A conversation this Herald no longer knows (or a token it no longer signs): forget it.
      if (x.status === 401 || x.status === 403 || x.status === 404) {
        conv = null;
        save("conv", null);
        if (ui && ui.parentNode) ui.parentNode.removeChild(ui);
        ui = null;
      }
    });
  }

  function dismiss(id) {
    count("closed", id);
    var closed = load("closed", []);
    if (closed.indexOf(id) < 0) closed.push(id);
    save("closed", closed);
    if (ui && ui.parentNode) ui.parentNode.removeChild(ui);
    ui = null;
    if (es) { es.close(); es = null; }
  }

  function start(config) {
    if (conv && load("closed", []).indexOf(conv.campaign) < 0) return resume();
    var campaigns = (config.campaigns || []).slice().sort(function (a, b) { return a.order - b.order; });
    var max = config.max_per_visit;
    check = function () {
      if (ui) return;
      var closed = load("closed", []);
      visit = load("visit", visit);
      var pick = null;
      for (var i = 0; i < campaigns.length; i++) {
        var c = campaigns[i];
        if (closed.indexOf(c.id) >= 0) continue;
        if (c.triggers.length === 0 || !c.triggers.every(holds)) continue;
        count("eligible", c.id);
        if (pick) continue;
        var seen = visit.shown.indexOf(c.id) >= 0;
        if (!seen && max !== null && max !== undefined && visit.shown.length >= max) continue;
        pick = c;
        if (!seen) visit.shown.push(c.id);
      }
      if (!pick) return;
      visit.last = now();
      save("visit", visit);
      count("shown", pick.id);
      render(pick);
    };
    campaigns.forEach(function (c) {
      c.triggers.forEach(function (t) {
        if (t.kind === "time_on_page") setTimeout(check, t.seconds * 1000 + 20);
      });
    });
    check();
  }

  fetch(base + "/chat/v1/sites/" + encodeURIComponent(key) + "/config", { credentials: "omit" })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (config) {
      if (!config) return;
      if (document.body) start(config);
      else document.addEventListener("DOMContentLoaded", function () { start(config); });
    })
    .catch(function () { /* Herald unreachable: show nothing */ });
})();
