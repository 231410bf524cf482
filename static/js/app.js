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

// A time given in a zone of its own (`<time datetime=… data-zone=…>`, a policy's next run) also
// says when that is for the person reading, when their browser's zone is another.
function addLocalTimes() {
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const time of document.querySelectorAll("time[data-zone]:not([data-local])")) {
    time.dataset.local = "";
    const when = new Date(time.getAttribute("datetime"));
    if (time.dataset.zone === browserZone || Number.isNaN(when.getTime())) continue;
    const hhmm = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    const local = document.createElement("span");
    local.className = "muted local-time";
    local.textContent = ` (${hhmm} your time)`;
    time.after(local);
    time.dataset.local = hhmm;
  }
}
document.addEventListener("DOMContentLoaded", addLocalTimes);
document.addEventListener("htmx:afterSwap", addLocalTimes);
