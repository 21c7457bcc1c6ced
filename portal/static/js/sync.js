// Tenant list and tenant page: keep the per-product sync badges current while changes travel to IS 7 and
// API Manager. Polls /sync/states for the tenants shown, every 3 s while a badge is pending or running (or failed
// with a next attempt), and stops when everything has settled. Progressive enhancement: without this file the
// page shows the state as of its loading.
"use strict";
(function () {
  var box = document.querySelector("[data-sync-states-url]");
  if (!box) {
    return;
  }
  var url = box.getAttribute("data-sync-states-url");
  var rows = box.querySelectorAll("[data-tenant-key]");
  var rounds = 0;
  var failures = 0;

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
        badges[j].setAttribute("data-sync-retrying", state.status === "failed" && state.retrying ? "true" : "false");
        badges[j].className = "badge sync-badge " + (state.badge || "");
        badges[j].title = state.title;
        var text = badges[j].querySelector("[data-sync-text]");
        if (text) {
          text.textContent = state.status;
        }
      }
    }
  }

  function poll() {
    rounds += 1;
    var query = [];
    for (var i = 0; i < rows.length; i++) {
      query.push("t=" + encodeURIComponent(rows[i].getAttribute("data-tenant-key")));
    }
    window.portalFetchJson(url + "?" + query.join("&"))
      .then(function (data) {
        failures = 0;
        show(data);
        if (unsettled() && rounds < 400) {
          window.setTimeout(poll, 3000);
        }
      })
      .catch(function () {
        failures += 1;
        if (failures < 5) {
          window.setTimeout(poll, 6000);
        }
      });
  }

  if (rows.length && unsettled()) {
    window.setTimeout(poll, 3000);
  }
})();
