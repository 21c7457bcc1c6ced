// Forms: progressive enhancement only; every form works without this file.
// - A page that comes back with errors moves focus to its error summary (macros render_form_errors), and each
//   link in the summary moves focus to its field (showing the stepper's section that holds it).
// - A form with [data-stepper] shows one section ([data-step]) at a time with Back / Next. Next only asks the
//   browser's own `required` check of the section's visible fields; everything stays one form and one POST, and
//   after a failed submission the stepper opens on the section of the first error.
"use strict";
(function () {
  function focusable(element) {
    if (/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(element.tagName)) {
      return element;
    }
    return element.querySelector("input:not([type=hidden]), select, textarea") || element;
  }

  function stepperOf(element) {
    var step = element.closest("[data-step]");
    var form = step && step.closest("[data-stepper]");
    return form && form.portalStepper ? {stepper: form.portalStepper, step: step} : null;
  }

  function revealAndFocus(element) {
    var found = stepperOf(element);
    if (found) {
      found.stepper.show(found.step, false);
    }
    var target = focusable(element);
    if (target === element && !element.hasAttribute("tabindex")) {
      element.setAttribute("tabindex", "-1");
    }
    target.focus();
  }

  // A person who chose "all steps on one page" keeps that choice for the browser tab.
  function remember(all) {
    try {
      if (all) {
        window.sessionStorage.setItem("portalStepperAll", "1");
      } else {
        window.sessionStorage.removeItem("portalStepperAll");
      }
    } catch (ignored) { /* storage refused: the choice lasts for this page only */ }
  }

  function remembered() {
    try {
      return window.sessionStorage.getItem("portalStepperAll") === "1";
    } catch (ignored) {
      return false;
    }
  }

  function Stepper(form) {
    var self = this;
    this.form = form;
    this.steps = Array.prototype.slice.call(form.querySelectorAll("[data-step]"));
    this.nav = form.querySelector("[data-step-nav]");
    this.status = form.querySelector("[data-step-status]");
    this.list = form.querySelector("[data-step-list]");
    this.current = 0;
    form.classList.add("stepping");
    var head = form.querySelector("[data-step-head]");
    if (head) {
      head.hidden = false;
    }
    if (this.nav) {
      this.nav.hidden = false;
    }
    if (this.list) {
      this.list.addEventListener("click", function (event) {
        var link = event.target.closest("a[href^='#']");
        var step = link && form.querySelector(link.getAttribute("href"));
        if (step && step.hasAttribute("data-step")) {
          event.preventDefault();
          self.show(step, true);
        }
      });
    }
    this.all = form.querySelector("[data-step-all]");
    if (this.all) {
      this.all.addEventListener("click", function () {
        var all = self.all.getAttribute("aria-pressed") !== "true";
        remember(all);
        if (all) {
          self.showAll();
        } else {
          self.show(self.steps[self.current], true);
        }
      });
    }
    form.addEventListener("click", function (event) {
      var button = event.target.closest("[data-step-move]");
      if (!button) {
        return;
      }
      event.preventDefault();
      var move = parseInt(button.getAttribute("data-step-move"), 10);
      if (move > 0 && !self.sectionValid(self.steps[self.current])) {
        return;
      }
      self.show(self.steps[Math.max(0, Math.min(self.steps.length - 1, self.current + move))], true);
    });
  }

  // Only the browser's own checks of the fields shown (`required` and the like), never rules of the portal's.
  Stepper.prototype.sectionValid = function (step) {
    var fields = step.querySelectorAll("input, select, textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].offsetParent !== null && fields[i].willValidate && !fields[i].checkValidity()) {
        fields[i].reportValidity();
        return false;
      }
    }
    return true;
  };

  // Every step on one page, as without the script (for people who prefer it, and to fill the form in one go).
  Stepper.prototype.showAll = function () {
    for (var i = 0; i < this.steps.length; i++) {
      this.steps[i].hidden = false;
    }
    var moves = this.form.querySelectorAll("[data-step-move], [data-step-final]");
    for (var j = 0; j < moves.length; j++) {
      moves[j].hidden = moves[j].hasAttribute("data-step-move");
    }
    if (this.list) {
      this.list.hidden = true;
    }
    if (this.status) {
      this.status.textContent = "All steps on one page";
    }
    this.all.setAttribute("aria-pressed", "true");
    this.all.textContent = "Show one step at a time";
    this.form.classList.remove("stepping");
  };

  Stepper.prototype.show = function (step, moveFocus) {
    var index = this.steps.indexOf(step);
    if (index < 0) {
      return;
    }
    this.current = index;
    this.form.classList.add("stepping");
    if (this.list) {
      this.list.hidden = false;
    }
    if (this.all) {
      this.all.setAttribute("aria-pressed", "false");
      this.all.textContent = "Show all steps on one page";
    }
    for (var i = 0; i < this.steps.length; i++) {
      this.steps[i].hidden = i !== index;
    }
    var first = index === 0, last = index === this.steps.length - 1;
    var back = this.form.querySelector("[data-step-move='-1']");
    var next = this.form.querySelector("[data-step-move='1']");
    if (back) {
      back.hidden = first;
    }
    if (next) {
      next.hidden = last;
    }
    var submits = this.form.querySelectorAll("[data-step-final]");
    for (var j = 0; j < submits.length; j++) {
      submits[j].hidden = !last;
    }
    if (this.list) {
      var links = this.list.querySelectorAll("a");
      for (var k = 0; k < links.length; k++) {
        if (k === index) {
          links[k].setAttribute("aria-current", "step");
        } else {
          links[k].removeAttribute("aria-current");
        }
      }
    }
    var title = step.getAttribute("data-step-title") || "";
    if (this.status) {
      this.status.textContent = "Step " + (index + 1) + " of " + this.steps.length + ": " + title;
    }
    if (moveFocus) {
      var heading = step.querySelector("legend, h2") || step;
      var anchor = step.querySelector("[data-step-focus]") || heading;
      if (!anchor.hasAttribute("tabindex")) {
        anchor.setAttribute("tabindex", "-1");
      }
      anchor.focus();
    }
    if (this.form.dispatchEvent) {
      this.form.dispatchEvent(new CustomEvent("portal:step", {bubbles: true, detail: {index: index}}));
    }
  };

  // The review step lists what the other steps hold, secrets only as typed, kept or empty: never their values.
  function fillReview(form) {
    var review = form.querySelector("[data-review]");
    if (!review) {
      return;
    }
    review.textContent = "";
    var fields = form.querySelectorAll("[data-step]:not(#step-review) .field");
    for (var i = 0; i < fields.length; i++) {
      var input = fields[i].querySelector("input, select, textarea");
      var label = fields[i].querySelector("label");
      if (!input || !label || fields[i].closest(".idp-section[hidden]") || input.type === "hidden") {
        continue;
      }
      var value;
      if (input.type === "password" || input.hasAttribute("data-secret")) {
        var help = fields[i].querySelector(".help");
        value = input.value ? "typed (not shown)" : (help && /^kept|^set/.test(help.textContent) ? help.textContent : "—");
      } else if (input.type === "checkbox") {
        value = input.checked ? "yes" : "no";
      } else if (input.tagName === "SELECT") {
        value = input.selectedIndex >= 0 ? input.options[input.selectedIndex].text : "";
      } else {
        value = input.value || "—";
      }
      var term = document.createElement("dt");
      term.textContent = label.textContent.trim();
      var detail = document.createElement("dd");
      detail.textContent = value;
      review.appendChild(term);
      review.appendChild(detail);
    }
    review.hidden = false;
  }

  document.addEventListener("portal:step", function (event) {
    var stepper = event.target.portalStepper;
    if (stepper && event.detail.index === stepper.steps.length - 1) {
      fillReview(event.target);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-stepper]");
    for (var i = 0; i < forms.length; i++) {
      var stepper = forms[i].portalStepper = new Stepper(forms[i]);
      var firstError = forms[i].querySelector("[data-step] .has-error");
      if (remembered() && stepper.all) {
        stepper.showAll();
      } else {
        stepper.show(firstError ? firstError.closest("[data-step]") : stepper.steps[0], false);
      }
    }
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      var found = stepperOf(summary);
      if (found) {
        found.stepper.show(found.step, false);
      }
      summary.focus();
    }
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-field-link]");
    if (!link) {
      return;
    }
    var target = document.getElementById(link.getAttribute("href").slice(1));
    if (target) {
      event.preventDefault();
      revealAndFocus(target);
    }
  });
}());
