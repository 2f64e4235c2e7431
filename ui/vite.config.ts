import { defineConfig } from "vitest/config";

// Tauri loads ui/dist. The page runs under a CSP that allows scripts and
// styles only from files ('self'), so the build emits no inline code.
export default defineConfig({
  clearScreen: false,
  server: {
    port: 1420,
    strictPort: true,
    host: "127.0.0.1",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2021",
    // The modulepreload polyfill would be the only script not needed by WebView2, WebKitGTK or WKWebView.
    modulePreload: { polyfill: false },
  },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts"],
  },
});
