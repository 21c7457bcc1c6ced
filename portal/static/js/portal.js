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

// Top bar on phones: the menu folds behind the Menu button (portal.css shows the button only on narrow screens; Sign
// out stays outside the menu). Without this script the button stays hidden and the menu simply wraps.
document.addEventListener("DOMContentLoaded", function () {
  var toggle = document.querySelector(".menu-toggle");
  var menu = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
  if (!menu) {
    return;
  }
  function setOpen(open) {
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  setOpen(false);
  toggle.hidden = false;
  toggle.addEventListener("click", function () {
    setOpen(toggle.getAttribute("aria-expanded") !== "true");
  });
  menu.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && toggle.offsetParent !== null) {
      setOpen(false);
      toggle.focus();
    }
  });
});

// Copy buttons: each value marked data-copy="<what it is>" (a thumbprint, a TOML block, a one-time key...) gets a
// "Copy" button after it; the result is announced in a polite live region. Values stay selectable without this.
function portalCopyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  return new Promise(function (resolve, reject) {  // plain HTTP on a non-local address: the older way
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand("copy");
    document.body.removeChild(area);
    if (copied) {
      resolve();
    } else {
      reject(new Error("copy refused"));
    }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  var sources = document.querySelectorAll("[data-copy]");
  if (!sources.length) {
    return;
  }
  var status = document.createElement("div");
  status.className = "offscreen";
  status.id = "copy-status";
  status.setAttribute("role", "status");
  document.body.appendChild(status);
  function announce(text) {
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);  // a repeated message is announced again
  }
  Array.prototype.forEach.call(sources, function (source) {
    var what = source.getAttribute("data-copy");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy-button";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy " + what);
    source.insertAdjacentElement("afterend", button);
    button.addEventListener("click", function () {
      var text = source.tagName === "INPUT" || source.tagName === "TEXTAREA" ? source.value : source.textContent;
      portalCopyText(text.trim()).then(function () {
        button.textContent = "Copied";
        button.classList.add("copied");
        announce("Copied " + what + " to the clipboard.");
        window.setTimeout(function () {
          button.textContent = "Copy";
          button.classList.remove("copied");
        }, 2000);
      }, function () {
        announce("Could not copy " + what + ": select it and copy it by hand.");
      });
    });
  });
});
