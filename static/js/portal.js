/* The portal's own behaviour. A file, never inline: the pages run under a strict
   Content-Security-Policy, so there are no <script> blocks and no on* attributes in the
   HTML. Everything here is an enhancement: every form also works without JavaScript. */
(function () {
  "use strict";

  // CSS hides the no-JavaScript fallbacks (.js-hidden) once this class is set.
  document.documentElement.classList.add("js");

  // <select data-autosubmit> submits its form when changed (the language switch, filters).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit") && target.form) {
      if (typeof target.form.requestSubmit === "function") {
        target.form.requestSubmit();
      } else {
        target.form.submit();
      }
    }
  });

  // <button data-confirm="..."> asks before submitting (releasing a hold, for example).
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-confirm]") : null;
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // After htmx swaps a panel in, move focus to the first error or the swapped panel's
  // status line, so keyboard and screen-reader users learn what happened.
  document.addEventListener("htmx:afterSwap", function (event) {
    var root = event.detail && event.detail.target;
    if (!root) {
      return;
    }
    var focusable = root.querySelector("[aria-invalid='true'], .errorlist, [data-focus-after-swap]");
    if (focusable) {
      if (!focusable.hasAttribute("tabindex") && !/^(INPUT|SELECT|TEXTAREA|BUTTON|A)$/.test(focusable.tagName)) {
        focusable.setAttribute("tabindex", "-1");
      }
      focusable.focus();
    }
  });

  // <details data-close-on-success> closes when the server says the action succeeded
  // (HX-Trigger: caseUpdated), and its panel is reloaded by the caller.
  document.body && document.body.addEventListener("caseUpdated", function () {
    document.querySelectorAll("details[data-close-on-success][open]").forEach(function (details) {
      details.open = false;
    });
  });
})();
