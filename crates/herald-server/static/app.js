// Herald admin: the little behaviour htmx does not cover. No framework, no build step.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Confirm destructive actions: <form data-confirm="Stop this outreach?">.
  document.body.addEventListener("submit", (e) => {
    const msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // A form answered 422 comes back with its errors: let htmx swap it in like a success.
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    if (e.detail.xhr && e.detail.xhr.status === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  // Upload progress of htmx multipart forms (hx-encoding="multipart/form-data"), whether the
  // form itself posts (launch) or one of its buttons does (review).
  const uploadProgress = () => document.getElementById("upload-progress");
  const uploadForm = (e) => {
    const bar = uploadProgress();
    const t = e.target;
    const form = t && t.closest ? t.closest("form") : null;
    return bar && form && form.contains(bar) ? form : null;
  };
  const submits = (form, disabled) =>
    form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = disabled; });
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    const form = uploadForm(e);
    if (!form) return;
    const bar = uploadProgress();
    bar.value = 0;
    bar.textContent = "0%";
    bar.hidden = false;
    const err = document.getElementById("upload-error");
    if (err) err.hidden = true;
    submits(form, true);
  });
  document.body.addEventListener("htmx:xhr:progress", (e) => {
    const bar = uploadProgress();
    if (!uploadForm(e) || !e.detail.lengthComputable || !e.detail.total) return;
    // The download of the answer reports progress too; the bar only moves forward.
    const pct = Math.round((e.detail.loaded / e.detail.total) * 100);
    if (pct > bar.value) {
      bar.value = pct;
      bar.textContent = pct + "%";
    }
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    const form = uploadForm(e);
    if (!form) return;
    // A review came back, or a refusal (a launch that went through leaves the page): the form
    // may be used again.
    uploadProgress().hidden = true;
    submits(form, false);
  });
  const uploadFailed = (e, text) => {
    const form = uploadForm(e);
    if (!form) return;
    uploadProgress().hidden = true;
    submits(form, false);
    const err = document.getElementById("upload-error");
    if (err) {
      err.textContent = text;
      err.hidden = false;
    }
  };
  document.body.addEventListener("htmx:responseError", (e) => {
    const xhr = e.detail.xhr;
    const said = xhr && xhr.getResponseHeader("content-type") &&
      xhr.getResponseHeader("content-type").startsWith("text/plain") ? " " + xhr.responseText : "";
    uploadFailed(e, "The upload was not accepted (" + (xhr ? xhr.status : "error") + ")." + said);
  });
  document.body.addEventListener("htmx:sendError", (e) => {
    uploadFailed(e, "The upload did not reach Herald; check the connection and try again.");
  });

  // Live progress of an outreach: <section data-events-url="/outreaches/{id}/events">.
  const statusLabels = {
    scheduled: "Scheduled",
    in_progress: "In Progress",
    completed: "Completed",
    stopped: "Stopped",
  };
  document.querySelectorAll("[data-events-url]").forEach((el) => {
    if (!window.EventSource) return;
    const source = new EventSource(el.getAttribute("data-events-url"));
    source.addEventListener("progress", (msg) => {
      let ev;
      try {
        ev = JSON.parse(msg.data);
      } catch (_) {
        return;
      }
      const status = document.getElementById("status");
      if (status && ev.status) {
        let text = statusLabels[ev.status] || ev.status;
        // As the server words it: a completed outreach says what did not go well.
        if (ev.status === "completed" && ev.progress) {
          const left = [];
          if (ev.progress.failed) left.push(ev.progress.failed + " failed");
          if (ev.progress.uncertain) left.push(ev.progress.uncertain + " uncertain");
          if (left.length) text += " \u2014 " + left.join(", ");
        }
        status.textContent = text;
        status.setAttribute("data-status", ev.status);
        status.className = status.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + ev.status;
      }
      const progress = document.getElementById("progress");
      if (progress && ev.label) progress.textContent = ev.label + " sent";
      if (ev.progress) {
        el.querySelectorAll("[data-progress]").forEach((dd) => {
          const v = ev.progress[dd.getAttribute("data-progress")];
          if (v !== undefined) dd.textContent = String(v);
        });
      }
      if (ev.status === "completed" || ev.status === "stopped") {
        // Final: the server ends the stream; closing keeps EventSource from reconnecting.
        source.close();
        const stop = document.getElementById("stop-form");
        if (stop) stop.remove();
      }
    });
    // The server's own `error` event (the outreach cannot be read any more) carries data; a
    // dropped connection does not, and EventSource reconnects by itself.
    source.addEventListener("error", (msg) => {
      if (msg.data) source.close();
    });
  });
  // Live parts of a page (the inbox list, a conversation): <div data-live-url="/inbox/events"
  // data-live-event="list">. Each event's data is the part's new HTML, rendered and escaped
  // by the server; the browser reconnects by itself after a dropped connection.
  document.querySelectorAll("[data-live-url]").forEach((el) => {
    if (!window.EventSource) return;
    const source = new EventSource(el.getAttribute("data-live-url"));
    let pending = null;
    const busy = () => el.contains(document.activeElement) &&
      ["SELECT", "INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
    source.addEventListener(el.getAttribute("data-live-event"), (msg) => {
      // A choice being made in the part is not swept away: the news waits until it is left.
      if (busy()) pending = msg.data;
      else el.innerHTML = msg.data;
    });
    el.addEventListener("focusout", () => {
      setTimeout(() => {
        if (pending !== null && !busy()) {
          el.innerHTML = pending;
          pending = null;
        }
      }, 0);
    });
  });
  // A new campaign starts in the admin's own time zone (the server cannot know it).
  const zone = document.querySelector("input[data-browser-zone]");
  if (zone && zone.value === "UTC" && window.Intl) {
    const own = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (own) zone.value = own;
  }
});
