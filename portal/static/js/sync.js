// Live sync state, progressive enhancement: without this file every page shows the state as of its loading.
//
// Tenant list ([data-sync-states-url]): polls /sync/states for the tenants shown and updates their badges.
// Tenant page and sync page ([data-sync-live-url]): polls the part's JSON (/sync/tenants/<id>/live, /sync/live),
// swaps the part (rendered by the server's own template) when its version changes, and puts the new state into
// the part's polite live region, so a screen reader hears "IS 7: synced. API Manager: retrying, ...".
// Both poll every 2 s while something is pending, running or retrying, stop when everything has settled, pause
// while the tab is hidden, and give up after repeated errors.
"use strict";
(function () {
  var EVERY_MS = 2000;
  var ERROR_MS = 6000;
  var MAX_ROUNDS = 900;
  var MAX_FAILURES = 5;

  // One poller: fetch(url) -> done(data) returns true while there is more to wait for.
  function poller(urlOf, done) {
    var rounds = 0;
    var failures = 0;
    var timer = null;
    var waitingForTab = false;

    function schedule(ms) {
      timer = window.setTimeout(tick, ms);
    }

    function tick() {
      timer = null;
      if (document.hidden) {
        waitingForTab = true;  // visibilitychange resumes
        return;
      }
      rounds += 1;
      window.portalFetchJson(urlOf())
        .then(function (data) {
          failures = 0;
          if (done(data) && rounds < MAX_ROUNDS) {
            schedule(EVERY_MS);
          }
        })
        .catch(function () {
          failures += 1;
          if (failures < MAX_FAILURES) {
            schedule(ERROR_MS);
          }
        });
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && waitingForTab && timer === null) {
        waitingForTab = false;
        schedule(0);
      }
    });
    return {start: function () { schedule(EVERY_MS); }};
  }

  // --- The tenant list: badges only -----------------------------------------------------------------------------

  function listBadges(box) {
    var rows = box.querySelectorAll("[data-tenant-key]");

    function unsettled() {
      var badges = box.querySelectorAll("[data-sync-status]");
      for (var i = 0; i < badges.length; i++) {
        var status = badges[i].getAttribute("data-sync-status");
        if (status === "pending" || status === "running" || badges[i].getAttribute("data-sync-retrying") === "true") {
          return true;
        }
      }
      return false;
    }

    function show(data) {
      for (var i = 0; i < rows.length; i++) {
        var states = data[rows[i].getAttribute("data-tenant-key")] || {};
        var badges = rows[i].querySelectorAll("[data-sync-product]");
        for (var j = 0; j < badges.length; j++) {
          var state = states[badges[j].getAttribute("data-sync-product")];
          if (!state) {
            continue;
          }
          badges[j].setAttribute("data-sync-status", state.status);
          badges[j].setAttribute("data-sync-retrying", state.retrying ? "true" : "false");
          badges[j].className = "badge sync-badge " + (state.badge || "");
          badges[j].title = state.title;
          var text = badges[j].querySelector("[data-sync-text]");
          if (text) {
            text.textContent = state.word || state.status;
          }
        }
      }
      return unsettled();
    }

    function url() {
      var query = [];
      for (var i = 0; i < rows.length; i++) {
        query.push("t=" + encodeURIComponent(rows[i].getAttribute("data-tenant-key")));
      }
      return box.getAttribute("data-sync-states-url") + "?" + query.join("&");
    }

    if (rows.length && unsettled()) {
      poller(url, show).start();
    }
  }

  // --- The tenant page's card and the sync page: the whole live part ----------------------------------------------

  // The control that had the focus, found again in the new part by its id, or its form's action and its text.
  function focusKey(part) {
    var active = document.activeElement;
    if (!active || active === document.body || !part.contains(active)) {
      return null;
    }
    return {id: active.id, action: active.form ? active.form.getAttribute("action") : null,
            href: active.getAttribute("href"), text: active.textContent};
  }

  function refocus(part, key) {
    if (!key) {
      return;
    }
    var candidates = part.querySelectorAll("a, button, input, [tabindex]");
    for (var i = 0; i < candidates.length; i++) {
      var c = candidates[i];
      var action = c.form ? c.form.getAttribute("action") : null;
      if ((key.id && c.id === key.id) || (!key.id && action === key.action && c.getAttribute("href") === key.href
                                          && c.textContent === key.text)) {
        c.focus();
        return;
      }
    }
    var heading = part.closest("[data-sync-live-url]").querySelector("h2");
    if (heading) {  // what had the focus is gone (Retry, while a job runs): keep the reader in this card
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  function livePart(box) {
    var part = box.querySelector("[data-sync-live]");
    var announce = box.querySelector("[data-sync-announce]");
    var version = box.getAttribute("data-sync-version");
    var said = null;

    function show(data) {
      if (data.version !== version) {
        var key = focusKey(part);
        part.innerHTML = data.html;
        version = data.version;
        box.setAttribute("data-sync-version", version);
        refocus(part, key);
        if (announce && data.announce && data.announce !== said) {
          said = data.announce;
          announce.textContent = data.announce;
        }
      }
      box.setAttribute("data-sync-settled", data.settled ? "true" : "false");
      if (typeof window.markScrollableRegions === "function") {
        window.markScrollableRegions();
      }
      return !data.settled;
    }

    if (part && box.getAttribute("data-sync-settled") !== "true") {
      poller(function () { return box.getAttribute("data-sync-live-url"); }, show).start();
    }
  }

  var lists = document.querySelectorAll("[data-sync-states-url]");
  for (var i = 0; i < lists.length; i++) {
    listBadges(lists[i]);
  }
  var parts = document.querySelectorAll("[data-sync-live-url]");
  for (var j = 0; j < parts.length; j++) {
    livePart(parts[j]);
  }
})();
