// Draws a case's definition with bpmn-js and marks the path it took. Data comes from the page itself
// (a JSON block), so the page needs no further authenticated requests.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("case-data").textContent);
  var viewer = new BpmnJS({ container: "#canvas" });

  function mark(ids, marker) {
    var canvas = viewer.get("canvas");
    var registry = viewer.get("elementRegistry");
    ids.forEach(function (id) {
      if (registry.get(id)) { canvas.addMarker(id, marker); }
    });
  }

  function focus(id) {
    var registry = viewer.get("elementRegistry");
    var element = registry.get(id);
    document.querySelectorAll(".usm-focus").forEach(function (node) { node.classList.remove("usm-focus"); });
    if (element) {
      viewer.get("canvas").addMarker(id, "usm-focus");
      viewer.get("canvas").scrollToElement(element);
    }
  }

  viewer.importXML(data.bpmn).then(function () {
    viewer.get("canvas").zoom("fit-viewport");
    mark(data.executed, "usm-executed");
    mark(data.flows, "usm-executed");
    mark(data.current, "usm-current");
    document.body.setAttribute("data-rendered", "true");
  }).catch(function (error) {
    document.getElementById("canvas").textContent = "The diagram could not be drawn: " + error.message;
    document.body.setAttribute("data-rendered", "error");
  });

  document.querySelectorAll("[data-element]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      focus(link.getAttribute("data-element"));
    });
  });
})();
