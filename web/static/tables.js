// Tables and refresh for every page (no inline script: the Content-Security-Policy forbids it).
// - every table[data-table] (and every other table of <main> with an id) gets a CSV button that downloads the table as shown (UTF-8, header row first);
// - every th[data-sort] sorts its table (data-value of the cell when present, else its text), again reverses;
//   the order chosen is kept for the tab (sessionStorage) and survives an auto-refresh;
// - #auto-refresh: every N seconds the page is fetched again and its <main> replaced; N is kept (localStorage).
(function () {
  "use strict";
  var SORT_KEY = "irms-sort:", REFRESH_KEY = "irms-refresh", timer = null;

  function cellText(cell) { return cell.textContent.replace(/\s+/g, " ").trim(); }

  function csvField(s) { return /[",\n\r;]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }

  function tableCsv(table) {
    var lines = [];
    table.querySelectorAll("tr").forEach(function (tr) {
      var cells = [];
      tr.querySelectorAll("th, td").forEach(function (c) {
        var copy = c.cloneNode(true);
        copy.querySelectorAll(".sort-mark").forEach(function (m) { m.remove(); });
        cells.push(csvField(cellText(copy)));
      });
      lines.push(cells.join(","));
    });
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }

  function download(table) {
    var blob = new Blob([tableCsv(table)], { type: "text/csv;charset=utf-8" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = (table.getAttribute("data-table") || table.id) + ".csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function value(row, index, numeric) {
    var cell = row.children[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var v = cell.getAttribute("data-value");
    if (numeric) { var n = parseFloat(v !== null ? v : cellText(cell)); return isNaN(n) ? -Infinity : n; }
    return v !== null ? v : cellText(cell);
  }

  function sortTable(table, index, dir) {
    var th = table.querySelectorAll("thead th")[index];
    if (!th) { return; }
    var numeric = th.getAttribute("data-sort") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, index, numeric), y = value(b, index, numeric);
      var c = numeric ? x - y : String(x).localeCompare(String(y), document.documentElement.lang || "vi");
      return dir === "desc" ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
  }

  function initTable(table) {
    var name = table.getAttribute("data-table") || table.id;
    if (!table.previousElementSibling || !table.previousElementSibling.classList.contains("table-tools")) {
      var tools = document.createElement("div");
      tools.className = "table-tools";
      var b = document.createElement("button");
      b.type = "button";
      b.className = "csv";
      b.setAttribute("data-csv-for", name);
      b.textContent = document.body.getAttribute("data-csv-label") || "CSV";
      b.addEventListener("click", function () { download(table); });
      tools.appendChild(b);
      table.parentNode.insertBefore(tools, table);
    }
    table.querySelectorAll("thead th[data-sort]").forEach(function (th, _i) {
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      th.tabIndex = 0;
      th.classList.add("sortable");
      var go = function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
        sortTable(table, index, dir);
        try { sessionStorage.setItem(SORT_KEY + name, index + ":" + dir); } catch (e) { /* private mode */ }
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); go(); } });
    });
    var kept = null;
    try { kept = sessionStorage.getItem(SORT_KEY + name); } catch (e) { kept = null; }
    if (kept) { var p = kept.split(":"); sortTable(table, parseInt(p[0], 10), p[1]); }
  }

  function schedule(seconds) {
    if (timer) { clearTimeout(timer); timer = null; }
    if (seconds > 0) { timer = setTimeout(refresh, seconds * 1000); }
  }

  function refresh() {
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) {
        if (!resp.ok || resp.redirected) { throw new Error("refresh answered " + resp.status); }
        return resp.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main"), main = document.querySelector("main");
        keepRefresh(currentSeconds());  // the choice on screen now is the one the new <main> must show
        if (fresh && main) { main.innerHTML = fresh.innerHTML; main.setAttribute("data-refreshed", String(Date.now())); }
        init();
      })
      .catch(function () {
        var note = document.getElementById("refresh-failed");
        if (note) { note.hidden = false; }
        schedule(currentSeconds());
      });
  }

  function currentSeconds() {
    var sel = document.getElementById("auto-refresh");
    return sel ? parseInt(sel.value, 10) || 0 : 0;
  }

  function keepRefresh(seconds) {
    try { localStorage.setItem(REFRESH_KEY, String(seconds)); } catch (e) { /* private mode */ }
  }

  function initRefresh() {
    var sel = document.getElementById("auto-refresh");
    if (!sel) { schedule(0); return; }
    var chosen = sel.selectedOptions.length && !sel.selectedOptions[0].defaultSelected;
    if (chosen) {
      // picked before this script ran (a quick hand, or the browser restoring the form): that choice wins
      keepRefresh(currentSeconds());
    } else {
      var kept = null;
      try { kept = localStorage.getItem(REFRESH_KEY); } catch (e) { kept = null; }
      if (kept !== null && sel.querySelector('option[value="' + kept + '"]')) { sel.value = kept; }
    }
    sel.addEventListener("change", function () {
      keepRefresh(currentSeconds());
      schedule(currentSeconds());
    });
    schedule(currentSeconds());
  }

  // A room list that names each room's site: only the rooms of the site chosen in the same form are offered.
  function initRoomChoice(sel) {
    var site = sel.form && sel.form.querySelector('[name="' + sel.getAttribute("data-rooms-of") + '"]');
    if (!site) { return; }
    var apply = function () {
      sel.querySelectorAll("option[data-site]").forEach(function (o) {
        o.hidden = o.disabled = o.getAttribute("data-site") !== site.value;
        if (o.hidden && o.selected) { sel.value = ""; }
      });
    };
    site.addEventListener("change", apply);
    apply();
  }

  function init() {
    // Every table of a page can be taken away as CSV: the desk's (data-table) and any other with an id.
    document.querySelectorAll("main table[data-table], main table[id]:not(.facts)").forEach(initTable);
    document.querySelectorAll("select[data-rooms-of]").forEach(initRoomChoice);
    initRefresh();
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
