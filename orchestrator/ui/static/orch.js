/* orchestrator web UI: the DAG (Cytoscape.js + dagre), live run updates, the step panel,
   confirmations and charts (Chart.js). Pages work without it; this adds the drawing.
   A sub-pipeline call is a group: a compound node ("group:<namespace>") holding its steps,
   which are labelled by their name inside it. A node is sized for its label (measured
   in the font it is drawn with), shows its duration on a second line and, for a mapped
   step, "x N" items. Edge labels (the input's name) show on hovering an edge or a node;
   fit / zoom buttons sit over the graph. */
(function () {
  "use strict";

  var COLORS = {
    pending: "#9aa4b2", running: "#2f6fe0", succeeded: "#2e9d4d", cached: "#1798a8",
    failed: "#d23a3a", skipped: "#c99a12", interrupted: "#a23fb5", retrying: "#c99a12"
  };

  function jsonOf(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function stepUrl(runId, name) {
    return "/runs/" + encodeURIComponent(runId) + "/steps/" + encodeURIComponent(name);
  }

  // -- the DAG -------------------------------------------------------------------------
  var FONT = "13px system-ui, -apple-system, Segoe UI, sans-serif";
  var PAD_X = 14, LINE = 17, PAD_Y = 9;

  function graphStyle() {
    var style = [
      { selector: "node", style: {
        "shape": "round-rectangle", "background-color": COLORS.pending, "label": "data(label)",
        "color": "#fff", "font-size": 13, "font-family": "system-ui, -apple-system, Segoe UI, sans-serif",
        "text-valign": "center", "text-halign": "center", "text-wrap": "wrap",
        "line-height": 1.3, "text-outline-width": 0 } },
      { selector: "node.step", style: { "width": "data(w)", "height": "data(h)" } },
      { selector: "node:selected", style: { "border-width": 3, "border-color": "#1d2330" } },
      { selector: "node.group", style: {
        "shape": "round-rectangle", "background-color": "#2f6fe0", "background-opacity": 0.06,
        "border-width": 1, "border-style": "dashed", "border-color": "#7d8796",
        "label": "data(label)", "color": "#1d2330", "font-size": 12, "text-valign": "top",
        "text-halign": "center", "text-margin-y": -3, "padding": 10 } },
      { selector: "edge", style: {
        "width": 1.5, "line-color": "#b4bcc8", "target-arrow-color": "#b4bcc8",
        "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "",
        "font-size": 11, "color": "#1d2330", "text-rotation": "autorotate",
        "text-background-color": "#fff", "text-background-opacity": 0.95,
        "text-background-padding": 2 } },
      { selector: "edge.labelled", style: { "label": "data(input)", "line-color": "#5f6b7a",
        "target-arrow-color": "#5f6b7a", "z-index": 10 } }
    ];
    Object.keys(COLORS).forEach(function (state) {
      style.push({ selector: 'node[state = "' + state + '"]',
                   style: { "background-color": COLORS[state] } });
    });
    return style;
  }

  function groupId(ns) { return ns ? "group:" + ns : undefined; }

  var measurer = null;
  function textWidth(text) {
    if (!measurer) { measurer = document.createElement("canvas").getContext("2d"); }
    measurer.font = FONT;
    return measurer.measureText(text).width;
  }

  function itemOf(id) {  // "train" for a mapped item "train[3]"
    var m = /^(.+)\[[0-9]+\]$/.exec(id);
    return m ? m[1] : null;
  }

  function stepData(n, parent) {
    var name = parent ? n.id.slice(parent.length + 1) : n.id;
    if (n.count) { name += " \u00d7 " + n.count; }
    var lines = [name];
    var dur = n.state === "cached" ? "cached" : fmtDuration(n.duration);
    if (dur) { lines.push(dur); }
    var widest = Math.max.apply(null, lines.map(textWidth));
    return { id: n.id, kind: n.kind, state: n.state, label: lines.join("\n"),
             parent: groupId(parent), count: n.count || 0, duration: n.duration,
             w: Math.ceil(Math.max(56, widest + 2 * PAD_X)),
             h: lines.length * LINE + 2 * PAD_Y };
  }

  function parentOf(id) {
    var i = id.lastIndexOf(".");
    return i > 0 ? id.slice(0, i) : null;
  }

  function elements(graph) {
    var els = (graph.groups || []).map(function (g) {
      return { group: "nodes", classes: "group",
               data: { id: groupId(g.id), label: g.label, parent: groupId(g.parent) } };
    });
    graph.nodes.forEach(function (n) {
      els.push({ group: "nodes", classes: "step", data: stepData(n, n.parent || null) });
    });
    graph.edges.forEach(function (e, i) {
      els.push({ group: "edges", data: { id: "e" + i + ":" + e.source + ">" + e.target,
                                         source: e.source, target: e.target, input: e.input } });
    });
    return els;
  }

  function layout(cy) {
    cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 22, rankSep: 80, edgeSep: 12,
                fit: true, padding: 24, animate: false }).run();
    if (cy.zoom() > 1.4) { cy.zoom(1.4); cy.center(); }
  }

  function showLabels(cy) {
    cy.on("mouseover", "edge", function (evt) { evt.target.addClass("labelled"); });
    cy.on("mouseout", "edge", function (evt) { evt.target.removeClass("labelled"); });
    cy.on("mouseover", "node.step", function (evt) { evt.target.connectedEdges().addClass("labelled"); });
    cy.on("mouseout", "node.step", function (evt) { evt.target.connectedEdges().removeClass("labelled"); });
  }

  function controls(held, box) {
    var bar = document.createElement("div");
    bar.className = "dag-controls";
    [["fit", "fit", function () { held.cy.fit(undefined, 24); }],
     ["zoom-in", "+", function () { zoomBy(held.cy, 1.25); }],
     ["zoom-out", "\u2212", function () { zoomBy(held.cy, 0.8); }],
     ["labels", "inputs", function () { held.cy.edges().toggleClass("labelled"); }]
    ].forEach(function (c) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.setAttribute("data-dag", c[0]);
      b.title = { "fit": "fit the graph", "zoom-in": "zoom in", "zoom-out": "zoom out",
                  "labels": "show every input's name" }[c[0]];
      b.textContent = c[1];
      b.addEventListener("click", c[2]);
      bar.appendChild(b);
    });
    var wrap = document.createElement("div");
    wrap.className = "dag-box";
    box.parentNode.insertBefore(wrap, box);
    wrap.appendChild(bar);
    wrap.appendChild(box);
  }

  function zoomBy(cy, factor) {
    var level = Math.min(cy.maxZoom(), Math.max(cy.minZoom(), cy.zoom() * factor));
    cy.zoom({ level: level, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
  }

  function drawGraph() {
    var box = document.getElementById("dag");
    var graph = jsonOf("graph-data");
    if (!box || !graph || typeof window.cytoscape !== "function") { return null; }
    var held = {};  // the buttons go in before Cytoscape measures its container
    controls(held, box);
    var cy = window.cytoscape({
      container: box, elements: elements(graph), style: graphStyle(),
      minZoom: 0.08, maxZoom: 3, boxSelectionEnabled: false, autoungrabify: true
    });
    held.cy = cy;
    layout(cy);
    showLabels(cy);
    window.orchGraph = cy;
    return cy;
  }

  // -- the step panel ------------------------------------------------------------------
  function openStep(runId, name) {
    var panel = document.getElementById("step-panel");
    if (!panel) { return; }
    document.querySelectorAll("tr[data-step]").forEach(function (tr) {
      tr.classList.toggle("selected", tr.getAttribute("data-step") === name);
    });
    if (window.orchGraph) {
      window.orchGraph.nodes().unselect();
      window.orchGraph.getElementById(name).select();
    }
    if (window.htmx) {
      window.htmx.ajax("GET", stepUrl(runId, name), { target: "#step-panel", swap: "innerHTML" });
    } else {
      window.location.href = stepUrl(runId, name);
    }
  }

  function wireRunPage(cy, runId) {
    if (cy) {
      cy.on("tap", "node.step", function (evt) { openStep(runId, evt.target.id()); });
    }
    var table = document.getElementById("steps-table");
    if (!table) { return; }
    table.addEventListener("click", function (evt) {
      var tr = evt.target.closest("tr[data-step]");
      if (!tr) { return; }
      var link = evt.target.closest("a");
      if (link && (evt.ctrlKey || evt.metaKey || evt.shiftKey || evt.button !== 0)) { return; }
      evt.preventDefault();
      openStep(runId, tr.getAttribute("data-step"));
    });
  }

  // -- live updates while a run is running ---------------------------------------------
  function fmtDuration(s) {
    if (s === null || s === undefined) { return ""; }
    if (s < 1) { return (s * 1000).toFixed(1) + "ms"; }
    if (s < 60) { return s.toFixed(2) + "s"; }
    var m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) { return m + "m " + (sec < 10 ? "0" : "") + sec + "s"; }
    var h = Math.floor(m / 60), mm = m % 60;
    return h + "h " + (mm < 10 ? "0" : "") + mm + "m";
  }

  function setState(el, state) {
    el.className = "state " + state;
    el.textContent = state;
  }

  function updateRow(runId, s) {
    var tbody = document.querySelector("#steps-table tbody");
    if (!tbody) { return; }
    var tr = tbody.querySelector('tr[data-step="' + CSS.escape(s.name) + '"]');
    if (!tr) {
      tr = document.createElement("tr");
      tr.setAttribute("data-step", s.name);
      ["name", "kind", "state", "attempts", "duration", "cache_key", "why"].forEach(function (col) {
        var td = document.createElement("td");
        td.setAttribute("data-col", col);
        tr.appendChild(td);
      });
      var a = document.createElement("a");
      a.href = stepUrl(runId, s.name);
      a.textContent = s.name;
      tr.children[0].appendChild(a);
      tr.children[1].textContent = s.kind;
      tr.children[2].appendChild(document.createElement("span"));
      tbody.appendChild(tr);
    }
    tr.setAttribute("data-state", s.state);
    var cell = function (col) { return tr.querySelector('[data-col="' + col + '"]'); };
    var badge = cell("state") && cell("state").querySelector(".state");
    if (badge) { setState(badge, s.state); }
    if (cell("attempts")) { cell("attempts").textContent = s.attempts === null ? "" : s.attempts; }
    if (cell("duration")) {
      cell("duration").textContent = s.state === "cached" ? "" : fmtDuration(s.duration);
    }
    if (cell("cache_key")) { cell("cache_key").textContent = (s.cache_key || "").slice(0, 12); }
    if (cell("why")) { cell("why").textContent = s.why || ""; }
  }

  function applyNode(cy, s) {  // true when a node was added
    var base = itemOf(s.name);
    if (base && cy.getElementById(base).length) { return false; }  // folded into its parent
    var node = cy.getElementById(s.name);
    if (node.length === 0) {
      var parent = parentOf(s.name);
      if (parent && cy.getElementById(groupId(parent)).length === 0) { parent = null; }
      cy.add({ group: "nodes", classes: "step", data: stepData(s, parent) });
      return true;
    }
    if (node.data("state") !== s.state || node.data("duration") !== s.duration) {
      var d = stepData({ id: s.name, kind: s.kind, state: s.state, duration: s.duration,
                         count: node.data("count") }, parentOf(node.data("parent") ? s.name : ""));
      node.data({ state: d.state, duration: d.duration, label: d.label, w: d.w, h: d.h });
    }
    return false;
  }

  function applyRun(cy, runId, doc) {
    var added = false;
    doc.steps.forEach(function (s) {
      if (cy && applyNode(cy, s)) { added = true; }
      updateRow(runId, s);
    });
    if (added) { layout(cy); }
    var header = document.getElementById("run-header");
    var status = document.getElementById("run-status");
    if (header) { header.setAttribute("data-status", doc.run.status); }
    if (status) { setState(status, doc.run.status); }
    var dur = document.getElementById("run-duration");
    if (dur) { dur.textContent = fmtDuration(doc.run.duration); }
  }

  function follow(cy, runId) {
    var busy = false;
    var timer = window.setInterval(function () {
      if (busy) { return; }
      busy = true;
      fetch("/api/runs/" + encodeURIComponent(runId), { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (doc) {
          if (!doc) { return; }
          applyRun(cy, runId, doc);
          if (doc.run.status !== "running") { window.clearInterval(timer); }
        })
        .catch(function () { /* a missed poll: the next one catches up */ })
        .then(function () { busy = false; });
    }, 1000);
  }

  // -- confirmations -------------------------------------------------------------------
  function wireConfirms() {
    document.addEventListener("submit", function (evt) {
      var form = evt.target;
      var message = form.getAttribute && form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) { evt.preventDefault(); }
    });
  }

  // -- charts --------------------------------------------------------------------------
  // One point per version, never a spline: versions are joined by a straight segment
  // only when evaluated on the same data; a version on other data is a red triangle.
  function metricDataset(data, m) {
    var changed = data.changed || [];
    return {
      label: m, data: data.metrics[m], borderColor: "#2457c5", backgroundColor: "#2457c5",
      tension: 0, spanGaps: false, pointRadius: 5, pointHoverRadius: 7,
      pointStyle: changed.map(function (c) { return c ? "triangle" : "circle"; }),
      pointBackgroundColor: changed.map(function (c) { return c ? "#d23a3a" : "#2457c5"; }),
      segment: { borderColor: function (ctx) {
        return changed[ctx.p1DataIndex] ? "rgba(0,0,0,0)" : "#2457c5";
      } }
    };
  }

  function metricChart() {
    var canvas = document.getElementById("metric-chart");
    var data = jsonOf("chart-data");
    if (!canvas || !data || !data.chosen || typeof window.Chart !== "function") { return; }
    var chart = new window.Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: [metricDataset(data, data.chosen)] },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 plugins: { tooltip: { callbacks: { afterLabel: function (item) {
                   var h = (data.data || [])[item.dataIndex];
                   return (data.changed[item.dataIndex] ? "other data than before: " : "data ") +
                     (h || "unknown");
                 } } } },
                 scales: { y: { title: { display: true, text: data.chosen } } } }
    });
    window.orchMetricChart = chart;
    var select = document.getElementById("metric-select");
    if (select) {
      select.addEventListener("change", function () {
        var m = select.value;
        chart.data.datasets[0] = metricDataset(data, m);
        chart.options.scales.y.title.text = m;
        chart.update();
      });
    }
  }

  function thresholdLine(label, value, n) {
    var values = [];
    for (var i = 0; i < n; i++) { values.push(value); }
    return { type: "line", label: label, data: values, borderColor: "#d23a3a",
             borderDash: [6, 4], pointRadius: 0, fill: false };
  }

  function driftCharts() {
    var data = jsonOf("drift-data");
    if (!data || typeof window.Chart !== "function") { return; }
    var colors = data.drifted.map(function (d) { return d ? "#d23a3a" : "#1798a8"; });
    var psi = document.getElementById("psi-chart");
    if (psi) {
      var sets = [{ type: "bar", label: "PSI", data: data.psi, backgroundColor: colors }];
      if (data.psi_threshold !== null && data.psi_threshold !== undefined) {
        sets.push(thresholdLine("threshold " + data.psi_threshold, data.psi_threshold, data.labels.length));
      }
      window.orchPsiChart = new window.Chart(psi, { data: { labels: data.labels, datasets: sets },
        options: { responsive: true, maintainAspectRatio: false, animation: false } });
    }
    var ks = document.getElementById("ks-chart");
    if (ks) {
      var ksSets = [{ type: "bar", label: "KS p-value", data: data.ks_pvalue, backgroundColor: colors }];
      if (data.ks_threshold !== null && data.ks_threshold !== undefined) {
        ksSets.push(thresholdLine("threshold " + data.ks_threshold, data.ks_threshold, data.labels.length));
      }
      var ps = data.ks_pvalue.filter(function (v) { return v !== null && v > 0; });
      var low = Math.min.apply(null, ps.concat([data.ks_threshold || 1, 1e-3]));
      var min = Math.pow(10, Math.max(-300, Math.floor(Math.log10(low)) - 1));
      window.orchKsChart = new window.Chart(ks, { data: { labels: data.labels, datasets: ksSets },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
                   scales: { y: { type: "logarithmic", min: min, max: 1,
                                  title: { display: true, text: "p-value (log scale)" },
                                  ticks: { callback: function (v) {
                                    var e = Math.log10(v);
                                    return Math.abs(e - Math.round(e)) < 1e-9 ? "1e" + Math.round(e) : "";
                                  } } } } } });
    }
  }

  function historyChart() {
    var canvas = document.getElementById("history-chart");
    var data = jsonOf("history-data");
    if (!canvas || !data || typeof window.Chart !== "function") { return; }
    var colors = data.fired.map(function (f) { return f ? "#d23a3a" : "#1798a8"; });
    window.orchHistoryChart = new window.Chart(canvas, {
      type: "line",
      data: { labels: data.labels, datasets: [{ label: data.label, data: data.values,
              borderColor: "#2457c5", pointBackgroundColor: colors, pointRadius: 5 }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 onClick: function (_evt, items) {
                   if (items.length) { window.location = "/drift/" + data.ids[items[0].index]; }
                 } }
    });
  }

  // -- start ---------------------------------------------------------------------------
  function start() {
    wireConfirms();
    var cy = drawGraph();
    var header = document.getElementById("run-header");
    if (header) {
      var runId = header.getAttribute("data-run-id");
      wireRunPage(cy, runId);
      if (header.getAttribute("data-status") === "running") { follow(cy, runId); }
    }
    metricChart();
    driftCharts();
    historyChart();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
