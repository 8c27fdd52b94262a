// Timebox console: the one script every page loads (no inline script: the CSP forbids it).
// 1. Remembers the viewer's time zone in a cookie, so the server renders times in it.
// 2. Keeps a page marked data-live current: it reloads the page's content in place when
//    the server's event stream says something changed (or every N seconds without it).
(function () {
  "use strict";
  var tz = "";
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) {}
  var have = (document.cookie.match(/(?:^|; )tz=([^;]*)/) || [])[1];
  if (tz && decodeURIComponent(have || "") !== tz) {
    document.cookie = "tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; samesite=lax";
    if (!have) { location.reload(); return; }
  }
})();
