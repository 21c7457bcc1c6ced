// Sharing page: the form shows only the groups of fields the chosen direction uses, and the picture above it
// follows the choice (with a note while the choice is not saved).
// Progressive enhancement only: without this file every group shows, each under a legend naming its direction,
// and the picture shows the saved direction.
"use strict";
(function () {
  var form = document.querySelector("[data-sharing-form]");
  if (!form) {
    return;
  }
  var radios = form.querySelectorAll("input[name=direction]");
  var groups = form.querySelectorAll("[data-directions]");
  var picture = document.querySelector("[data-sharing-picture]");

  function chosen() {
    for (var i = 0; i < radios.length; i++) {
      if (radios[i].checked) {
        return radios[i].value;
      }
    }
    return picture ? picture.getAttribute("data-saved") : "off";
  }

  // A group with an error message stays in view whatever is chosen: the error summary links to its fields.
  function showFields(direction) {
    for (var i = 0; i < groups.length; i++) {
      var serves = groups[i].getAttribute("data-directions").split(" ").indexOf(direction) !== -1;
      groups[i].hidden = !serves && !groups[i].querySelector(".field-error");
    }
  }

  function drawPicture(direction) {
    if (!picture) {
      return;
    }
    picture.className = picture.className.replace(/\bsharing-(off|apim_to_is|is_to_apim)\b/, "sharing-" + direction);
    var label = picture.querySelector(".arrow-label");
    if (label) {
      label.textContent = picture.getAttribute("data-push-" + direction);
    }
    var note = picture.querySelector("[data-picture-note]");
    if (note) {
      var unsaved = direction !== picture.getAttribute("data-saved");
      note.textContent = unsaved ? "The picture shows your choice, " +
        picture.getAttribute("data-short-" + direction) + ": not saved yet." : "";
      note.hidden = !unsaved;
    }
  }

  showFields(chosen());
  for (var i = 0; i < radios.length; i++) {
    radios[i].addEventListener("change", function (event) {
      showFields(event.target.value);
      drawPicture(event.target.value);
    });
  }
})();
