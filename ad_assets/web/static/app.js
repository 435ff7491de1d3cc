// The search pages' only script: drag-and-drop of a query image, and seeking the player.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const drop = document.getElementById("drop");
  const input = document.getElementById("image");
  const label = document.getElementById("drop-label");
  if (drop && input) {
    const show = () => { if (input.files.length) label.textContent = input.files[0].name; };
    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
    ["dragleave", "drop"].forEach((e) => drop.addEventListener(e, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      if (ev.dataTransfer && ev.dataTransfer.files.length) { input.files = ev.dataTransfer.files; show(); }
    });
  }
  const player = document.getElementById("player");
  if (player) {
    const start = parseFloat(player.dataset.start || "0");
    const seek = (t) => { try { player.currentTime = t; } catch (e) { /* not seekable yet */ } };
    if (start > 0) {
      if (player.readyState >= 1) seek(start); else player.addEventListener("loadedmetadata", () => seek(start), { once: true });
    }
    document.querySelectorAll("button.seek").forEach((b) => b.addEventListener("click", () => {
      seek(parseFloat(b.dataset.t)); player.play().catch(() => {});
    }));
  }
});
