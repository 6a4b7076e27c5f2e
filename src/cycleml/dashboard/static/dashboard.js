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

  function drawOne(el) {
    var fig;
    try { fig = JSON.parse(el.getAttribute("data-figure")); } catch (e) {
      el.textContent = "This chart's data could not be read.";
      return;
    }
    window.Plotly.newPlot(el, fig.data || [], fig.layout || {}, {
      responsive: true, displaylogo: false
    });
  }

  /* One chart per task, so the page stays responsive while a long page draws; when all are
     drawn, <html data-charts-drawn="N"> says how many. */
  function drawCharts() {
    var charts = Array.prototype.slice.call(document.querySelectorAll("div.chart[data-figure]"));
    var root = document.documentElement;
    if (!charts.length) { root.setAttribute("data-charts-drawn", "0"); return; }
    if (typeof window.Plotly === "undefined") {
      setStatus("Charts cannot be drawn: /static/plotly.min.js did not load.", "error");
      return;
    }
    var next = 0;
    function step() {
      if (next >= charts.length) { root.setAttribute("data-charts-drawn", String(charts.length)); return; }
      drawOne(charts[next]);
      next += 1;
      window.setTimeout(step, 0);
    }
    step();
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
