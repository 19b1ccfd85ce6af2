import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// The controller serves dist/ under a strict CSP (script-src 'self'; style-src 'self'), so the
// build must emit no inline script or style: no modulepreload polyfill, CSS as files.
export default defineConfig({
  base: "/",
  plugins: [preact()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: true,
    sourcemap: false,
    target: "es2022",
  },
});
