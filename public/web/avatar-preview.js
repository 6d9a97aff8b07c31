// Optional: shows the chosen file before upload. The page works the same without it.
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("f-profileimg");
  const preview = document.getElementById("avatar-preview");
  if (!input || !preview) return;
  let url = null;
  input.addEventListener("change", () => {
    if (url) URL.revokeObjectURL(url);
    const file = input.files?.[0];
    if (!file || !file.type.startsWith("image/")) {
      preview.hidden = true;
      return;
    }
    url = URL.createObjectURL(file);
    preview.src = url;
    preview.hidden = false;
  });
});
