/* IRMS replay: the first entry of the playlist asked for while the page is still loading (the player's
   scripts, ~600 KB, come after it). static/replay.js hands the answer to hls.js; a page where the player
   is already running, or an answer that fails, leaves hls.js to ask itself. The request is the same
   checked, audited segment request the player would make. */
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
