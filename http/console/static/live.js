// Live updates of a page marked <main data-live="N"> (see http/console/live.go).
// The server's event stream (/events) says only that something changed; the page then
// fetches itself again (only its content, with X-Timebox-Fragment: 1) and swaps <main>'s
// content, unless the person is editing a form in it (then a notice offers to refresh).
// Without the stream (no feed: 204, refused: 429/503, no EventSource) it fetches itself
// every N seconds instead. Hidden tabs do nothing; they refresh once when shown again.
// Other scripts that enhance the content listen for "timebox:updated" on document.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.fetch || !document.createElement("template").content) { return; }
  var every = (parseInt(main.getAttribute("data-live"), 10) || 15) * 1000;
  var debounce = 100;        // ms from a change event to the fetch (bursts make one fetch)
  var retryStream = 60000;   // ms before a refused stream is tried again

  var streaming = !!window.EventSource; // false once the server says it has no stream
  var off = false;                      // signed out: nothing more to do
  var es = null, reconnecting = false;
  var pollTimer = 0, retryTimer = 0, debounceTimer = 0;
  var inflight = false, again = false;
  var dirty = false, pending = null;
  // What the content was when it was last rendered, to skip fetches that change nothing.
  // Taken before other scripts (which load after this one) change the content.
  var shown = normal(main.innerHTML);

  // A visually hidden polite status region, for screen readers.
  var status = document.createElement("div");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  document.body.appendChild(status);
  function announce(text) {
    status.textContent = "";
    setTimeout(function () { status.textContent = text; }, 100);
  }

  // A notice above the content: "This page has changed — Refresh", or "You are signed out".
  var notice = null;
  function showNotice(text, control) {
    hideNotice();
    notice = document.createElement("div");
    notice.className = "live-notice";
    var p = document.createElement("p");
    p.textContent = text + " ";
    notice.appendChild(p);
    p.appendChild(control);
    main.parentNode.insertBefore(notice, main);
  }
  function hideNotice() {
    if (notice) { notice.parentNode.removeChild(notice); notice = null; }
  }

  // Editing: a changed field, or focus in a field one types in.
  function markDirty(ev) {
    var t = ev.target;
    if (t && t.type !== "hidden" && /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName)) { dirty = true; }
  }
  main.addEventListener("input", markDirty, true);
  main.addEventListener("change", markDirty, true);
  function editing() {
    var a = document.activeElement;
    if (!a || !main.contains(a)) { return false; }
    if (a.tagName === "TEXTAREA" || a.tagName === "SELECT" || a.isContentEditable) { return true; }
    return a.tagName === "INPUT" && !/^(button|submit|reset|checkbox|radio|hidden|image|file|range|color)$/.test(a.type);
  }

  // normal is HTML as this browser serialises it, so the page's content and a fetched
  // fragment compare equal when nothing changed.
  function normal(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.innerHTML.trim();
  }
  // words is the text people read, less what ticks by itself (<time> elements: times left).
  function words(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    var ticking = t.content.querySelectorAll("time");
    for (var i = 0; i < ticking.length; i++) { ticking[i].textContent = ""; }
    return (t.content.textContent || "").replace(/\s+/g, " ").trim();
  }

  // Where focus was, to put it back on the same control in the new content.
  function focusKey(el) {
    if (!el || el === main || !main.contains(el)) { return null; }
    if (el.id) { return { id: el.id }; }
    return { tag: el.tagName, name: el.getAttribute("name"), text: el.textContent,
      action: el.form ? el.form.getAttribute("action") : null,
      index: Array.prototype.indexOf.call(main.getElementsByTagName(el.tagName), el) };
  }
  function findKey(k) {
    if (k.id) { return document.getElementById(k.id); }
    var all = main.getElementsByTagName(k.tag);
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      if (el.getAttribute("name") === k.name && el.textContent === k.text &&
          (el.form ? el.form.getAttribute("action") : null) === k.action) { return el; }
    }
    return all[k.index] || null;
  }

  function swap(html, focusMain) {
    var key = focusKey(document.activeElement);
    var x = window.scrollX, y = window.scrollY;
    var before = words(main.innerHTML);
    main.innerHTML = html;
    shown = normal(html);
    dirty = false;
    pending = null;
    hideNotice();
    var el = key ? findKey(key) : null;
    if (el) { el.focus({ preventScroll: true }); } else if (key || focusMain) { main.focus({ preventScroll: true }); }
    window.scrollTo(x, y);
    // Times that tick (time left, in <time>) change every fetch: only other changes are announced.
    if (words(html) !== before) { announce("This page was updated."); }
    var ev;
    try { ev = new CustomEvent("timebox:updated", { detail: { root: main } }); } catch (e) { return; }
    document.dispatchEvent(ev);
  }

  function apply(html) {
    if (normal(html) === shown) { return; }
    if (dirty || editing()) {
      var first = pending === null;
      pending = html;
      if (first) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = "Refresh";
        b.addEventListener("click", function () { if (pending !== null) { swap(pending, true); } });
        showNotice("This page has changed —", b);
        announce("This page has changed. Use the Refresh button above the page to see it; what you typed would be lost.");
      }
      return;
    }
    swap(html, false);
  }

  function signedOut() {
    off = true;
    stopStream();
    stopPolling();
    clearTimeout(retryTimer);
    clearTimeout(debounceTimer);
    var a = document.createElement("a");
    a.href = "/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
    a.textContent = "Sign in again";
    showNotice("You are signed out.", a);
    announce("You are signed out. This page no longer updates.");
  }

  function isSignIn(u) {
    try { return new URL(u, location.href).pathname === "/sign-in"; } catch (e) { return false; }
  }

  function refresh() {
    if (off) { return; }
    if (inflight) { again = true; return; }
    inflight = true;
    fetch(location.href, { headers: { "X-Timebox-Fragment": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        if (res.status === 401 || isSignIn(res.url)) { signedOut(); return; }
        var type = res.headers.get("Content-Type") || "";
        if (res.status !== 200 || res.redirected || type.indexOf("text/html") !== 0) { return; }
        return res.text().then(apply);
      })
      .catch(function () { /* offline or restarting: the next change or poll tries again */ })
      .then(function () {
        inflight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(refresh, debounce);
  }

  function startPolling() {
    if (!pollTimer && !off && !document.hidden) { pollTimer = setInterval(refresh, every); }
  }
  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = 0; }
  }
  function stopStream() {
    if (es) { es.close(); es = null; }
  }

  function connect() {
    if (off || es || document.hidden) { return; }
    if (!streaming) { startPolling(); return; }
    es = new EventSource("/events");
    es.addEventListener("change", schedule);
    es.onopen = function () {
      stopPolling();
      if (reconnecting) { reconnecting = false; schedule(); } // changes may have been missed
    };
    es.onerror = function () {
      if (!es || away) { return; }
      if (es.readyState === EventSource.CLOSED) { // refused: ask why (not at once: when
        stopStream();                             // the page is being left, never)
        setTimeout(probe, 1000);
      } else {
        reconnecting = true; // the browser reconnects by itself
      }
    };
  }

  // probe asks /events why it refused a stream: 401 signed out; 204 no feed (poll from
  // now on); anything else (429, 503) poll for now and try the stream again later.
  function probe() {
    fetch("/events", { method: "HEAD", credentials: "same-origin", cache: "no-store" })
      .then(function (res) { return res.status; }, function () { return 0; })
      .then(function (code) {
        if (code === 401) { signedOut(); return; }
        if (code === 204) { streaming = false; }
        schedule();
        startPolling();
        if (streaming) {
          clearTimeout(retryTimer);
          retryTimer = setTimeout(function () { reconnecting = true; connect(); }, retryStream);
        }
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (off) { return; }
    if (document.hidden) {
      stopStream();
      stopPolling();
      clearTimeout(retryTimer);
      return;
    }
    if (streaming) {
      reconnecting = true; // refreshes once the stream is open again
      connect();
    } else {
      schedule();
      startPolling();
    }
  });

  // Leaving the page closes the stream (so its error does not start a fallback); a page
  // restored from the back-forward cache catches up.
  var away = false;
  window.addEventListener("pagehide", function () { away = true; stopStream(); stopPolling(); });
  window.addEventListener("pageshow", function (ev) {
    if (!ev.persisted || !away || off) { return; }
    away = false;
    if (streaming) { reconnecting = true; connect(); } else { schedule(); startPolling(); }
  });

  connect();
})();
