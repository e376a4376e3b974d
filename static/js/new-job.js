// The new-job form: picking a model fills in its default hyperparameters, unless the user
// has already typed their own.

import { readJson } from "./live.js";

const defaults = readJson("model-defaults", {});
const form = document.getElementById("job-form");
const modelSelect = form.elements.namedItem("model");
const touched = new Set();

for (const name of ["hidden_sizes", "activation", "dropout"]) {
  form.elements.namedItem(name)?.addEventListener("input", () => touched.add(name));
}

function applyDefaults() {
  const params = defaults[modelSelect.value] || {};
  for (const [name, value] of Object.entries(params)) {
    const input = form.elements.namedItem(name);
    if (!input || touched.has(name)) continue;
    input.value = Array.isArray(value) ? value.join(",") : String(value);
  }
}

// A form coming back with errors keeps what the user sent; only a fresh form takes defaults.
if (modelSelect && !form.querySelector(".has-error, .errorlist")) applyDefaults();
modelSelect?.addEventListener("change", applyDefaults);
form.querySelector(".has-error input, .has-error select")?.focus();

form.addEventListener("submit", () => {
  const button = form.querySelector('[data-testid="submit-job"]');
  // Guard against a double click submitting the job twice.
  setTimeout(() => (button.disabled = true), 0);
});
