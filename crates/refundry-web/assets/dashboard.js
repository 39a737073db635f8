// Draws the dashboard's charts from the JSON block the page carries
// (#dashboard-data). The tables under the charts hold the same figures, so
// a browser without JavaScript, or a screen reader, misses nothing.
(function () {
  "use strict";
  function start() {
    var block = document.getElementById("dashboard-data");
    if (!block || typeof echarts === "undefined") return;
    var data = JSON.parse(block.textContent);
    var money = data.labels.amount + " (" + data.labels.currency + ")";
    var palette = ["#1f5fa8", "#e07b24", "#2e8b57", "#b03a48", "#7a5195", "#4f9da6", "#c9a227", "#6b7a8f"];
    var bars = function (items) {
      return {
        color: palette,
        grid: { left: 8, right: 16, top: 10, bottom: 8, containLabel: true },
        tooltip: { trigger: "axis" },
        xAxis: { type: "value", name: money },
        yAxis: { type: "category", inverse: true, data: items.map(function (i) { return i.name; }) },
        series: [{ type: "bar", barMaxWidth: 28, name: money, data: items.map(function (i) { return i.value; }) }]
      };
    };
    var options = {
      days: {
        color: palette,
        grid: { left: 8, right: 8, top: 30, bottom: 8, containLabel: true },
        tooltip: { trigger: "axis" },
        legend: { data: [money, data.labels.count] },
        xAxis: { type: "category", data: data.days.dates },
        yAxis: [{ type: "value" }, { type: "value", minInterval: 1, splitLine: { show: false } }],
        series: [
          { type: "bar", name: money, data: data.days.amounts },
          { type: "line", name: data.labels.count, yAxisIndex: 1, data: data.days.counts }
        ]
      },
      reasons: {
        color: palette,
        tooltip: { trigger: "item" },
        series: [{ type: "pie", radius: ["40%", "70%"], data: data.reasons }]
      },
      stores: bars(data.stores),
      cashiers: bars(data.cashiers)
    };
    var charts = [];
    document.querySelectorAll(".chart[data-chart]").forEach(function (el) {
      var option = options[el.getAttribute("data-chart")];
      if (!option) return;
      var chart = echarts.init(el);
      // drawn at once: a counter PC has little to spare, and print or a
      // screenshot never catches a half-grown bar
      option.animation = false;
      chart.setOption(option);
      charts.push(chart);
    });
    window.addEventListener("resize", function () {
      charts.forEach(function (c) { c.resize(); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
