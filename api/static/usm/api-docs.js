// Sets up Swagger UI on the API reference page (/api/v1/docs). It lives here, not in the page, so the page's
// Content-Security-Policy can forbid inline script; the document's address comes from a data- attribute.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    domNode: root,
    deepLinking: true, // every operation gets an address (#/tag/operationId) a person can share
    filter: true, // a box that narrows the list down by tag
    // The default asks validator.swagger.io about the document: this page contacts nothing but this server.
    validatorUrl: null,
    // A token given to "Authorize" stays in this page's memory; written to localStorage it would outlive it.
    persistAuthorization: false,
    onComplete: function () {
      // Tests and people's scripts wait for this before they look at the rendered operations.
      document.body.setAttribute("data-rendered", "true");
    },
  });
})();
