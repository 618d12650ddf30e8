/* Herald chat widget: shows a chat campaign's greeting when its triggers hold.
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
      "box-shadow:0 6px 24px rgba(0,0,0,.18);font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
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
    root.appendChild(style);
    root.appendChild(box);
    document.body.appendChild(host);
    // Set after the live region is in the document, so screen readers announce it.
    setTimeout(function () { text.textContent = campaign.greeting; }, 0);
    ui = host;
  }
  function dismiss(id) {
    var closed = load("closed", []);
    if (closed.indexOf(id) < 0) closed.push(id);
    save("closed", closed);
    if (ui && ui.parentNode) ui.parentNode.removeChild(ui);
    ui = null;
  }

  function start(config) {
    var campaigns = (config.campaigns || []).slice().sort(function (a, b) { return a.order - b.order; });
    var max = config.max_per_visit;
    check = function () {
      if (ui) return;
      var closed = load("closed", []);
      visit = load("visit", visit);
      for (var i = 0; i < campaigns.length; i++) {
        var c = campaigns[i];
        if (closed.indexOf(c.id) >= 0) continue;
        var seen = visit.shown.indexOf(c.id) >= 0;
        if (!seen && max !== null && max !== undefined && visit.shown.length >= max) continue;
        if (c.triggers.length === 0 || !c.triggers.every(holds)) continue;
        if (!seen) visit.shown.push(c.id);
        visit.last = now();
        save("visit", visit);
        render(c);
        return;
      }
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
