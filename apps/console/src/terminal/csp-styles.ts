/**
 * xterm.js's DOM renderer writes its row sizes and theme into `<style>` elements it creates,
 * which the console's CSP (`style-src 'self'`, no 'unsafe-inline') blocks. Constructed
 * stylesheets are not inline styles, so the same rules are mirrored into one adopted sheet,
 * kept in step with the elements as xterm rewrites them (on resize, theme or font changes).
 */
export function mirrorInlineStyles(root: HTMLElement): () => void {
  const sheet = new CSSStyleSheet();
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const sync = () => {
    const text = [...root.querySelectorAll("style")].map((style) => style.textContent ?? "").join("\n");
    sheet.replaceSync(text);
  };
  const observer = new MutationObserver(sync);
  observer.observe(root, { subtree: true, childList: true, characterData: true });
  sync();
  return () => {
    observer.disconnect();
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
  };
}
