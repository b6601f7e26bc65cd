/* Draws every <script type="application/json" data-chart data-target="ID"> (a plotly figure built in
   Python) into the element with that id, with plotly.js from static/vendor. No inline scripts (CSP). */
(function () {
  "use strict";

  function drawAll() {
    if (!window.Plotly) return;
    var blocks = document.querySelectorAll('script[type="application/json"][data-chart]');
    Array.prototype.forEach.call(blocks, function (block) {
      var target = document.getElementById(block.dataset.target);
      if (!target) return;
      var fig = JSON.parse(block.textContent);
      if (document.documentElement.dataset.theme === "dark") {
        fig.layout.font = Object.assign({}, fig.layout.font, { color: "#e8eef4" });
      }
      // No toolbar: its buttons are too small to tap, and one of them would offer to upload the chart.
      window.Plotly.newPlot(target, fig.data, fig.layout,
        { responsive: true, displaylogo: false, displayModeBar: false, showSendToCloud: false });
      target.dataset.drawn = "true";
    });
  }

  document.addEventListener("DOMContentLoaded", drawAll);
})();
