/* cycleml dashboard: draws the charts and runs the two admin actions. No inline handlers. */
(function () {
  "use strict";
  var TOKEN_KEY = "cycleml-admin-token";

  function tokenInput() { return document.getElementById("admin-token"); }

  function setStatus(text, kind) {
    var status = document.getElementById("status");
    if (!status) { return; }
    status.textContent = text;
    status.className = kind || "";
  }

  function mark(name) {
    try { window.performance.mark(name); } catch (e) { /* timing is optional */ }
  }

  /* Break ``text`` into lines of at most ``room`` characters at spaces (Plotly titles do not
     wrap by themselves, so a phone would cut them). */
  function wrapText(text, room) {
    if (!text || text.length <= room || text.indexOf("<br>") >= 0) { return text; }
    var lines = [""];
    text.split(" ").forEach(function (word) {
      var last = lines[lines.length - 1];
      if (last && (last + " " + word).length > room) { lines.push(word); }
      else { lines[lines.length - 1] = last ? last + " " + word : word; }
    });
    return lines.join("<br>");
  }

  /* Titles fitted to the chart's width: the chart title (with the top margin its extra lines
     need) and the axis titles. */
  function fitTitles(layout, width) {
    var title = layout.title;
    if (title && title.text) {
      var wrapped = wrapText(title.text, Math.max(20, Math.floor((width - 16) / 7.6)));
      var extra = wrapped.split("<br>").length - 1;
      if (extra) {
        title.text = wrapped;
        layout.margin = layout.margin || {};
        layout.margin.t = (layout.margin.t || 44) + 17 * extra;
        if (layout.height) { layout.height += 17 * extra; }
      }
    }
    ["xaxis", "yaxis"].forEach(function (name) {
      var axis = layout[name];
      if (axis && axis.title && axis.title.text) {
        var room = Math.floor((name === "xaxis" ? width - 140 : layout.height || 320) / 7.2);
        axis.title.text = wrapText(axis.title.text, Math.max(16, room));
      }
    });
  }

  function drawOne(el) {
    var fig;
    var started = window.performance.now();
    try { fig = JSON.parse(el.getAttribute("data-figure")); } catch (e) {
      el.textContent = "This chart's data could not be read.";
      el.setAttribute("data-drawn-ms", "0");
      return;
    }
    var layout = fig.layout || {};
    fitTitles(layout, el.clientWidth || 600);
    window.Plotly.newPlot(el, fig.data || [], layout, {
      responsive: true, displaylogo: false
    });
    el.setAttribute("data-drawn-ms", String(Math.round(window.performance.now() - started)));
  }

  function onScreen(el) {
    var r = el.getBoundingClientRect();
    var h = window.innerHeight || document.documentElement.clientHeight;
    return r.bottom > 0 && r.top < h;
  }

  /* The charts on the first screen are drawn at once, one per task so the page stays
     responsive; the others when they come near the screen (within half a screen height), so a
     page with 20 charts costs what its first screen shows. Marks: cycleml:first-screen-drawn,
     cycleml:charts-drawn (every chart drawn, once scrolled through); then <html
     data-charts-drawn="N"> says how many. Without IntersectionObserver every chart is drawn,
     in page order. */
  function drawCharts() {
    var charts = Array.prototype.slice.call(document.querySelectorAll("div.chart[data-figure]"));
    var root = document.documentElement;
    if (!charts.length) {
      mark("cycleml:first-screen-drawn");
      mark("cycleml:charts-drawn");
      root.setAttribute("data-charts-drawn", "0");
      return;
    }
    if (typeof window.Plotly === "undefined") {
      setStatus("Charts cannot be drawn: /static/plotly.min.js did not load.", "error");
      return;
    }
    var lazy = typeof window.IntersectionObserver === "function";
    var first = lazy ? charts.filter(onScreen) : charts.slice();
    var queue = first.slice();
    var firstLeft = first.length;
    var left = charts.length;
    var busy = false;
    var observer = null;

    function step() {
      var el = queue.shift();
      if (!el) { busy = false; return; }
      if (el.getAttribute("data-drawn-ms") === null) {
        drawOne(el);
        left -= 1;
        if (first.indexOf(el) >= 0) {
          firstLeft -= 1;
          if (!firstLeft) { mark("cycleml:first-screen-drawn"); }
        }
        if (!left) {
          if (observer) { observer.disconnect(); }
          mark("cycleml:charts-drawn");
          root.setAttribute("data-charts-drawn", String(charts.length));
        }
      }
      if (queue.length) { window.setTimeout(step, 0); } else { busy = false; }
    }
    function enqueue(el) {
      if (queue.indexOf(el) < 0) { queue.push(el); }
      if (!busy) { busy = true; window.setTimeout(step, 0); }
    }

    if (lazy) {
      if (!first.length) { mark("cycleml:first-screen-drawn"); }
      observer = new window.IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) {
            observer.unobserve(entry.target);
            enqueue(entry.target);
          }
        });
      }, { rootMargin: "50% 0px" });
      charts.forEach(function (el) {
        if (first.indexOf(el) < 0) { observer.observe(el); }
      });
      /* printing shows the whole page: draw what is left first */
      window.addEventListener("beforeprint", function () {
        charts.forEach(function (el) { if (queue.indexOf(el) < 0) { queue.push(el); } });
        while (queue.length) { step(); }
      });
    }
    if (queue.length) { busy = true; step(); }
  }

  function headers() {
    var h = { "Content-Type": "application/json", "Accept": "application/json" };
    var input = tokenInput();
    var token = input ? input.value.trim() : "";
    if (token) { h.Authorization = "Bearer " + token; }
    return h;
  }

  function post(url, body) {
    return fetch(url, { method: "POST", headers: headers(), body: JSON.stringify(body || {}) })
      .then(function (response) {
        return response.text().then(function (text) {
          var data = {};
          try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text }; }
          return { ok: response.ok, status: response.status, data: data };
        });
      });
  }

  function failure(result) {
    var d = result.data || {};
    var text = (d.message || ("request failed with HTTP " + result.status));
    if (d.hint) { text += " (" + d.hint + ")"; }
    setStatus("Refused (" + result.status + "): " + text, "error");
  }

  function promoteButton(problem, version) {
    var b = document.createElement("button");
    b.type = "button";
    b.setAttribute("data-action", "promote");
    b.setAttribute("data-problem", problem);
    b.setAttribute("data-version", String(version));
    b.textContent = "Promote " + problem + "-v" + version;
    return b;
  }

  function showProduction(problem, version, name) {
    var holder = document.getElementById("production");
    if (holder) {
      holder.setAttribute("data-production", String(version));
      var strong = holder.querySelector(".production-name");
      if (strong) { strong.textContent = name; }
    }
    document.querySelectorAll("table.versions tr[data-version]").forEach(function (row) {
      var v = row.getAttribute("data-version");
      var stage = row.querySelector("td.stage-cell");
      var cell = row.lastElementChild;
      if (v === String(version)) {
        row.setAttribute("data-stage", "production");
        if (stage) { stage.textContent = "production"; }
        cell.textContent = "";
        var tag = document.createElement("span");
        tag.className = "tag ok";
        tag.textContent = "in production";
        cell.appendChild(tag);
      } else if (row.getAttribute("data-stage") === "production") {
        row.setAttribute("data-stage", "archived");
        if (stage) { stage.textContent = "archived"; }
        cell.textContent = "";
        cell.appendChild(promoteButton(problem, v));
      }
    });
  }

  function promote(button) {
    var problem = button.getAttribute("data-problem");
    var version = button.getAttribute("data-version");
    var force = document.getElementById("promote-force");
    var url = "/v1/models/" + encodeURIComponent(problem) + "/versions/" +
      encodeURIComponent(version) + "/promote";
    button.disabled = true;
    setStatus("Promoting " + problem + "-v" + version + "…", "busy");
    post(url, { force: !!(force && force.checked) }).then(function (result) {
      button.disabled = false;
      if (!result.ok) { failure(result); return; }
      showProduction(problem, result.data.version, result.data.model);
      setStatus(result.data.message || (result.data.model + " is now in production"), "ok");
    }).catch(function (err) {
      button.disabled = false;
      setStatus("Could not reach the server: " + err, "error");
    });
  }

  function applyCleaning(button) {
    var source = button.getAttribute("data-source");
    var step = button.getAttribute("data-step");
    var fingerprint = button.getAttribute("data-fingerprint") || null;
    var url = "/v1/sources/" + encodeURIComponent(source) + "/cleaning/" +
      encodeURIComponent(step) + "/apply";
    button.disabled = true;
    setStatus("Applying " + step + "…", "busy");
    post(url, { fingerprint: fingerprint }).then(function (result) {
      if (!result.ok) { button.disabled = false; failure(result); return; }
      var tag = document.createElement("span");
      tag.className = "tag ok";
      tag.textContent = "recorded in cycleml.yaml";
      button.replaceWith(tag);
      setStatus(result.data.message || (step + " recorded in cycleml.yaml"), "ok");
    }).catch(function (err) {
      button.disabled = false;
      setStatus("Could not reach the server: " + err, "error");
    });
  }

  function start() {
    mark("cycleml:scripts-ready");
    var input = tokenInput();
    if (input) {
      try { input.value = window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { /* off */ }
      input.addEventListener("input", function () {
        try { window.sessionStorage.setItem(TOKEN_KEY, input.value); } catch (e) { /* off */ }
      });
    }
    document.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-action]");
      if (!button) { return; }
      var action = button.getAttribute("data-action");
      if (action === "promote") { promote(button); }
      if (action === "apply-cleaning") { applyCleaning(button); }
    });
    drawCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
