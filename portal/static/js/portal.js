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
