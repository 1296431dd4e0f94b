// Keeps a station screen live: the server sends the rendered verdict block on every change (SSE).
(function () {
  "use strict";
  var box = document.getElementById("screen");
  var live = document.getElementById("live");
  if (!box || !live) return;
  function state(on, text) {
    live.dataset.live = on ? "on" : "off";
    live.textContent = text;
    document.body.classList.toggle("stale", !on);
  }
  if (!window.EventSource) { state(false, "No live updates in this browser"); return; }
  var source = new EventSource(box.dataset.events);
  source.addEventListener("screen", function (e) { box.innerHTML = e.data; state(true, "Live"); });
  source.onopen = function () { state(true, "Live"); };
  source.onerror = function () {
    state(false, "Reconnecting…");
    // a refused stream (logged out, session expired) is not retried by the browser: reload to log in
    if (source.readyState === EventSource.CLOSED) setTimeout(function () { location.reload(); }, 3000);
  };
})();
