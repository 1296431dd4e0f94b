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
  var source = null;
  var heard = Date.now();
  var every = 15; // seconds between heartbeats; the server says how many in its first one
  var reconnects = 0;
  function connect() {
    source = new EventSource(box.dataset.events);
    source.addEventListener("screen", function (e) {
      heard = Date.now();
      box.innerHTML = e.data;
      state(true, "Live");
    });
    source.addEventListener("heartbeat", function (e) {
      heard = Date.now();
      var s = parseFloat(e.data);
      if (s > 0) every = s;
    });
    source.onopen = function () { heard = Date.now(); state(true, "Live"); };
    source.onerror = function () {
      state(false, "Reconnecting…");
      // a refused stream (logged out, session expired) is not retried by the browser: reload to log in
      if (source.readyState === EventSource.CLOSED) setTimeout(function () { location.reload(); }, 3000);
    };
  }
  connect();
  // A stream that dies without an error (a half-open connection, a stuck proxy) just goes quiet,
  // and the verdict on screen would be stale with nothing saying so. Nothing heard for 2.5
  // heartbeats: mark the screen not live and connect again.
  setInterval(function () {
    if (source.readyState === EventSource.CLOSED) return; // onerror reloads the page
    if (Date.now() - heard <= 2500 * every) return;
    state(false, "No updates — reconnecting…");
    source.close();
    reconnects += 1;
    live.dataset.reconnects = String(reconnects);
    heard = Date.now();
    connect();
  }, 1000);
})();
