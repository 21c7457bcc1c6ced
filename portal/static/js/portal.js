// Tenant Portal: progressive enhancement only; every page works without this file.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Tenant form: show only the chosen identity provider type's fields, at once. Without this script the server
// renders the chosen type's section and a "Show fields for this type" button does the same by a round trip.
document.addEventListener("DOMContentLoaded", function () {
  var select = document.querySelector("[data-idp-select]");
  if (!select) {
    return;
  }
  var sections = document.querySelectorAll("[data-idp-types]");
  function showChosen() {
    for (var i = 0; i < sections.length; i++) {
      var types = sections[i].getAttribute("data-idp-types").split(" ");
      sections[i].hidden = types.indexOf(select.value) === -1;
    }
  }
  var refreshers = document.querySelectorAll("[data-idp-refresh]");
  for (var j = 0; j < refreshers.length; j++) {
    refreshers[j].hidden = true;
  }
  select.addEventListener("change", showChosen);
  showChosen();
});

// A table or preformatted block wider than its box scrolls inside itself (see portal.css): make it reachable and
// scrollable from the keyboard, and name it for screen readers (WCAG 2.1.1; axe's scrollable-region-focusable).
function markScrollableRegions() {
  var regions = document.querySelectorAll("main table.table, main pre");
  for (var i = 0; i < regions.length; i++) {
    var region = regions[i];
    var scrolls = region.scrollWidth > region.clientWidth + 1;
    if (scrolls && !region.hasAttribute("tabindex")) {
      region.setAttribute("tabindex", "0");
      region.setAttribute("data-scroll-region", "");
      if (region.tagName === "PRE" && !region.hasAttribute("aria-label")) {
        region.setAttribute("role", "region");
        region.setAttribute("aria-label", "Scrollable text");
      }
    } else if (!scrolls && region.hasAttribute("data-scroll-region")) {
      region.removeAttribute("tabindex");
      region.removeAttribute("data-scroll-region");
    }
  }
}
document.addEventListener("DOMContentLoaded", markScrollableRegions);
window.addEventListener("resize", markScrollableRegions);

// JSON from the portal's own status endpoints (bulk.js, sync.js): never cached; a non-2xx answer is an error.
window.portalFetchJson = function (url) {
  return fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
    .then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    });
};
