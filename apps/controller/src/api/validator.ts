/**
 * Request validation: bodies are checked exactly (no type coercion, unknown fields refused),
 * while query strings and path parameters, which arrive as text, are coerced to the schema's
 * types (`limit=3` → 3, one `label=` → an array of one).
 */
import { Ajv, type ValidateFunction } from "ajv";
import type { FastifyInstance, FastifySchema } from "fastify";

export function installValidator(app: FastifyInstance): void {
  const common = { removeAdditional: false, useDefaults: true, allErrors: false, strict: false } as const;
  const exact = new Ajv({ ...common, coerceTypes: false });
  const textual = new Ajv({ ...common, coerceTypes: "array" });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const ajv = httpPart === "body" ? exact : textual;
    return ajv.compile(schema as FastifySchema) as ValidateFunction;
  });
}
