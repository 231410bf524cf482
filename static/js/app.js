// Dialogs: a button with data-open="id" opens the dialog; one with data-close closes its own.
document.addEventListener("click", (event) => {
  const opener = event.target.closest("[data-open]");
  if (opener) {
    event.preventDefault();
    document.getElementById(opener.dataset.open).showModal();
  }
  const closer = event.target.closest("[data-close]");
  if (closer) {
    event.preventDefault();
    closer.closest("dialog").close();
  }
});

// Keep the console scrolled to its newest line.
function scrollConsole() {
  const console = document.querySelector(".console");
  if (console) console.scrollTop = console.scrollHeight;
}
document.addEventListener("DOMContentLoaded", scrollConsole);
document.addEventListener("htmx:afterSwap", scrollConsole);
