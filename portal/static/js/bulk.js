// Bulk job page: follow a running job's progress every second, then reload once to show the report
// (or the notice that the job stopped).
// Progressive enhancement only: without this file the page has a Refresh link.
"use strict";
(function () {
  var box = document.getElementById("bulk-job");
  if (!box || box.getAttribute("data-done") === "true") {
    return;
  }
  var url = box.getAttribute("data-progress-url");
  var bar = document.getElementById("bulk-progress");
  var failures = 0;

  function show(data) {
    if (bar) {
      bar.max = data.total || 1;
      bar.value = data.processed;
      bar.textContent = data.processed + " / " + data.total;
    }
    var cells = box.querySelectorAll("[data-count]");
    for (var i = 0; i < cells.length; i++) {
      var name = cells[i].getAttribute("data-count");
      if (Object.prototype.hasOwnProperty.call(data, name)) {
        cells[i].textContent = String(data[name]);
      }
    }
  }

  function poll() {
    window.portalFetchJson(url)
      .then(function (data) {
        failures = 0;
        show(data);
        if (data.done || data.stale) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        failures += 1;
        if (failures < 10) {
          window.setTimeout(poll, 2000);
        }
      });
  }

  window.setTimeout(poll, 1000);
})();
