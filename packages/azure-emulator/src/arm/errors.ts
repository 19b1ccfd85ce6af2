/**
 * Errors as Resource Manager sends them: a status and `{"error": {"code", "message"}}`. The
 * codes are the ones Azure documents (ResourceNotFound, InvalidParameter, Conflict,
 * OperationNotAllowed, ...) so the SDK's RestError carries what a real subscription would say.
 */
export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly target?: string,
  ) {
    super(message);
    this.name = "ArmError";
  }

  body(): { error: { code: string; message: string; target?: string } } {
    return {
      error: { code: this.code, message: this.message, ...(this.target ? { target: this.target } : {}) },
    };
  }
}

export const invalidParameter = (message: string, target?: string) =>
  new ArmError(400, "InvalidParameter", message, target);

export const notFound = (type: string, name: string, resourceGroup: string) =>
  new ArmError(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );

export const resourceGroupNotFound = (resourceGroup: string) =>
  new ArmError(404, "ResourceGroupNotFound", `Resource group '${resourceGroup}' could not be found.`);

export const conflict = (message: string) => new ArmError(409, "Conflict", message);

export const operationNotAllowed = (message: string) => new ArmError(409, "OperationNotAllowed", message);
