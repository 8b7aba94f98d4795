// Swagger UI for the spec this server enforces. Kept out of index.html so
// the Content-Security-Policy needs no inline script.
window.ui = SwaggerUIBundle({
  url: "openapi.yaml",
  dom_id: "#swagger-ui",
  deepLinking: false,
  // Tokens live in this page only, never in local storage.
  persistAuthorization: false,
  tryItOutEnabled: false,
  displayRequestDuration: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
