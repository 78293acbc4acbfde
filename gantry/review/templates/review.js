// Draw a redaction zone with the mouse: drag on the image to fill the "New zone"
// fields (rows and columns in image pixels). The form works without this script.
(function () {
  "use strict";
  var svg = document.getElementById("image-svg");
  var form = document.getElementById("zones-form");
  if (!svg || !form) { return; }
  var rows = Number(svg.dataset.rows), cols = Number(svg.dataset.cols);
  var start = null, box = null;
  function point(event) {
    var p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    var q = p.matrixTransform(svg.getScreenCTM().inverse());
    return {r: Math.min(rows, Math.max(0, q.y)), c: Math.min(cols, Math.max(0, q.x))};
  }
  function zone(a, b) {
    return {r1: Math.floor(Math.min(a.r, b.r)), r2: Math.ceil(Math.max(a.r, b.r)),
            c1: Math.floor(Math.min(a.c, b.c)), c2: Math.ceil(Math.max(a.c, b.c))};
  }
  function show(z) {
    box.setAttribute("x", z.c1); box.setAttribute("y", z.r1);
    box.setAttribute("width", z.c2 - z.c1); box.setAttribute("height", z.r2 - z.r1);
  }
  svg.addEventListener("pointerdown", function (event) {
    start = point(event);
    if (!box) {
      box = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      box.setAttribute("class", "zone-drawn");
      svg.appendChild(box);
    }
    show(zone(start, start));
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", function (event) {
    if (start) { show(zone(start, point(event))); }
  });
  svg.addEventListener("pointerup", function (event) {
    if (!start) { return; }
    var z = zone(start, point(event));
    start = null;
    if (z.r2 <= z.r1 || z.c2 <= z.c1) { return; }
    ["r1", "r2", "c1", "c2"].forEach(function (k) { document.getElementById("new_" + k).value = z[k]; });
    document.getElementById("zones-save").focus();
  });
})();
