// Behaviour the pages need beyond htmx, kept out of the HTML so the
// Content-Security-Policy can forbid inline scripts.
document.addEventListener("click", function (event) {
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});
