/* IRMS replay: the first entry of the playlist asked for from the page's head, while the rest of the page
   and the player's scripts (~600 KB) load. A plain script, not async: an async one waited for the main
   thread behind hls.js (bench/replay.py --trace). static/replay.js hands the answer to hls.js; a page
   where the player is already running, or an answer that fails, leaves hls.js to ask itself. The request
   is the same checked segment request, under the grant the page opened, that the player would make. */
(function () {
  "use strict";
  var script = document.currentScript, url = script && script.getAttribute("data-entry");
  if (!url || window.irmsPlayer) { return; }
  var entry = window.irmsFirstEntry = { url: new URL(url, location.href).href, start: performance.now(), end: 0 };
  entry.data = fetch(entry.url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
    if (!r.ok) { throw new Error("HTTP " + r.status); }
    return r.arrayBuffer();
  }).then(function (data) { entry.end = performance.now(); return data; });
  entry.data.catch(function () {});  // replay.js sees the failure and lets hls.js ask
})();
