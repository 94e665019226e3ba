// Draws the definitions a case ran (its own and every one it called) with bpmn-js, one at a time, and
// marks the path it took in each. Data comes from the page itself (a JSON block), so the page needs no
// further authenticated requests. A definition's page (/definitions/<key>) draws its picture the same way,
// from a block of its own with nothing to mark.
(function () {
  "use strict";
  var block = document.getElementById("case-data") || document.getElementById("picture-data");
  var data = JSON.parse(block.textContent);
  var viewer = new BpmnJS({ container: "#canvas" });
  var shown = null;

  function diagramOf(definition) {
    return data.diagrams.filter(function (d) { return d.definition === definition; })[0];
  }

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

  // Resolves once the definition is drawn and marked; the body's data-shown says which one it is.
  function show(definition) {
    var diagram = diagramOf(definition);
    if (!diagram) { return Promise.resolve(); }
    if (shown === definition) { return Promise.resolve(); }
    document.body.removeAttribute("data-rendered");
    return viewer.importXML(diagram.bpmn).then(function () {
      shown = definition;
      viewer.get("canvas").zoom("fit-viewport");
      mark(diagram.executed, "usm-executed");
      mark(diagram.flows, "usm-executed");
      mark(diagram.current, "usm-current");
      mark(diagram.earlier || [], "usm-earlier");  // ran on an earlier version of the definition
      document.querySelectorAll("#processes button").forEach(function (button) {
        button.setAttribute("aria-pressed", String(button.getAttribute("data-definition") === definition));
      });
      document.body.setAttribute("data-shown", definition);
      document.body.setAttribute("data-rendered", "true");
    }).catch(function (error) {
      document.getElementById("canvas").textContent = "The diagram could not be drawn: " + error.message;
      document.body.setAttribute("data-rendered", "error");
    });
  }

  document.querySelectorAll("#processes button").forEach(function (button) {
    button.addEventListener("click", function () { show(button.getAttribute("data-definition")); });
  });
  document.querySelectorAll("[data-element]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      show(link.getAttribute("data-definition")).then(function () { focus(link.getAttribute("data-element")); });
    });
  });

  show(data.diagrams[0].definition);
})();
