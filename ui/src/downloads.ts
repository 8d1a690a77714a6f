/** Offers bytes to the user as a file download (an object URL, released once the click is done). */
export function saveBytes(name: string, parts: readonly BlobPart[], type = "application/octet-stream"): void {
  const url = URL.createObjectURL(new Blob([...parts], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
  // The download has taken the blob by the next task; the URL only holds memory after that.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}
