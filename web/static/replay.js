/* IRMS replay: hls.js first (Chromium also plays HLS natively, so native is only the fallback),
   a watermark with the viewer's name and the current time (R15), and the recording's wall-clock time.
   Live (data-live): the player follows the live edge of the EVENT playlist and may scroll back.
   Markers: the investigator's (signed manifest) and the prosecutors' (server) on the scrubber under the
   player and in a list; each jumps to its moment; "Mark this moment" adds one at the current time.
   The scrubber also shows the pauses and interruptions (where the media jumps over them), a click on it
   seeks there; playback speed 0.5x-2x, jumps of 10 s back and forward. */
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

  // A replay page carries its playlist (data-playlist, the text data-src serves): hls.js takes it from the page
  // instead of asking the server for it, once; any later load of a playlist goes to the server as before.
  function pageLoader(Base, text) {
    return class extends Base {
      load(context, config, callbacks) {
        if (text === null || context.type !== "manifest") { return super.load(context, config, callbacks); }
        var body = text, stats = this.stats, now = performance.now(), self = this;
        text = null;
        stats.loading.start = stats.loading.first = stats.loading.end = now;
        stats.loaded = stats.total = body.length;
        this.context = context;
        this.callbacks = callbacks;
        // answered as a network load is, after load() has returned
        Promise.resolve().then(function () {
          if (self.callbacks) { callbacks.onSuccess({ url: context.url, data: body }, stats, context, null); }
        });
      }
    };
  }

  // The first entry, asked for by static/replay-first.js while the page was loading: hls.js takes its answer
  // instead of asking again, once; if that request failed, hls.js asks as usual.
  function firstEntryLoader(Base, early) {
    return class extends Base {
      load(context, config, callbacks) {
        if (!early || new URL(context.url, location.href).href !== early.url) {
          return super.load(context, config, callbacks);
        }
        var mine = early, stats = this.stats;
        early = null;
        this.context = context;
        this.callbacks = callbacks;
        stats.loading.start = mine.start;
        mine.data.then((data) => {
          if (!this.callbacks) { return; }  // aborted meanwhile
          stats.loading.first = stats.loading.end = Math.max(mine.end, mine.start);
          stats.loaded = stats.total = data.byteLength;
          stats.bwEstimate = data.byteLength * 8000 / Math.max(1, stats.loading.end - stats.loading.start);
          if (callbacks.onProgress) { callbacks.onProgress(stats, context, data, null); }
          callbacks.onSuccess({ url: context.url, data: data, code: 200 }, stats, context, null);
        }, () => {
          if (!this.callbacks) { return; }
          stats.loading.start = 0;  // a loader is used once: start afresh
          super.load(context, config, callbacks);
        });
      }
    };
  }

  if (window.Hls && window.Hls.isSupported()) {
    var live = video.getAttribute("data-live") === "yes";
    var carried = video.getAttribute("data-playlist");
    // A replay asks for its first segment as soon as it has the playlist (startFragPrefetch), not at hls.js's
    // next 100 ms tick after the media source has opened; and remuxes on this thread: hls.js's worker starts
    // only when the first segment has come, by evaluating all of hls.js again, which put 60-230 ms between
    // the segment and its picture on the 2-core bench machine (bench/replay.py --trace). The price: each
    // 10 s entry's remux (about 50 ms more of this thread for 720p at 3 Mbps there); the picture itself is
    // composited off this thread. The live view keeps the worker.
    var hls = new window.Hls(live ? { liveSyncDurationCount: 1, liveMaxLatencyDurationCount: 3,
                                      maxBufferLength: 20, backBufferLength: 600, enableWorker: true }
                                  : { maxBufferLength: 20, backBufferLength: 30, enableWorker: false,
                                      startFragPrefetch: true,
                                      pLoader: carried ? pageLoader(window.Hls.DefaultConfig.loader, carried)
                                                       : undefined,
                                      fLoader: window.irmsFirstEntry
                                        ? firstEntryLoader(window.Hls.DefaultConfig.loader, window.irmsFirstEntry)
                                        : undefined });
    hls.on(window.Hls.Events.ERROR, function (_e, data) {
      if (data.fatal) { kind.textContent = "error: " + data.type + " " + data.details; }
    });
    if (!live) {
      // The picture first: until a frame is on screen (at the start, and after each seek) hls.js buffers
      // no further ahead than the entry it shows; then as usual (20 s). The next entry's download and remux
      // (on this thread) came in just before the picture and delayed it (bench/replay.py --trace). Held at
      // most 2 s: a page in the background presents no frame.
      var ahead = hls.config.maxMaxBufferLength, holds = 0;
      var release = function () { hls.config.maxMaxBufferLength = ahead; };
      var hold = function () {
        var mine = ++holds;
        hls.config.maxMaxBufferLength = 1;
        setTimeout(function () { if (holds === mine) { release(); } }, 2000);
      };
      var onPicture = function () {
        if (video.requestVideoFrameCallback) { video.requestVideoFrameCallback(release); } else { release(); }
      };
      hold();
      onPicture();
      video.addEventListener("seeking", hold);
      video.addEventListener("seeked", onPicture);
    }
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
  var marks = document.getElementById("sc-marks");
  var words = JSON.parse(video.getAttribute("data-words") || "{}");
  var gaps = JSON.parse(video.getAttribute("data-interruptions") || "[]");
  var lastData = { investigator: [], server: [], media_map: [] };
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
  function jump(m) { return function () { seekTo(mediaOf(m.at_us / 1000)); }; }
  function span() {
    if (video.duration && isFinite(video.duration)) { return video.duration; }
    if (video.seekable && video.seekable.length) { return video.seekable.end(video.seekable.length - 1); }
    return 0;
  }
  function drawGaps(total) {
    gaps.forEach(function (g) {
      var at = mediaOf(g.start_us / 1000);
      var el = document.createElement("div");
      el.className = "sc-span " + (g.cause === "pause" ? "sc-pause" : "sc-interruption");
      el.setAttribute("data-cause", g.cause);
      el.setAttribute("data-at-us", g.start_us);
      var secs = g.end_us ? Math.round((g.end_us - g.start_us) / 1e6) : null;
      el.title = stamp(g.start_us / 1000) + " " + (words[g.cause] || g.cause) +
        (secs !== null ? " (" + secs + " s)" : "") + (g.reason ? ": " + g.reason : "");
      el.style.left = (total ? Math.min(99.4, at / total * 100) : 0) + "%";
      el.style.width = "6px";
      marks.appendChild(el);
    });
  }
  function draw(data) {
    lastData = data;
    if (data.interruptions) { gaps = data.interruptions; }
    map = data.media_map.length ? data.media_map : map;
    var all = data.investigator.map(function (m) { return { kind: "investigator", m: m }; })
      .concat(data.server.map(function (m) { return { kind: "server", m: m }; }))
      .sort(function (a, b) { return a.m.at_us - b.m.at_us; });
    var total = span();
    if (!total && map.length) { total = Math.max.apply(null, all.map(function (x) { return mediaOf(x.m.at_us / 1000); })) || 1; }
    marks.textContent = "";
    if (list) { list.textContent = ""; }
    drawGaps(total);
    all.forEach(function (x) {
      var t = mediaOf(x.m.at_us / 1000);
      var who = x.kind === "server" ? x.m.author + (x.m.unit ? ", " + x.m.unit : "") : (words.investigator || "investigator");
      var title = stamp(x.m.at_us / 1000) + " " + (x.m.label || "") + " (" + who + ")";
      var tick = document.createElement("button");
      tick.type = "button";
      tick.className = "m-" + x.kind;
      tick.title = title;
      tick.setAttribute("data-at-us", x.m.at_us);
      tick.style.left = (total ? Math.min(100, t / total * 100) : 0) + "%";
      tick.addEventListener("click", function (e) { e.stopPropagation(); jump(x.m)(); });
      marks.appendChild(tick);
      if (!list) { return; }
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
  // --- scrubber, speed, jumps ---
  var played = document.getElementById("sc-played"), head = document.getElementById("sc-head");
  var clock = document.getElementById("media-time");
  function hms(s) {
    s = Math.max(0, Math.floor(s));
    var m = Math.floor(s / 60) % 60, h = Math.floor(s / 3600), r = s % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }
  function seekTo(t) {
    var total = span();
    video.currentTime = Math.max(0, total ? Math.min(t, total - 0.1) : t);
    position();
  }
  function position() {
    var total = span();
    var pct = total ? Math.min(100, video.currentTime / total * 100) : 0;
    played.style.width = pct + "%";
    head.style.left = pct + "%";
    scrubber.setAttribute("aria-valuenow", String(Math.round(pct)));
    clock.textContent = hms(video.currentTime) + " / " + hms(total);
  }
  scrubber.addEventListener("click", function (e) {
    var r = scrubber.getBoundingClientRect();
    var total = span();
    if (!total || !r.width) { return; }
    seekTo((e.clientX - r.left) / r.width * total);
  });
  document.getElementById("jump-back").addEventListener("click", function () { seekTo(video.currentTime - 10); });
  document.getElementById("jump-forward").addEventListener("click", function () { seekTo(video.currentTime + 10); });
  document.getElementById("play-pause").addEventListener("click", function () {
    if (video.paused) { video.play(); } else { video.pause(); }
  });
  var speed = document.getElementById("speed");
  speed.addEventListener("change", function () { video.playbackRate = parseFloat(speed.value); });
  video.addEventListener("ratechange", function () {
    if (String(video.playbackRate) !== speed.value) { speed.value = String(video.playbackRate); }
  });
  video.addEventListener("timeupdate", position);
  video.addEventListener("seeking", position);
  video.addEventListener("seeked", position);
  video.addEventListener("durationchange", function () { position(); draw(lastData); });
  video.addEventListener("loadedmetadata", function () { position(); draw(lastData); });
  draw(lastData);
  position();

  if (markersUrl && scrubber && list) {
    // The markers wait for the first picture on screen (or 2 s): fetched beside the first segment, or once the
    // picture was decoded but not yet shown, their request took the server's and the machine's time while the
    // picture waited (bench/replay.py).
    if (video.requestVideoFrameCallback) { video.requestVideoFrameCallback(poll); }
    else { video.addEventListener("playing", poll, { once: true }); }
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
