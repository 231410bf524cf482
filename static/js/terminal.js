// The terminal page: xterm.js drawing what the guest's console prints, every key sent as typed.
(function () {
  "use strict";
  const box = document.getElementById("terminal");
  if (!box) return;
  const status = document.querySelector("[data-testid=terminal-status]");
  const term = new Terminal({ cursorBlink: true, convertEol: false, scrollback: 5000,
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", fontSize: 14 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  // A serial line carries no window size: the guest learns it when told, e.g. by this command.
  const sizeHint = document.querySelector("[data-testid=terminal-size]");
  const fitted = () => {
    fit.fit();
    if (sizeHint) sizeHint.textContent = `stty cols ${term.cols} rows ${term.rows}`;
  };
  fitted();
  window.addEventListener("resize", fitted);
  window.kodingTerminal = term; // for tests and the curious: what the screen shows

  const socket = new WebSocket(box.dataset.socket);
  socket.binaryType = "arraybuffer";
  let ended = false;
  const say = (text, isError) => {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  };
  socket.addEventListener("open", () => {
    say("Connected. Press Enter if the screen is empty.");
    term.focus();
  });
  socket.addEventListener("message", (event) => {
    if (typeof event.data === "string") {
      const said = JSON.parse(event.data);
      if (said.ended) { ended = true; say(said.ended, true); }
      return;
    }
    term.write(new Uint8Array(event.data));
  });
  socket.addEventListener("close", () => {
    if (!ended) say("The terminal is disconnected. Reload the page to connect again.", true);
    term.options.disableStdin = true;
  });
  term.onData((data) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(data);
  });
})();
