// The console's little JavaScript. Every page is whole without it; with it, the page's tables follow
// the cluster (the elements marked data-live are fetched again every data-refresh milliseconds and
// swapped in place), and the agents page draws live rate charts from the JSON endpoint named by
// .charts[data-src].
(function () {
  "use strict";

  // Live tables: fetch this page again and swap each [data-live] element for its new self.
  var every = parseInt(document.body.getAttribute("data-refresh"), 10);
  function refresh() {
    fetch(location.href, { cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status); }
      return r.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-live]").forEach(function (el) {
        var fresh = doc.getElementById(el.id);
        if (fresh) { el.replaceWith(document.importNode(fresh, true)); }
      });
    }).catch(function () { /* the agent may be away: the next refresh tries again */ });
  }
  if (every > 0) { setInterval(refresh, every); }

  // Rate charts.
  var box = document.querySelector(".charts[data-src]");
  if (!box) { return; }
  var src = box.getAttribute("data-src");

  function format(v) {
    if (v >= 100) { return v.toFixed(0); }
    if (v >= 10) { return v.toFixed(1); }
    return v.toFixed(2);
  }

  // span is the time the charts cover, as the agent keeps its samples: five minutes, one a second.
  var span = parseInt(box.getAttribute("data-span-ms"), 10) || 300000;

  // draw plots points (taken at times, unix ms) on a time axis ending at the latest sample, so that
  // a history younger than span sits at the right, as it happened.
  function draw(fig, times, points) {
    var canvas = fig.querySelector("canvas");
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    // The headline is the mean of the last five seconds: a one-second sample swings with the flushes.
    var recent = points.slice(-5);
    fig.querySelector(".value").textContent = recent.length ?
      format(recent.reduce(function (a, b) { return a + b; }, 0) / recent.length) : "–";
    var top = Math.max.apply(null, points.concat([0]));
    fig.setAttribute("data-max", String(top));
    fig.setAttribute("data-points", String(points.length));
    if (points.length < 2 || times.length !== points.length) { return; }
    if (top <= 0) { top = 1; }
    var end = times[times.length - 1], start = end - span;
    ctx.strokeStyle = "#1f6feb";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(function (v, i) {
      var x = Math.max(0, (times[i] - start) / span) * (w - 2) + 1;
      var y = h - 2 - v / top * (h - 4);
      if (i === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
    });
    ctx.stroke();
  }

  // agents lists the agents whose rates are summed and, by name, those missing and why.
  function agents(list) {
    var el = document.getElementById("rate-agents");
    if (!el || !list) { return; }
    var ok = list.filter(function (a) { return a.state === "ok"; });
    el.textContent = "";
    el.setAttribute("data-summed", String(ok.length));
    el.appendChild(document.createTextNode("Summed: " + ok.length + " of " + list.length + " agents."));
    list.forEach(function (a) {
      if (a.state === "ok") { return; }
      var span = document.createElement("span");
      span.className = "bad rate-missing";
      span.setAttribute("data-agent", a.id);
      span.textContent = " " + a.id + ": " + a.state + ".";
      el.appendChild(span);
    });
  }

  function poll() {
    fetch(src, { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (data) {
      (data.series || []).forEach(function (s) {
        var fig = box.querySelector('figure[data-key="' + s.key + '"]');
        if (fig) { draw(fig, data.times || [], s.points || []); }
      });
      agents(data.agents);
    }).catch(function () { /* the next poll tries again */ });
  }
  poll();
  setInterval(poll, 2000);
})();
