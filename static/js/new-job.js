// The new-job form. The hyperparameter fields are the selected model's, rendered by the
// server: picking another model reloads the form for it (keeping the chosen dataset, and the
// job or template the form was filled from).

const form = document.getElementById("job-form");
const modelSelect = form.elements.namedItem("model");
const datasetSelect = form.elements.namedItem("dataset");

// The model whose fields the server rendered; choosing it again changes nothing.
const rendered = modelSelect?.value;

modelSelect?.addEventListener("change", () => {
  if (modelSelect.value === rendered) return;
  const query = new URLSearchParams({ model: modelSelect.value });
  if (datasetSelect?.value) query.set("dataset", datasetSelect.value);
  for (const key of ["from", "template"]) {
    const source = form.elements.namedItem(key)?.value;
    if (source) query.set(key, source);
  }
  window.location.search = query.toString();
});
form.querySelector(".has-error input, .has-error select, .has-error textarea")?.focus();

form.addEventListener("submit", () => {
  const button = form.querySelector('[data-testid="submit-job"]');
  // Guard against a double click submitting the job twice.
  setTimeout(() => (button.disabled = true), 0);
});

// "Preview": the server plans the form's job on the current queue (storing nothing) and
// answers a fragment to show above the buttons.
const previewButton = form.querySelector('[data-testid="preview-job"]');
previewButton?.addEventListener("click", async () => {
  previewButton.disabled = true;
  try {
    const response = await fetch(previewButton.dataset.previewUrl, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
    });
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const answer = fresh.getElementById("plan-preview");
    if (answer) document.getElementById("plan-preview")?.replaceWith(document.adoptNode(answer));
  } finally {
    previewButton.disabled = false;
  }
});
