// Form helpers (progressive enhancement: every form works without them).
// 1. Copy buttons: <button class="copy" data-copy="ID" hidden> copies the text of #ID and
//    says so in the nearest .copy-status; without this script the text stays selectable.
// 2. Filters: <input data-filter="LIST"> (in a hidden wrapper, shown here) shows only the
//    [data-filter-text] items of #LIST that contain every word typed, and only the
//    [data-filter-group] groups that still show one; a checked item always stays shown.
(function () {
  "use strict";

  function say(btn, text) {
    var root = btn.closest("section") || document;
    var s = root.querySelector(".copy-status");
    if (s) { s.textContent = text; }
  }

  function copy(btn) {
    var el = document.getElementById(btn.getAttribute("data-copy"));
    if (!el) { return; }
    var text = el.textContent;
    function select() {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      say(btn, ok ? "Copied." : "Selected: press Ctrl+C (or ⌘C) to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { say(btn, "Copied."); }, select);
    } else {
      select();
    }
  }

  function filter(input) {
    var list = document.getElementById(input.getAttribute("data-filter"));
    if (!list) { return; }
    var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var any = false;
    list.querySelectorAll("[data-filter-text]").forEach(function (item) {
      var text = item.getAttribute("data-filter-text").toLowerCase();
      var show = item.querySelector("input:checked") !== null || words.every(function (w) { return text.indexOf(w) >= 0; });
      item.hidden = !show;
      any = any || show;
    });
    list.querySelectorAll("[data-filter-group]").forEach(function (g) {
      g.hidden = g.querySelector("[data-filter-text]:not([hidden])") === null;
    });
    var none = list.querySelector(".db-none");
    if (none) { none.hidden = any; }
  }

  function setup(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (b) { b.hidden = false; });
    root.querySelectorAll("input[data-filter]").forEach(function (input) {
      var wrap = input.closest("[hidden]");
      if (wrap) { wrap.hidden = false; }
      if (input.value) { filter(input); }
    });
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.copy[data-copy]");
    if (b) { e.preventDefault(); copy(b); }
  });
  document.addEventListener("input", function (e) {
    if (e.target.matches && e.target.matches("input[data-filter]")) { filter(e.target); }
  });
  setup(document);
  // A page updated in place (live.js) gets new content: enhance it too.
  var main = document.getElementById("main");
  if (main && window.MutationObserver) {
    new MutationObserver(function () { setup(main); }).observe(main, { childList: true });
  }
})();
