/* Supervisor pages: draws the dashboard's charts (Chart.js, vendored) from the JSON in each
   canvas's data-chart attribute, and lets the team list tick every case on the page.
   A static file, no inline script: the pages run under a strict Content-Security-Policy. */
(function () {
  "use strict";

  var PALETTE = ["#0b69a3", "#de911d", "#3f9142", "#ab091e", "#7c5e10", "#5a3fa0", "#2bb0ed", "#829ab1"];

  function chartConfig(spec) {
    var percent = Boolean(spec.percent);
    var isDoughnut = spec.type === "doughnut";
    var datasets = spec.datasets.map(function (set, index) {
      var colour = PALETTE[index % PALETTE.length];
      return {
        label: set.label,
        data: set.data,
        backgroundColor: isDoughnut ? PALETTE.slice(0, set.data.length) : colour,
        borderColor: isDoughnut ? "#fff" : colour,
        borderWidth: spec.type === "line" ? 2 : 1,
        spanGaps: false,
        tension: 0.2,
      };
    });
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { display: isDoughnut || datasets.length > 1, position: "bottom" },
        tooltip: {
          callbacks: {
            label: function (context) {
              var value = context.parsed && typeof context.parsed === "object" ? context.parsed.y : context.parsed;
              return context.dataset.label + ": " + (value === null ? "n/a" : value.toLocaleString()) + (percent ? "%" : "");
            },
          },
        },
      },
    };
    if (!isDoughnut) {
      options.scales = {
        y: {
          beginAtZero: true,
          ticks: {
            callback: function (value) {
              return value.toLocaleString() + (percent ? "%" : "");
            },
          },
        },
      };
    }
    return { type: spec.type, data: { labels: spec.labels, datasets: datasets }, options: options };
  }

  function drawCharts() {
    var canvases = document.querySelectorAll("canvas[data-chart]");
    if (!canvases.length) {
      return;
    }
    if (typeof window.Chart === "undefined") {
      throw new Error("Chart.js did not load: the tables still hold every number.");
    }
    canvases.forEach(function (canvas) {
      var chart = new window.Chart(canvas, chartConfig(JSON.parse(canvas.dataset.chart)));
      canvas.dataset.drawn = "true";
      canvas.chart = chart;
    });
  }

  function tickAll() {
    document.querySelectorAll("input.select-all").forEach(function (box) {
      box.addEventListener("change", function () {
        var form = box.closest("form");
        form.querySelectorAll("input.case-select").forEach(function (caseBox) {
          caseBox.checked = box.checked;
        });
      });
    });
  }

  function start() {
    tickAll();
    drawCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
