/* IRMS replay: hls.js first (Chromium also plays HLS natively, so native is only the fallback),
   a watermark with the viewer's name and the current time (R15), and the recording's wall-clock time.
   Live (data-live): the player follows the live edge of the EVENT playlist and may scroll back.
   Markers: the investigator's (signed manifest) and the prosecutors' (server) on the scrubber under the
   player and in a list; each jumps to its moment; "Mark this moment" adds one at the current time. */
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
    var live = video.getAttribute("data-live") === "yes";
    var hls = new window.Hls(live ? { liveSyncDurationCount: 1, liveMaxLatencyDurationCount: 3,
                                      maxBufferLength: 20, backBufferLength: 600, enableWorker: true }
                                  : { maxBufferLength: 20, backBufferLength: 30, enableWorker: true });
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

  // --- markers ---
  var markersUrl = video.getAttribute("data-markers");
  var scrubber = document.getElementById("scrubber"), list = document.getElementById("markers");
  function mediaOf(wallMs) {
    var t = null;
    for (var i = 0; i < map.length && map[i][1] <= wallMs; i++) { t = map[i][0] + (wallMs - map[i][1]); }
    return t === null ? 0 : t / 1000;
  }
  function wallOf(mediaS) {
    var ms = mediaS * 1000, wall = null;
    for (var i = 0; i < map.length && map[i][0] <= ms + 1; i++) { wall = map[i][1] + (ms - map[i][0]); }
    return wall;
  }
  function jump(m) { return function () { video.currentTime = mediaOf(m.at_us / 1000); }; }
  function draw(data) {
    map = data.media_map.length ? data.media_map : map;
    var all = data.investigator.map(function (m) { return { kind: "investigator", m: m }; })
      .concat(data.server.map(function (m) { return { kind: "server", m: m }; }))
      .sort(function (a, b) { return a.m.at_us - b.m.at_us; });
    var span = video.duration && isFinite(video.duration) ? video.duration : 0;
    if (!span && map.length) { span = Math.max.apply(null, all.map(function (x) { return mediaOf(x.m.at_us / 1000); })) || 1; }
    scrubber.textContent = "";
    list.textContent = "";
    all.forEach(function (x) {
      var t = mediaOf(x.m.at_us / 1000);
      var who = x.kind === "server" ? x.m.author + (x.m.unit ? ", " + x.m.unit : "") : "investigator";
      var title = stamp(x.m.at_us / 1000) + " " + (x.m.label || "") + " (" + who + ")";
      var tick = document.createElement("button");
      tick.type = "button";
      tick.className = "m-" + x.kind;
      tick.title = title;
      tick.setAttribute("data-at-us", x.m.at_us);
      tick.style.left = (span ? Math.min(100, t / span * 100) : 0) + "%";
      tick.addEventListener("click", jump(x.m));
      scrubber.appendChild(tick);
      var li = document.createElement("li");
      li.className = "m-" + x.kind;
      li.setAttribute("data-kind", x.kind);
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = title;
      b.addEventListener("click", jump(x.m));
      li.appendChild(b);
      list.appendChild(li);
    });
  }
  var last = null, polling = false;
  function load() {
    fetch(markersUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.json(); }).then(function (data) { last = data; draw(data); })
      .catch(function () {});
  }
  function poll() {
    if (!polling) { polling = true; load(); setInterval(load, 3000); }
  }
  if (markersUrl && scrubber && list) {
    // The markers wait for the first picture (or 2 s): fetched beside the playlist and the first segment,
    // they held the server's threads while the picture waited (bench/replay.py).
    video.addEventListener("loadeddata", poll, { once: true });
    setTimeout(poll, 2000);
    video.addEventListener("durationchange", function () { if (last) { draw(last); } });
    var form = document.getElementById("marker-form");  // none on a shared link: an outside party adds none
    if (form) form.addEventListener("submit", function (e) {
      e.preventDefault();
      var wall = wallOf(video.currentTime);
      if (wall === null) { return; }
      var body = new URLSearchParams();
      body.set("at_us", String(Math.round(wall * 1000)));
      body.set("label", document.getElementById("marker-label").value);
      fetch(video.getAttribute("data-add-marker"), {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "X-CSRFToken": video.getAttribute("data-csrf") }
      }).then(function (r) { if (r.ok) { document.getElementById("marker-label").value = ""; load(); } });
    });
  }
})();
