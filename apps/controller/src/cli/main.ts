#!/usr/bin/env node
// The controller is being built (issue 3); until then `nbfleet` only says so.
console.error("nbfleet: the controller is not built yet; see README 'What is not done yet'.");
process.exit(1);
