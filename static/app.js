// BMS console — progressive enhancement only: every page works without this script (forms post as
// plain HTML; the policy checkboxes are in the form itself).
"use strict";

// Escape closes an open account menu and gives focus back to its toggle.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const menu of document.querySelectorAll("details.account-menu[open]")) {
    menu.removeAttribute("open");
    menu.querySelector("summary")?.focus();
  }
});

// Copy buttons: <button data-copy="text">. Shown only where the clipboard API exists.
function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain-HTTP pages (local installs) have no async clipboard: fall back to a hidden textarea.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok ? Promise.resolve() : Promise.reject(new Error("copy failed"));
}

// Screen readers hear what a button did through this polite live region ("Copied to the clipboard").
const announcer = document.createElement("div");
announcer.className = "visually-hidden";
announcer.setAttribute("role", "status");
document.body.appendChild(announcer);
function announce(message) {
  announcer.textContent = "";
  // A change after a tick is announced even when the same message is repeated.
  setTimeout(() => { announcer.textContent = message; }, 50);
}

for (const button of document.querySelectorAll("[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", () => {
    const label = button.textContent;
    copyText(button.dataset.copy).then(
      () => { button.textContent = "Copied"; button.classList.add("copied"); announce("Copied to the clipboard"); },
      () => { button.textContent = "Select and copy"; announce("Could not copy: select the text and copy it"); },
    ).finally(() => setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1800));
  });
}

// The policy selection modal: the form keeps its plain checkboxes (hidden when this script runs); the
// dialog edits a copy of the selection and writes it back on "Confirm selection".
for (const picker of document.querySelectorAll("[data-policy-picker]")) {
  const dialog = picker.querySelector("[data-policy-dialog]");
  if (!dialog || typeof dialog.showModal !== "function") continue;
  const formBoxes = [...picker.querySelectorAll("[data-policy-list] input[type=checkbox]")];
  const dialogBoxes = [...dialog.querySelectorAll("[data-dialog-policy]")];
  const chips = picker.querySelector("[data-policy-chips]");
  const open = picker.querySelector("[data-open-policies]");
  const filter = dialog.querySelector("[data-policy-filter]");
  const none = dialog.querySelector("[data-policy-none]");

  const renderChips = () => {
    chips.replaceChildren();
    const chosen = formBoxes.filter((b) => b.checked);
    if (chosen.length === 0) {
      const empty = document.createElement("span");
      empty.className = "empty";
      empty.textContent = "No policy selected.";
      chips.appendChild(empty);
    }
    for (const box of chosen) {
      const chip = document.createElement("span");
      chip.className = "badge info";
      chip.textContent = box.value;
      chips.appendChild(chip);
    }
    open.textContent = chosen.length ? "Change policies" : "+ Add policies";
  };
  const applyFilter = () => {
    const term = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const option of dialog.querySelectorAll("[data-policy-option]")) {
      const match = option.textContent.toLowerCase().includes(term);
      option.hidden = !match;
      if (match) shown += 1;
    }
    none.hidden = shown !== 0;
  };

  picker.classList.add("enhanced");
  chips.hidden = false;
  open.hidden = false;
  renderChips();

  open.addEventListener("click", () => {
    dialogBoxes.forEach((box, i) => { box.checked = formBoxes[i].checked; });
    filter.value = "";
    applyFilter();
    dialog.showModal();
    filter.focus();
  });
  filter.addEventListener("input", applyFilter);
  // Enter in the filter box must not submit the form behind the dialog.
  filter.addEventListener("keydown", (event) => { if (event.key === "Enter") event.preventDefault(); });
  dialog.querySelector("[data-confirm-policies]").addEventListener("click", () => {
    formBoxes.forEach((box, i) => { box.checked = dialogBoxes[i].checked; });
    renderChips();
    dialog.close("confirm");
  });
  dialog.querySelector("[data-cancel-policies]").addEventListener("click", () => dialog.close("cancel"));
  // Focus goes back to the button that opened the dialog (Escape closes it natively).
  dialog.addEventListener("close", () => open.focus());
}

// The secret view: the secret (and the lines that contain it) stay blurred until "Reveal"; copying works
// either way. Without JavaScript the secret is simply shown.
const secret = document.querySelector("[data-secret]");
const reveal = document.querySelector("[data-reveal]");
if (secret && reveal) {
  const masked = [secret, ...document.querySelectorAll("[data-secret-text]")];
  const setMasked = (on) => {
    for (const el of masked) el.classList.toggle(el === secret ? "masked" : "masked-text", on);
    reveal.textContent = on ? "Reveal" : "Hide";
    reveal.setAttribute("aria-pressed", on ? "false" : "true");
  };
  reveal.hidden = false;
  setMasked(true);
  reveal.addEventListener("click", () => setMasked(!secret.classList.contains("masked")));
}

// Times: the server writes UTC (<time datetime="…Z" data-local="datetime|date">UTC text</time>); show
// them in this browser's time zone, naming the zone, and keep the UTC text as the tooltip.
{
  const pad = (n) => String(n).padStart(2, "0");
  const zoneOf = (at) =>
    new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
      .formatToParts(at)
      .find((part) => part.type === "timeZoneName")?.value ?? "";
  for (const element of document.querySelectorAll("time[data-local]")) {
    const at = new Date(element.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    let text = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`;
    if (element.dataset.local === "datetime") {
      text += ` ${pad(at.getHours())}:${pad(at.getMinutes())} ${zoneOf(at)}`;
    }
    element.title = `${element.textContent.trim()}${element.dataset.local === "date" ? " (UTC)" : ""}`;
    element.textContent = text.trim();
  }
}

// The inline description editor: focus its field when it opens; Cancel closes it and puts the text
// back without a page load (without scripts, Cancel is a link back to the tab).
for (const details of document.querySelectorAll("details.inline-edit")) {
  details.addEventListener("toggle", () => {
    if (details.open) details.querySelector("input[type=text]")?.focus();
  });
  details.querySelector("[data-cancel-edit]")?.addEventListener("click", (event) => {
    event.preventDefault();
    details.querySelector("form")?.reset();
    details.open = false;
    details.querySelector("summary")?.focus();
  });
}

// After a refused form, focus goes to the first field with a message, which is tied to it by
// aria-describedby, so keyboard and screen-reader users land on what to fix.
{
  const problem = document.querySelector("[aria-invalid=true], fieldset.has-error");
  if (problem?.matches("fieldset")) {
    (problem.querySelector("[data-open-policies]:not([hidden])") ?? problem.querySelector("input"))?.focus();
  } else {
    problem?.focus();
  }
}

// A table wider than its box scrolls sideways: then the box is a named region that the keyboard can
// reach and scroll (phones get stacked rows instead, so this is for the widths in between).
for (const wrap of document.querySelectorAll(".table-wrap")) {
  const update = () => {
    if (wrap.scrollWidth > wrap.clientWidth) {
      wrap.tabIndex = 0;
      wrap.setAttribute("role", "region");
      wrap.setAttribute("aria-label", "Table (scrolls sideways)");
    } else {
      wrap.removeAttribute("tabindex");
      wrap.removeAttribute("role");
      wrap.removeAttribute("aria-label");
    }
  };
  update();
  if ("ResizeObserver" in window) new ResizeObserver(update).observe(wrap);
}
