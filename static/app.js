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

for (const button of document.querySelectorAll("[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", () => {
    const label = button.textContent;
    copyText(button.dataset.copy).then(
      () => { button.textContent = "Copied"; button.classList.add("copied"); },
      () => { button.textContent = "Select and copy"; },
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
