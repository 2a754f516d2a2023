/* django-webhooks portal: copy buttons. Every page works without this file; it only adds
   conveniences (the buttons stay hidden without JavaScript). No inline script, so a strict
   Content-Security-Policy (script-src 'self') applies. */
(function () {
  "use strict";
  function copyText(button) {
    if (button.dataset.copyText) { return button.dataset.copyText; }
    var target = document.querySelector(button.dataset.copy);
    return target ? target.textContent : "";
  }
  function setUp(root) {
    if (!navigator.clipboard) { return; }
    root.querySelectorAll(".dwh-copy[hidden]").forEach(function (button) {
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(copyText(button)).then(function () {
          button.textContent = button.dataset.copied || "✓ " + label;
          setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  document.addEventListener("htmx:afterSwap", function (event) { setUp(event.target); });
})();
