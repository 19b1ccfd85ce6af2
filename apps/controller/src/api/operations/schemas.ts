/** TypeBox shapes of the operations API: defined in @nbfleet/shared, which the web console reads too. */
export * from "@nbfleet/shared/operations";
