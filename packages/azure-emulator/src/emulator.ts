/**
 * The emulator's Resource Manager: one request in, one response out (status, headers, JSON),
 * independent of the socket. Order for every request: admin routes (`/_emulator/…`), bearer
 * token, api-version, subscription throttling, injected faults, then the resource handlers.
 */
import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { ArmError, notFound, resourceGroupNotFound } from "./arm/errors.js";
import { type FaultRule, Faults, type RequestFacts } from "./arm/faults.js";
import { type Operation, Operations, type StartOperation } from "./arm/operations.js";
import { type ArmPath, groupId, parseArmPath, sameId } from "./arm/paths.js";
import { type ResourceGroup, ResourceStore, type StoredResource } from "./arm/store.js";
import { AZURE_LIMITS, Throttle, type ThrottleLimits } from "./arm/throttle.js";
import type { Guests } from "./guest/guests.js";
import { isObject, tags as readTags } from "./resources/body.js";
import { VM, disks, instanceView, powerState, virtualMachines } from "./resources/compute.js";
import {
  VNET,
  networkInterfaces,
  networkSecurityGroups,
  publicIPAddresses,
  renderSubnet,
  virtualNetworks,
} from "./resources/network.js";
import type { Durations, EmulatorCore, TypeHandler } from "./resources/types.js";

export interface EmulatorRequest {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body; undefined when there was none. */
  body: unknown;
  /** Set when the body was not valid JSON. */
  bodyError?: string;
}

export interface EmulatorResponse {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
}

export interface EmulatorStats {
  requests: number;
  reads: number;
  /** Every write request received, including those answered 429 or refused. */
  writes: number;
  /** Write requests per resource type and method, e.g. `Microsoft.Network/networkInterfaces PUT`. */
  writesByType: Record<string, number>;
  /** 429 answers sent (injected or from the subscription's buckets). */
  throttled: number;
  faultsFired: number;
  byStatus: Record<string, number>;
}

export interface EmulatorConfig {
  guests: Guests;
  durations?: Partial<Durations>;
  /** The only bearer token accepted; any non-empty token when unset. */
  token?: string;
  /** Subscription throttling buckets; `false` turns throttling off (default: Azure's limits). */
  limits?: ThrottleLimits | false;
  /** Seed for fault probabilities. */
  seed?: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export const DEFAULT_DURATIONS: Durations = { network: 300, compute: 1000, power: 500, delete: 300 };

const HANDLERS: TypeHandler[] = [
  virtualNetworks,
  networkSecurityGroups,
  publicIPAddresses,
  networkInterfaces,
  virtualMachines,
  disks,
];
const WRITE_METHODS = new Set(["PUT", "PATCH", "POST", "DELETE"]);
const GROUP_NAME = /^[-\w._()]{1,90}$/;

export class Emulator {
  readonly store = new ResourceStore();
  readonly faults: Faults;
  readonly operations: Operations;
  private readonly throttle: Throttle | null;
  private readonly core: EmulatorCore;
  private stats: EmulatorStats = emptyStats();
  /** Requests a `hang` fault holds; answered 503 when the emulator closes. */
  private readonly hanging: Array<() => void> = [];

  constructor(private readonly config: EmulatorConfig) {
    const log = config.log ?? (() => {});
    this.faults = new Faults(config.seed ?? 1);
    this.operations = new Operations((error) => log(`operation error: ${(error as Error).stack ?? error}`));
    this.throttle = config.limits === false ? null : new Throttle(config.limits ?? AZURE_LIMITS);
    const handlers = new Map(HANDLERS.map((h) => [h.type.toLowerCase(), h]));
    for (const parent of HANDLERS) {
      for (const child of Object.values(parent.children ?? {})) handlers.set(child.type.toLowerCase(), child);
    }
    this.core = {
      store: this.store,
      operations: this.operations,
      guests: config.guests,
      durations: { ...DEFAULT_DURATIONS, ...config.durations },
      log,
      handler: (type) => handlers.get(type.toLowerCase()),
      removeNow: (resource) => this.removeNow(resource),
    };
  }

  getStats(): EmulatorStats {
    return structuredClone(this.stats);
  }

  resetStats(): void {
    this.stats = emptyStats();
  }

  addFault(rule: FaultRule): string {
    return this.faults.add(rule);
  }

  /** Everything the emulator holds, for tests and for people: `GET /_emulator/inventory`. */
  inventory() {
    const { groups, resources } = this.store.all();
    return {
      resourceGroups: groups.map((g) => ({
        id: g.id,
        name: g.name,
        location: g.location,
        tags: g.tags,
        deleting: g.deleting,
      })),
      resources: resources.map((r) => ({
        id: r.id,
        type: r.type,
        name: r.name,
        resourceGroup: r.resourceGroup,
        location: r.location,
        tags: r.tags,
        provisioningState: r.properties.provisioningState ?? null,
        ...(r.type === VM
          ? { powerState: powerState(r), guest: this.config.guests.status(r.id) ?? null }
          : {}),
      })),
      operationsInProgress: this.operations.inProgress().length,
    };
  }

  async close(): Promise<void> {
    for (const release of this.hanging.splice(0)) release();
    await this.operations.close();
    await this.config.guests.close();
  }

  async handle(request: EmulatorRequest): Promise<EmulatorResponse> {
    if (request.url.pathname.startsWith("/_emulator/")) {
      try {
        return this.admin(request);
      } catch (error) {
        return armError(error as ArmError);
      }
    }
    const response = await this.dispatch(request).catch((error: unknown) => {
      if (error instanceof ArmError) return armError(error);
      this.core.log(`internal error: ${(error as Error).stack ?? error}`);
      return armError(
        new ArmError(500, "InternalServerError", `The emulator failed: ${(error as Error).message}`),
      );
    });
    if (response.status === 401) {
      // As Azure does: a HEAD answer has no body, so the reason travels in the challenge too.
      const reason = (response.body as { error?: { message?: string } } | undefined)?.error?.message ?? "";
      response.headers["WWW-Authenticate"] =
        `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="${reason.replace(/"/g, "'")}"`;
    }
    const status = String(response.status);
    this.stats.byStatus[status] = (this.stats.byStatus[status] ?? 0) + 1;
    if (response.status === 429) this.stats.throttled += 1;
    response.headers["x-ms-request-id"] = randomUUID();
    response.headers["x-ms-correlation-request-id"] =
      (request.headers["x-ms-client-request-id"] as string | undefined) ?? randomUUID();
    return response;
  }

  private async dispatch(request: EmulatorRequest): Promise<EmulatorResponse> {
    const { url, method } = request;
    this.stats.requests += 1;
    const write = WRITE_METHODS.has(method);
    if (write) this.stats.writes += 1;
    else this.stats.reads += 1;

    const auth = request.headers.authorization;
    if (!auth?.startsWith("Bearer ") || auth.length <= "Bearer ".length) {
      throw new ArmError(
        401,
        "AuthenticationFailed",
        "Authentication failed. The 'Authorization' header is missing.",
      );
    }
    if (this.config.token !== undefined && auth.slice("Bearer ".length) !== this.config.token) {
      throw new ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.");
    }
    const path = parseArmPath(url.pathname);
    if (!path) {
      throw new ArmError(
        404,
        "NotFound",
        `The emulator has no Resource Manager route ${method} ${url.pathname}.`,
      );
    }
    const apiVersion = url.searchParams.get("api-version");
    if (!apiVersion) {
      throw new ArmError(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
      );
    }
    const facts = path.kind === "operation" ? this.pollFacts(method, path.id) : requestFacts(method, path);
    if (write && facts.resourceType) {
      const key = `${facts.resourceType}${facts.action ? `/${facts.action}` : ""} ${method}`;
      this.stats.writesByType[key] = (this.stats.writesByType[key] ?? 0) + 1;
    }
    const headers: Record<string, string> = {};
    if (this.throttle) {
      const kind = write ? "writes" : "reads";
      const taken = this.throttle.take(path.subscription, kind);
      if ("retryAfterMs" in taken) {
        // As Azure answers an empty bucket: whole seconds, at least one, no millisecond header,
        // so throttled callers come back once tokens have refilled instead of racing for each one.
        const seconds = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
        return throttled(
          seconds * 1000,
          "SubscriptionRequestsThrottled",
          `Number of ${kind === "writes" ? "write" : "read"} requests for subscription '${path.subscription}' exceeded the limit. Please try again after ${seconds} seconds.`,
          429,
          false,
        );
      }
      headers[`x-ms-ratelimit-remaining-subscription-${kind}`] = String(taken.remaining);
    }
    const fault = this.faults.match(facts);
    if (fault) this.stats.faultsFired += 1;
    if (fault?.hang) return this.hang();
    if (fault?.status !== undefined) {
      const code = fault.code ?? (fault.status === 429 ? "TooManyRequests" : "InternalServerError");
      const message = fault.message ?? `Injected fault: ${fault.status} for ${method} ${url.pathname}.`;
      if (fault.status === 429 || fault.status === 503)
        return throttled(fault.retryAfterMs ?? 1000, code, message, fault.status);
      return armError(new ArmError(fault.status, code, message));
    }
    const context: Ctx = {
      request,
      path,
      apiVersion,
      endpoint: `https://${request.headers.host ?? "localhost"}`,
      fault,
      headers,
    };
    const response = await this.route(context);
    response.headers = { ...headers, ...response.headers };
    return response;
  }

  private route(ctx: Ctx): Promise<EmulatorResponse> | EmulatorResponse {
    const { path, request } = ctx;
    switch (path.kind) {
      case "groups":
        if (request.method !== "GET") return methodNotAllowed(request);
        return ok({ value: this.store.listGroups(path.subscription).map(renderGroup) });
      case "group":
        return this.group(ctx, path);
      case "groupResources":
        if (request.method !== "GET") return methodNotAllowed(request);
        return this.genericList(ctx, path.subscription, path.resourceGroup);
      case "list": {
        if (request.method !== "GET") return methodNotAllowed(request);
        const handler = this.knownType(path.type);
        if (path.resourceGroup !== null) this.requireGroup(path.subscription, path.resourceGroup);
        const items = this.store.list({
          subscription: path.subscription,
          resourceGroup: path.resourceGroup,
          type: handler.type,
        });
        // `statusOnly=true` (VMs across a subscription) answers with each VM's instance view.
        const params = ctx.request.url.searchParams;
        const expand = params.get("statusOnly") === "true" ? "instanceView" : params.get("$expand");
        return ok({ value: items.map((r) => this.render(r, expand)) });
      }
      case "operation":
        return this.operation(ctx, path);
      case "resource":
        return this.resource(ctx, path);
    }
  }

  /** A request that gets no answer until the emulator closes (a `hang` fault). */
  private hang(): Promise<EmulatorResponse> {
    return new Promise((resolve) => {
      this.hanging.push(() =>
        resolve(armError(new ArmError(503, "ServiceUnavailable", "The emulator is closing."))),
      );
    });
  }

  /** A poll's facts are those of the resource its operation works on (for `polls` fault rules). */
  private pollFacts(method: string, operationId: string): RequestFacts {
    const operation = this.operations.get(operationId);
    const target = operation ? parseArmPath(operation.resourceId) : null;
    const facts = target
      ? requestFacts(method, target)
      : { method, resourceType: null, name: null, action: null };
    return { ...facts, action: null, poll: true };
  }

  // ---- resource groups ------------------------------------------------------------------------

  private group(ctx: Ctx, path: Extract<ArmPath, { kind: "group" }>): EmulatorResponse {
    const { method } = ctx.request;
    const group = this.store.group(path.subscription, path.resourceGroup);
    if (method === "HEAD") return { status: group ? 204 : 404, headers: {} };
    if (method === "GET") {
      if (!group) throw resourceGroupNotFound(path.resourceGroup);
      return ok(renderGroup(group));
    }
    if (method === "PUT" || method === "PATCH") {
      const body = this.bodyObject(ctx);
      if (method === "PATCH") {
        if (!group) throw resourceGroupNotFound(path.resourceGroup);
        if (body.tags !== undefined) group.tags = readTags(body.tags);
        return ok(renderGroup(group));
      }
      if (!GROUP_NAME.test(path.resourceGroup) || path.resourceGroup.endsWith(".")) {
        throw new ArmError(
          400,
          "InvalidResourceGroupName",
          `Resource group name '${path.resourceGroup}' is invalid: 1-90 letters, digits, underscores, parentheses, hyphens and periods, not ending with a period.`,
        );
      }
      if (group?.deleting) {
        throw new ArmError(
          409,
          "ResourceGroupBeingDeleted",
          `The resource group '${group.name}' is in deprovisioning state and cannot perform this operation.`,
        );
      }
      const location = body.location;
      if (typeof location !== "string" || location === "") {
        throw new ArmError(400, "LocationRequired", "The location property is required for this definition.");
      }
      if (group && group.location.toLowerCase() !== location.toLowerCase()) {
        throw new ArmError(
          409,
          "InvalidResourceGroupLocation",
          `Invalid resource group location '${location}'. The Resource group already exists in location '${group.location}'.`,
        );
      }
      const next: ResourceGroup = {
        id: groupId(path.subscription, group?.name ?? path.resourceGroup),
        name: group?.name ?? path.resourceGroup,
        subscription: path.subscription,
        location,
        tags: readTags(body.tags),
        deleting: false,
      };
      this.store.putGroup(next);
      return { status: group ? 200 : 201, headers: {}, body: renderGroup(next) };
    }
    if (method === "DELETE") {
      if (!group) throw resourceGroupNotFound(path.resourceGroup);
      group.deleting = true;
      const operation = this.startOperation(ctx, {
        subscription: path.subscription,
        namespace: "Microsoft.Resources",
        location: group.location,
        resourceId: group.id,
        what: "DELETE resourceGroup",
        durationMs: this.core.durations.delete,
        run: async () => {
          // VMs first: deleting one takes its guest down and releases its NICs.
          const inside = this.store.list({ subscription: path.subscription, resourceGroup: group.name });
          const order = [...inside.filter((r) => r.type === VM), ...inside.filter((r) => r.type !== VM)];
          for (const resource of order) await this.removeNow(resource);
          this.store.deleteGroup(group);
        },
        onFailed: () => {
          group.deleting = false;
        },
      });
      return {
        status: 202,
        headers: { ...asyncHeaders(ctx, operation, { location: true, asyncOperation: false }) },
      };
    }
    return methodNotAllowed(ctx.request);
  }

  private genericList(ctx: Ctx, subscription: string, resourceGroup: string): EmulatorResponse {
    this.requireGroup(subscription, resourceGroup);
    const filter = parseFilter(ctx.request.url.searchParams.get("$filter"));
    const items = this.store
      .list({ subscription, resourceGroup })
      .filter((r) => (filter.type ? r.type.toLowerCase() === filter.type.toLowerCase() : true))
      .filter((r) => (filter.tagName ? Object.hasOwn(r.tags, filter.tagName) : true))
      .filter((r) =>
        filter.tagName && filter.tagValue !== undefined ? r.tags[filter.tagName] === filter.tagValue : true,
      );
    return ok({
      value: items.map((r) => ({
        id: r.id,
        name: r.name,
        type: r.type,
        location: r.location,
        tags: r.tags,
        ...r.extra,
        ...(r.type === "Microsoft.Compute/disks" ? { managedBy: r.extra.managedBy } : {}),
      })),
    });
  }

  // ---- resources --------------------------------------------------------------------------------

  private async resource(ctx: Ctx, path: Extract<ArmPath, { kind: "resource" }>): Promise<EmulatorResponse> {
    const { method } = ctx.request;
    const handler = this.knownType(path.type);
    const group = this.requireGroup(path.subscription, path.resourceGroup);
    const id = `${groupId(path.subscription, group.name)}/providers/${handler.type}/${path.name}`;
    const expand = ctx.request.url.searchParams.get("$expand");
    const [segment, childName, ...more] = path.rest;
    if (more.length > 0)
      throw new ArmError(404, "NotFound", `No route ${method} ${ctx.request.url.pathname}.`);

    if (segment === undefined) {
      if (method === "GET") return ok(this.render(this.require(id, handler, path.name, group), expand));
      if (method === "PUT") return this.put(ctx, group, handler, id, path.name);
      if (method === "DELETE") return this.delete(ctx, group, id);
      if (method === "PATCH") {
        const resource = this.require(id, handler, path.name, group);
        const body = this.bodyObject(ctx);
        if (body.tags !== undefined) resource.tags = readTags(body.tags);
        return ok(this.render(resource, expand));
      }
      return methodNotAllowed(ctx.request);
    }

    // Subnets live inside their virtual network.
    if (handler.type === VNET && segment.toLowerCase() === "subnets") {
      if (method !== "GET") {
        throw new ArmError(
          400,
          "OperationNotSupported",
          "The emulator changes subnets through their virtual network's PUT.",
        );
      }
      const vnet = this.require(id, handler, path.name, group);
      const subnets = (this.render(vnet, null).properties as { subnets: Array<{ name: string }> }).subnets;
      if (childName === undefined) return ok({ value: subnets });
      const subnet = subnets.find((s) => s.name.toLowerCase() === childName.toLowerCase());
      if (!subnet) throw notFound(`${VNET}/subnets`, `${path.name}/${childName}`, group.name);
      return ok(subnet);
    }

    const child = Object.entries(handler.children ?? {}).find(
      ([name]) => name.toLowerCase() === segment.toLowerCase(),
    )?.[1];
    if (child) {
      const parent = this.require(id, handler, path.name, group);
      if (childName === undefined) {
        if (method !== "GET") return methodNotAllowed(ctx.request);
        const items = this.store.list({ type: child.type }).filter((r) => sameId(r.parentId, parent.id));
        return ok({ value: items.map((r) => this.render(r, expand)) });
      }
      const childId = `${parent.id}/${segment}/${childName}`;
      if (method === "GET")
        return ok(this.render(this.require(childId, child, `${path.name}/${childName}`, group), expand));
      if (method === "PUT") return this.put(ctx, group, child, childId, childName, parent);
      if (method === "DELETE") return this.delete(ctx, group, childId);
      return methodNotAllowed(ctx.request);
    }

    if (childName !== undefined)
      throw new ArmError(404, "NotFound", `No route ${method} ${ctx.request.url.pathname}.`);
    if (handler.type === VM && segment.toLowerCase() === "instanceview" && method === "GET") {
      return ok(instanceView(this.require(id, handler, path.name, group)));
    }
    const action = Object.entries(handler.actions ?? {}).find(
      ([name]) => name.toLowerCase() === segment.toLowerCase(),
    );
    if (action && method === "POST")
      return this.action(ctx, this.require(id, handler, path.name, group), action[0], action[1]);
    throw new ArmError(404, "NotFound", `No route ${method} ${ctx.request.url.pathname}.`);
  }

  private put(
    ctx: Ctx,
    group: ResourceGroup,
    handler: TypeHandler,
    id: string,
    name: string,
    parent?: StoredResource,
  ): EmulatorResponse {
    const problem = handler.nameProblem(name);
    if (problem)
      throw new ArmError(400, "InvalidResourceName", `Resource name ${name} is invalid: ${problem}.`);
    const existing = this.store.get(id);
    if (existing?.deleting)
      throw new ArmError(409, "OperationNotAllowed", `Resource ${existing.id} is being deleted.`);
    if (existing?.busy) throw anotherOperation(existing);
    const body = this.bodyObject(ctx);
    const built = handler.build({
      core: this.core,
      group,
      id,
      type: handler.type,
      name,
      body,
      existing,
      ...(parent ? { parent } : {}),
    });
    const created = existing === undefined;
    const resource: StoredResource = {
      ...built,
      id: existing?.id ?? built.id,
      busy: null,
      deleting: false,
      properties: { ...built.properties, provisioningState: created ? handler.pendingState : "Updating" },
    };
    this.store.put(resource);
    handler.accepted?.(this.core, resource, created);
    const operation = this.startOperation(ctx, {
      ...operationTarget(resource),
      what: "PUT",
      durationMs: handler.putDuration(this.core),
      run: async () => {
        await handler.provision?.(this.core, resource, created);
        resource.properties.provisioningState = "Succeeded";
        resource.busy = null;
      },
      onFailed: () => {
        resource.properties.provisioningState = "Failed";
        resource.busy = null;
      },
    });
    resource.busy = operation.id;
    return {
      status: created ? 201 : 200,
      headers: asyncHeaders(ctx, operation, { location: false, asyncOperation: true }),
      body: this.render(resource, null),
    };
  }

  /** A long-running operation; the request's injected fault (extra delay, failure) applies to it. */
  private startOperation(ctx: Ctx, spec: Omit<StartOperation, "failWith">): Operation {
    return this.operations.start({
      ...spec,
      durationMs: spec.durationMs + (ctx.fault?.delayMs ?? 0),
      ...(ctx.fault?.failOperation ? { failWith: faultError(ctx.fault) } : {}),
    });
  }

  private delete(ctx: Ctx, group: ResourceGroup, id: string): EmulatorResponse {
    const resource = this.store.get(id);
    if (!resource) return { status: 204, headers: {} };
    if (resource.deleting && resource.busy) {
      const running = this.operations.get(resource.busy);
      if (running)
        return { status: 202, headers: asyncHeaders(ctx, running, { location: true, asyncOperation: true }) };
    }
    if (resource.busy) throw anotherOperation(resource);
    const handler = this.core.handler(resource.type);
    const inUse = handler?.inUse?.(this.core, resource);
    if (inUse) throw inUse;
    resource.deleting = true;
    const before = resource.properties.provisioningState;
    resource.properties.provisioningState = "Deleting";
    const operation = this.startOperation(ctx, {
      ...operationTarget(resource),
      what: "DELETE",
      durationMs: this.core.durations.delete,
      run: () => this.removeNow(resource),
      onFailed: () => {
        resource.deleting = false;
        resource.busy = null;
        resource.properties.provisioningState = before;
      },
    });
    resource.busy = operation.id;
    return { status: 202, headers: asyncHeaders(ctx, operation, { location: true, asyncOperation: true }) };
  }

  private action(
    ctx: Ctx,
    resource: StoredResource,
    name: string,
    action: NonNullable<TypeHandler["actions"]>[string],
  ): EmulatorResponse {
    if (resource.busy) throw anotherOperation(resource);
    action.begin(this.core, resource);
    const operation = this.startOperation(ctx, {
      ...operationTarget(resource),
      what: `POST ${name}`,
      durationMs: this.core.durations.power,
      run: async () => {
        await action.run(this.core, resource);
        resource.busy = null;
      },
      onFailed: () => {
        resource.busy = null;
      },
    });
    resource.busy = operation.id;
    return { status: 202, headers: asyncHeaders(ctx, operation, { location: true, asyncOperation: true }) };
  }

  private async removeNow(resource: StoredResource): Promise<void> {
    if (this.store.get(resource.id) !== resource) return;
    resource.deleting = true;
    await this.core.handler(resource.type)?.remove?.(this.core, resource);
    this.store.delete(resource.id);
  }

  // ---- long-running operations ------------------------------------------------------------------

  private operation(ctx: Ctx, path: Extract<ArmPath, { kind: "operation" }>): EmulatorResponse {
    const operation = this.operations.get(path.id);
    if (!operation || !sameId(operation.subscription, path.subscription)) {
      throw new ArmError(404, "NotFound", `Operation ${path.id} was not found.`);
    }
    const running = operation.status === "InProgress";
    if (!path.result) {
      return {
        status: 200,
        headers: running ? { "Retry-After": String(retryAfterSec(operation)) } : {},
        body: {
          id: ctx.request.url.pathname,
          name: operation.id,
          status: operation.status,
          startTime: operation.startTime.toISOString(),
          ...(operation.endTime ? { endTime: operation.endTime.toISOString() } : {}),
          ...(operation.error ? { error: operation.error } : {}),
        },
      };
    }
    if (running) {
      return {
        status: 202,
        headers: {
          Location: `${ctx.endpoint}${ctx.request.url.pathname}${ctx.request.url.search}`,
          "Retry-After": String(retryAfterSec(operation)),
        },
      };
    }
    if (operation.error) return armError(new ArmError(400, operation.error.code, operation.error.message));
    const resource = operation.what === "PUT" ? this.store.get(operation.resourceId) : undefined;
    return resource ? ok(this.render(resource, null)) : { status: 204, headers: {} };
  }

  // ---- admin --------------------------------------------------------------------------------------

  private admin(request: EmulatorRequest): EmulatorResponse {
    const route = `${request.method} ${request.url.pathname.replace(/\/+$/, "")}`;
    if (route === "GET /_emulator/inventory") return ok(this.inventory());
    if (route === "GET /_emulator/stats") return ok(this.getStats());
    if (route === "POST /_emulator/stats/reset") {
      this.resetStats();
      return { status: 204, headers: {} };
    }
    if (route === "GET /_emulator/faults") return ok({ value: this.faults.list() });
    if (route === "POST /_emulator/faults") {
      if (!isObject(request.body))
        throw new ArmError(400, "InvalidRequestContent", "Send a fault rule as a JSON object.");
      try {
        return { status: 201, headers: {}, body: { id: this.faults.add(request.body as FaultRule) } };
      } catch (error) {
        throw new ArmError(400, "InvalidParameter", (error as Error).message);
      }
    }
    if (route === "DELETE /_emulator/faults") {
      this.faults.clear();
      return { status: 204, headers: {} };
    }
    const one = /^DELETE \/_emulator\/faults\/([^/]+)$/.exec(route);
    if (one) return { status: this.faults.remove(decodeURIComponent(one[1]!)) ? 204 : 404, headers: {} };
    throw new ArmError(404, "NotFound", `No emulator admin route ${route}.`);
  }

  // ---- helpers ----------------------------------------------------------------------------------

  private knownType(type: string): TypeHandler {
    const handler = this.core.handler(type);
    if (!handler || type.split("/").length !== 2) {
      const [namespace, ...rest] = type.split("/");
      throw new ArmError(
        400,
        "InvalidResourceType",
        `The resource type '${rest.join("/")}' could not be found in the namespace '${namespace}' (the emulator knows ${HANDLERS.map((h) => h.type).join(", ")}).`,
      );
    }
    return handler;
  }

  private requireGroup(subscription: string, name: string): ResourceGroup {
    const group = this.store.group(subscription, name);
    if (!group) throw resourceGroupNotFound(name);
    return group;
  }

  private require(id: string, handler: TypeHandler, name: string, group: ResourceGroup): StoredResource {
    const resource = this.store.get(id);
    if (!resource) throw notFound(handler.type, name, group.name);
    return resource;
  }

  private bodyObject(ctx: Ctx): Record<string, unknown> {
    if (ctx.request.bodyError) {
      throw new ArmError(
        400,
        "InvalidRequestContent",
        `The request content was invalid and could not be deserialized: ${ctx.request.bodyError}`,
      );
    }
    if (!isObject(ctx.request.body)) {
      throw new ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.");
    }
    return ctx.request.body;
  }

  render(resource: StoredResource, expand: string | null): Record<string, unknown> {
    const handler = this.core.handler(resource.type);
    return {
      id: resource.id,
      name: resource.name,
      type: resource.type,
      location: resource.location,
      ...(Object.keys(resource.tags).length > 0 ? { tags: resource.tags } : {}),
      ...Object.fromEntries(Object.entries(resource.extra).filter(([, v]) => v !== undefined)),
      properties: { ...resource.properties, ...handler?.render?.(this.core, resource, expand) },
    };
  }
}

/** Whom an operation on a resource is about (its provider namespace is the type's first segment). */
function operationTarget(resource: StoredResource) {
  return {
    subscription: resource.subscription,
    namespace: resource.type.split("/")[0]!,
    location: resource.location,
    resourceId: resource.id,
  };
}

interface Ctx {
  request: EmulatorRequest;
  path: ArmPath;
  apiVersion: string;
  endpoint: string;
  fault: (FaultRule & { id: string }) | null;
  headers: Record<string, string>;
}

function emptyStats(): EmulatorStats {
  return { requests: 0, reads: 0, writes: 0, writesByType: {}, throttled: 0, faultsFired: 0, byStatus: {} };
}

function requestFacts(method: string, path: ArmPath): RequestFacts {
  if (path.kind === "resource") {
    const [segment, childName] = path.rest;
    if (segment !== undefined && childName !== undefined) {
      return { method, resourceType: `${path.type}/${segment}`, name: childName, action: null };
    }
    return {
      method,
      resourceType: path.type,
      name: path.name,
      action: method === "POST" ? (segment ?? null) : null,
    };
  }
  if (path.kind === "group")
    return {
      method,
      resourceType: "Microsoft.Resources/resourceGroups",
      name: path.resourceGroup,
      action: null,
    };
  if (path.kind === "list") return { method, resourceType: path.type, name: null, action: null };
  return { method, resourceType: null, name: null, action: null };
}

function parseFilter(filter: string | null): { type?: string; tagName?: string; tagValue?: string } {
  if (!filter) return {};
  const out: { type?: string; tagName?: string; tagValue?: string } = {};
  for (const clause of filter.split(/\s+and\s+/i)) {
    const match = /^\s*(resourceType|tagName|tagValue)\s+eq\s+'((?:[^']|'')*)'\s*$/i.exec(clause);
    if (!match)
      throw new ArmError(
        400,
        "InvalidFilterInQueryString",
        `The $filter '${filter}' is not supported by the emulator (use resourceType, tagName and tagValue with eq).`,
      );
    const value = match[2]!.replace(/''/g, "'");
    const key = match[1]!.toLowerCase();
    if (key === "resourcetype") out.type = value;
    else if (key === "tagname") out.tagName = value;
    else out.tagValue = value;
  }
  return out;
}

function renderGroup(group: ResourceGroup) {
  return {
    id: group.id,
    name: group.name,
    type: "Microsoft.Resources/resourceGroups",
    location: group.location,
    ...(Object.keys(group.tags).length > 0 ? { tags: group.tags } : {}),
    properties: { provisioningState: group.deleting ? "Deleting" : "Succeeded" },
  };
}

function retryAfterSec(operation: Operation): number {
  return Math.max(1, Math.ceil((operation.dueAt - Date.now()) / 1000));
}

function asyncHeaders(
  ctx: Ctx,
  operation: Operation,
  which: { location: boolean; asyncOperation: boolean },
): Record<string, string> {
  const base = `${ctx.endpoint}/subscriptions/${operation.subscription}/providers/${operation.namespace}/locations/${encodeURIComponent(operation.location)}`;
  const query = `?api-version=${encodeURIComponent(ctx.apiVersion)}`;
  return {
    ...(which.asyncOperation ? { "Azure-AsyncOperation": `${base}/operations/${operation.id}${query}` } : {}),
    ...(which.location ? { Location: `${base}/operationResults/${operation.id}${query}` } : {}),
    "Retry-After": String(retryAfterSec(operation)),
  };
}

function faultError(fault: FaultRule): { code: string; message: string } {
  return {
    code: fault.code ?? "InternalOperationError",
    message: fault.message ?? "An injected fault made this operation fail.",
  };
}

function anotherOperation(resource: StoredResource): ArmError {
  return new ArmError(
    409,
    "AnotherOperationInProgress",
    `Operation on ${resource.id} was rejected because another operation (${resource.busy}) is in progress on it.`,
  );
}

function ok(body: unknown): EmulatorResponse {
  return { status: 200, headers: {}, body };
}

function armError(error: ArmError): EmulatorResponse {
  return { status: error.status, headers: {}, body: error.body() };
}

function throttled(
  retryAfterMs: number,
  code: string,
  message: string,
  status = 429,
  msHeader = true,
): EmulatorResponse {
  return {
    status,
    // Retry-After is whole seconds as Azure sends it; for injected faults x-ms-retry-after-ms
    // (which the Azure SDK reads first) lets the emulator ask for less than a second.
    headers: {
      "Retry-After": String(Math.ceil(retryAfterMs / 1000)),
      ...(msHeader ? { "x-ms-retry-after-ms": String(retryAfterMs) } : {}),
    },
    body: { error: { code, message } },
  };
}

function methodNotAllowed(request: EmulatorRequest): EmulatorResponse {
  return armError(
    new ArmError(
      405,
      "MethodNotAllowed",
      `The emulator does not support ${request.method} ${request.url.pathname}.`,
    ),
  );
}
