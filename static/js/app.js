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

// An upload form (`data-upload-progress`) sends its file with a progress bar: how much of the
// file has gone, then "checking". Without JavaScript the form posts as any other.
function sizeText(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-upload-progress]");
  if (!form || !window.FormData || !window.DOMParser) return;
  event.preventDefault();
  const status = form.querySelector("[data-upload-status]");
  const bar = status.querySelector(".progress > span");
  const text = status.querySelector("[data-upload-text]");
  const button = form.querySelector("button[type=submit]");
  const say = (words, fraction) => {
    status.hidden = false;
    text.textContent = words;
    bar.style.width = `${Math.round(fraction * 100)}%`;
  };
  const request = new XMLHttpRequest();
  request.open("POST", form.action || window.location.href);
  request.setRequestHeader("X-Upload-Progress", "1");
  request.upload.addEventListener("progress", (progress) => {
    if (!progress.lengthComputable) return;
    const fraction = progress.loaded / progress.total;
    say(
      `Uploading: ${Math.floor(fraction * 100)}% (${sizeText(progress.loaded)} of ${sizeText(progress.total)})`,
      fraction,
    );
  });
  request.upload.addEventListener("load", () => say("Uploaded; the file is being checked…", 1));
  request.addEventListener("load", () => {
    const accepted = request.getResponseHeader("Content-Type") === "application/json";
    if (request.status === 200 && accepted) {
      window.location.assign(JSON.parse(request.responseText).location);
      return;
    }
    // Refused (or signed out meanwhile): the page the server answered with, in place of this
    // one; its form says why.
    const answered = new DOMParser().parseFromString(request.responseText, "text/html");
    const main = document.querySelector("main");
    const replacement = answered.querySelector("main");
    if (main && replacement) main.replaceWith(replacement);
    else say("The upload was refused; reload the page and try again.", 0);
  });
  request.addEventListener("error", () => {
    say("The upload was interrupted; check the connection and try again.", 0);
    button.disabled = false;
  });
  button.disabled = true;
  request.send(new FormData(form));
});
