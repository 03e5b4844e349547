/* IRMS sealed copies: the job page and the job list follow their jobs' progress (GET /exports/<n>.json)
   until each is sealed or failed. The words come from data-words (the page's language), no inline script. */
(function () {
  "use strict";
  var words = {};
  var holder = document.querySelector("[data-words]");
  try { words = JSON.parse((holder && holder.getAttribute("data-words")) || "{}"); } catch (e) { words = {}; }
  function say(w) { return words[w] || w; }
  function finished(state) { return state === "done" || state === "failed" || state === "expired"; }
  function follow(el, show) {
    var url = el.getAttribute("data-progress-url");
    function poll() {
      fetch(url, { cache: "no-store", credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          show(p);
          el.setAttribute("data-state", p.state);
          if (!finished(p.state)) { setTimeout(poll, 700); }
        })
        .catch(function () { setTimeout(poll, 2000); });
    }
    if (!finished(el.getAttribute("data-state"))) { poll(); }
  }
  var job = document.getElementById("export-job");
  if (job) {
    follow(job, function (p) {
      var st = document.getElementById("export-state");
      st.textContent = say(p.state);
      st.setAttribute("data-state", p.state);
      st.className = "badge state-" + p.state;
      document.getElementById("export-step").textContent = p.step ? say(p.step) : "";
      document.getElementById("export-progress").value = p.percent;
      document.getElementById("export-percent").textContent = p.percent + "%";
      document.getElementById("export-bytes").textContent = String(p.bytes_written);
      document.getElementById("export-size").textContent = p.size === null ? "—" : String(p.size);
      document.getElementById("export-sha256").textContent = p.sha256 || "—";
      document.getElementById("export-manifest").textContent = p.manifest_sha256 || "—";
      document.getElementById("export-error").textContent = p.error || "—";
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("tr.export-row"), function (row) {
    follow(row, function (p) {
      var badge = row.querySelector(".state .badge");
      badge.textContent = say(p.state);
      badge.className = "badge state-" + p.state;
      row.querySelector("progress").value = p.percent;
      row.querySelector(".pct").textContent = p.percent + "%";
      row.querySelector(".size").textContent = p.size === null ? "—" : String(p.size);
      row.querySelector(".seal").textContent = p.sha256 || "—";
    });
  });
})();
