/* IRMS replay: hls.js first (Chromium also plays HLS natively, so native is only the fallback),
   a watermark with the viewer's name and the current time (R15), and the recording's wall-clock time. */
(function () {
  "use strict";
  var video = document.getElementById("player");
  var src = video.getAttribute("data-src");
  var map = JSON.parse(video.getAttribute("data-media-map") || "[]");
  var kind = document.getElementById("player-kind");
  var fmt = new Intl.DateTimeFormat("vi-VN", {
    timeZone: "Asia/Ho_Chi_Minh", day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  function stamp(ms) { return fmt.format(new Date(ms)); }

  if (window.Hls && window.Hls.isSupported()) {
    var hls = new window.Hls({ maxBufferLength: 20, backBufferLength: 30, enableWorker: true });
    hls.on(window.Hls.Events.ERROR, function (_e, data) {
      if (data.fatal) { kind.textContent = "error: " + data.type + " " + data.details; }
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    window.irmsPlayer = "hls.js";
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
    window.irmsPlayer = "native";
  } else {
    window.irmsPlayer = "none";
  }
  kind.textContent = window.irmsPlayer;

  var wm = document.getElementById("wm-time");
  var rec = document.getElementById("recorded-at");
  function tick() {
    wm.textContent = stamp(Date.now());
    var t = video.currentTime * 1000, wall = null;
    for (var i = 0; i < map.length && map[i][0] <= t + 1; i++) { wall = map[i][1] + (t - map[i][0]); }
    if (wall !== null) { rec.textContent = stamp(wall); }
  }
  tick();
  setInterval(tick, 1000);
  video.addEventListener("timeupdate", tick);
})();
