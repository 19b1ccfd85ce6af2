/**
 * Every test file's last step (a vitest setup file): the data directories its controllers and
 * agents were given are removed. Vitest runs after-hooks as a stack, so this afterAll comes
 * after the file's own, once its processes are closed.
 */
import { afterAll } from "vitest";
import { removeMadeDataDirs } from "./data-dir.js";

afterAll(() => {
  removeMadeDataDirs();
});
