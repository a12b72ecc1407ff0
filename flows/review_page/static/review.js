// Keyboard shortcuts of the review page. Hand-written (about 60 lines) rather than a library:
// every key only focuses a card or clicks one of its buttons, and htmx does the requests.
(function () {
  "use strict";
  const reviewer = document.getElementById("reviewer");
  if (reviewer && !reviewer.dataset.fromConfig) {  // a name typed on the page is remembered in this browser
    reviewer.value = reviewer.value || localStorage.getItem("vitrine-reviewer") || "";
    reviewer.addEventListener("change", () => localStorage.setItem("vitrine-reviewer", reviewer.value.trim()));
  }
  const cards = () => Array.from(document.querySelectorAll("#queue .card"));
  let current = null;  // the card keys act on
  function focusCard(card) {
    if (!card) return;
    current = card;
    card.focus({preventScroll: true});
    card.scrollIntoView({block: "nearest"});
  }
  function move(step) {
    const all = cards();
    const i = all.indexOf(current);
    focusCard(all[Math.min(all.length - 1, Math.max(0, (i < 0 ? -1 : i) + step))] || all[0]);
  }
  document.addEventListener("focusin", (e) => { const c = e.target.closest && e.target.closest("#queue .card"); if (c) current = c; });
  // the card a decision is sent for leaves: the next one takes the focus
  document.body.addEventListener("htmx:beforeRequest", (e) => {
    const card = e.detail.elt.closest && e.detail.elt.closest(".card");
    if (card) card.dataset.next = (card.nextElementSibling && card.nextElementSibling.id) || "";
  });
  document.body.addEventListener("htmx:afterSettle", () => {
    if (current && !document.body.contains(current)) {
      const next = current.dataset.next && document.getElementById(current.dataset.next);
      focusCard(next || cards()[0]);
    }
  });
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
    if (typing) {
      if (e.key === "Escape") { e.target.blur(); focusCard(current || cards()[0]); }
      return;
    }
    const card = current && document.body.contains(current) ? current : null;
    const click = (sel) => { const b = card && card.querySelector(sel); if (b) { b.click(); e.preventDefault(); } };
    switch (e.key) {
      case "j": case "ArrowDown": move(1); e.preventDefault(); break;
      case "k": case "ArrowUp": move(-1); e.preventDefault(); break;
      case "a": click("button.accept"); break;
      case "r": click("button.reject"); break;
      case "x": click("input.pick"); break;
      case "l": { const f = card && card.querySelector(".other input"); if (f) { f.focus(); e.preventDefault(); } break; }
      case "A": document.getElementById("batch").click(); e.preventDefault(); break;
      case "u": document.getElementById("undo").click(); e.preventDefault(); break;
      case "/": document.getElementById("q").focus(); e.preventDefault(); break;
      default:
        if (/^[1-9]$/.test(e.key)) click(`button.alt[data-key="${e.key}"]`);
    }
  });
  // The first card takes the focus only once htmx has bound the buttons: htmx binds them on
  // DOMContentLoaded, which fires after this deferred script ran, and its listener was added first.
  // A key pressed on a focused card before that would click a button nothing listens to.
  if (document.readyState === "complete") focusCard(cards()[0]);
  else document.addEventListener("DOMContentLoaded", () => focusCard(cards()[0]));
})();
