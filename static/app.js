// BMS console — progressive enhancement only: every page works without this script.
"use strict";

document.addEventListener("keydown", (event) => {
  // Escape closes an open account menu and gives focus back to its toggle.
  if (event.key !== "Escape") return;
  for (const menu of document.querySelectorAll("details.account-menu[open]")) {
    menu.removeAttribute("open");
    menu.querySelector("summary")?.focus();
  }
});
