// Slipway dashboard: the live parts. Every page works without this script; with it,
// the runs list and a run's log and steps follow the daemon as things happen, over
// server-sent events. No inline scripts (the pages' Content-Security-Policy forbids them).
"use strict";

(function () {
  // Times are written in UTC; with scripts on, hovering one shows it in local time, and
  // the timers' "your time" cells are filled in.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      t.title = new Date(t.getAttribute("datetime")).toLocaleString();
    });
    root.querySelectorAll("td.local-time[data-ms]").forEach(function (td) {
      var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      td.textContent = new Date(Number(td.dataset.ms)).toLocaleString() + " (" + zone + ")";
    });
  }
  localTimes(document);

  function fromHtml(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function flash(el) {
    el.classList.add("flash");
    setTimeout(function () { el.classList.remove("flash"); }, 1300);
  }

  // The runs list: rows of runs that change are replaced; new runs that pass the
  // filters are put in order of creation, newest first.
  var runs = document.getElementById("runs");
  if (runs && runs.dataset.live) {
    var body = runs.tBodies[0];
    var pageSize = 50;
    var feed = new EventSource(runs.dataset.live);
    feed.addEventListener("run", function (ev) {
      var m = JSON.parse(ev.data);
      var row = fromHtml(m.html);
      localTimes(row);
      var old = document.getElementById("run-" + m.id);
      if (old) {
        var was = old.querySelector("[data-status]"), now = row.querySelector("[data-status]");
        old.replaceWith(row);
        if (!was || !now || was.dataset.status !== now.dataset.status) flash(row);
        return;
      }
      if (!m.matches) return;
      var before = null;
      for (var i = 0; i < body.rows.length; i++) {
        if (Number(body.rows[i].dataset.created) < m.created) { before = body.rows[i]; break; }
      }
      if (!before && body.rows.length >= pageSize) return; // older than this page
      body.insertBefore(row, before);
      flash(row);
      var empty = document.getElementById("no-runs");
      if (empty) empty.remove();
    });
  }

  // A run's page: its log grows as the run writes it, following the end unless the
  // reader scrolled up; the details (status, steps, images) are redrawn when they change.
  var log = document.getElementById("log");
  if (log) {
    var count = log.querySelectorAll(".line").length;
    var follow = document.getElementById("log-follow");
    var search = document.getElementById("log-search");
    var matches = document.getElementById("log-matches");
    var query = "";
    // A line the feed has not finished (a very long one) goes on in the next event.
    var open = false;
    search.hidden = false;
    document.getElementById("log-follow-label").hidden = false;

    function atBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 40; }
    function toBottom() { log.scrollTop = log.scrollHeight; }
    function shows(line) {
      var text = line.querySelector(".text").textContent.toLowerCase();
      var hit = query !== "" && text.indexOf(query) >= 0;
      line.classList.toggle("hidden", query !== "" && !hit);
      line.classList.toggle("hit", hit);
      return hit;
    }
    function searchAll() {
      var n = 0;
      log.querySelectorAll(".line").forEach(function (line) { if (shows(line)) n++; });
      matches.textContent = query === "" ? "" : n + (n === 1 ? " match" : " matches");
    }

    // A link to a line (#L12) shows that line; otherwise the page starts at the end.
    if (location.hash && /^#L\d+$/.test(location.hash)) {
      follow.checked = false;
      var target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView({ block: "center" });
    } else if (follow.checked) {
      toBottom();
    }
    log.addEventListener("scroll", function () { follow.checked = atBottom(); });
    follow.addEventListener("change", function () { if (follow.checked) toBottom(); });
    search.addEventListener("input", function () {
      query = search.value.trim().toLowerCase();
      searchAll();
    });

    function addLines(lines, continues) {
      var frag = document.createDocumentFragment();
      if (open && lines.length > 0) {
        var last = log.querySelector(".line:last-child .text");
        if (last) last.textContent += lines.shift();
      }
      open = !!continues;
      lines.forEach(function (text) {
        count++;
        var line = document.createElement("div");
        line.className = "line";
        line.id = "L" + count;
        var a = document.createElement("a");
        a.className = "ln";
        a.href = "#L" + count;
        a.textContent = String(count);
        var span = document.createElement("span");
        span.className = "text";
        span.textContent = text;
        line.append(a, span);
        if (query !== "") shows(line);
        frag.append(line);
      });
      var following = follow.checked;
      log.append(frag);
      if (following) toBottom();
      if (query !== "") searchAll();
    }

    if (log.dataset.live) {
      // On a reconnect the browser sends the last event's id, the log offset it had.
      var live = new EventSource(log.dataset.live + "?offset=" + encodeURIComponent(log.dataset.offset));
      live.addEventListener("log", function (ev) {
        var m = JSON.parse(ev.data);
        addLines(m.lines, m.continues);
      });
      live.addEventListener("run", function (ev) {
        var m = JSON.parse(ev.data);
        var details = document.getElementById("details");
        details.innerHTML = m.html;
        localTimes(details);
        document.body.dataset.runStatus = m.status;
      });
      live.addEventListener("end", function () {
        live.close();
        document.body.dataset.logEnded = "true";
      });
    }
  }
})();
