// Progressive enhancement only: every page works without it. Forms marked
// data-confirm ask before they post (delete, rotate).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
