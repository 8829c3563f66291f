// Live rate charts of the console: polls the JSON endpoint named by .charts[data-src] and draws each
// series as a line in its figure's canvas. The tables are server-rendered and need none of this.
(function () {
  "use strict";
  var box = document.querySelector(".charts[data-src]");
  if (!box) { return; }
  var src = box.getAttribute("data-src");

  function draw(fig, points) {
    var canvas = fig.querySelector("canvas");
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    var top = Math.max.apply(null, points.concat([0]));
    fig.querySelector(".value").textContent = points.length ? format(points[points.length - 1]) : "–";
    if (points.length < 2) { return; }
    if (top <= 0) { top = 1; }
    ctx.strokeStyle = "#1f6feb";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(function (v, i) {
      var x = i * (w - 2) / (points.length - 1) + 1;
      var y = h - 2 - v / top * (h - 4);
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    ctx.stroke();
  }

  function format(v) {
    if (v >= 100) { return v.toFixed(0); }
    if (v >= 10) { return v.toFixed(1); }
    return v.toFixed(2);
  }

  function poll() {
    fetch(src, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (data) {
      (data.series || []).forEach(function (s) {
        var fig = box.querySelector('figure[data-key="' + s.key + '"]');
        if (fig) { draw(fig, s.points || []); }
      });
    }).catch(function () { /* the next poll tries again */ });
  }

  poll();
  setInterval(poll, 2000);
})();
