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

// A refresh never closes a dialog the person has open: it waits until the dialog is closed,
// then the refreshed part asks again (its hx-trigger listens for "refresh").
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  const open = target && target.querySelector ? target.querySelector("dialog[open]") : null;
  if (open) {
    event.detail.shouldSwap = false;
    open.addEventListener("close", () => htmx.trigger(target, "refresh"), { once: true });
  }
});

// The VM page's console is worth polling while the guest is up; the state card, kept live
// while an operation runs, says whether it is.
function consoleIsLive() {
  const status = document.getElementById("vm-status");
  return status !== null && ["running", "creating"].includes(status.dataset.state);
}
