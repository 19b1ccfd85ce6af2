/**
 * TypeBox shapes of the operations and idle-policy APIs (request bodies and views): the
 * controller validates with them, the CLI and the web console read their types.
 */
import { type Static, Type } from "@sinclair/typebox";
import { ARTIFACT_VERSION_PATTERN } from "./artifact-signature.js";
import { OverallHealth } from "./health.js";
import { IDLE_ACTIONS, OPERATION_ACTIONS, OPERATION_STATES, TARGET_STATES } from "./operation-lists.js";
import { MAX_TRUSTED_CONTROLLER_CERTIFICATES } from "./protocol.js";
import { VmName } from "./vm-name.js";

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ format: "date-time" });
const Percent = Type.String({
  pattern: "^\\d+(\\.\\d+)?%$",
  maxLength: 16,
  description: 'a share of the targets, e.g. "10%"',
});
/**
 * The largest count maxConcurrency and maxErrors take: far above any fleet one controller
 * serves, and within every integer column they are stored in (PostgreSQL's refuses 1e19).
 */
export const MAX_OPERATION_LIMIT = 1_000_000;
const LimitCount = (minimum: number) => Type.Integer({ minimum, maximum: MAX_OPERATION_LIMIT });

export const OperationAction = Type.Union(OPERATION_ACTIONS.map((a) => Type.Literal(a)));

export const SelectorSchema = Type.Object(
  {
    names: Type.Optional(Type.Array(VmName, { minItems: 1, maxItems: 100_000, uniqueItems: true })),
    labels: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: "label expression: key=value, key!=value, key, !key, comma-separated (all must hold)",
      }),
    ),
    health: Type.Optional(Type.Array(OverallHealth, { minItems: 1, uniqueItems: true })),
    all: Type.Optional(
      Type.Boolean({ description: "select the whole fleet (needed when nothing else is given)" }),
    ),
  },
  { additionalProperties: false },
);

export const CreateOperationBody = Type.Object(
  {
    action: OperationAction,
    selector: SelectorSchema,
    maxConcurrency: Type.Optional(
      Type.Union([LimitCount(1), Percent], {
        description: 'targets at once: a count or a share (default "10%", at least 1)',
      }),
    ),
    maxErrors: Type.Optional(
      Type.Union([LimitCount(0), Percent], {
        description: "failures tolerated (default 0); one more and no new target starts. A share rounds down",
      }),
    ),
    rolling: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean(),
          healthTimeoutSec: Type.Optional(
            Type.Number({ minimum: 0.1, maximum: 86_400, description: "per target (default 300)" }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    params: Type.Optional(
      Type.Object(
        {
          hostnames: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 32 }),
          ),
          ips: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 32 })),
          version: Type.Optional(
            Type.String({
              pattern: ARTIFACT_VERSION_PATTERN,
              maxLength: 64,
              description: "agent.upgrade: the published agent version to install (required)",
            }),
          ),
          timeoutSec: Type.Optional(
            Type.Integer({
              minimum: 10,
              maximum: 3600,
              description:
                "agent.upgrade: how long the new agent has to connect and report healthy before the guest rolls back (default 120)",
            }),
          ),
          certificates: Type.Optional(
            Type.Array(Type.String({ minLength: 1, maxLength: 64 * 1024 }), {
              minItems: 1,
              maxItems: MAX_TRUSTED_CONTROLLER_CERTIFICATES,
              description:
                "controller.trust: every controller certificate (PEM) the agents are to trust from now on, the one they reach their controller through among them",
            }),
          ),
        },
        {
          additionalProperties: false,
          description:
            "notebook.certificate: hostnames, ips; agent.upgrade: version, timeoutSec; controller.trust: certificates",
        },
      ),
    ),
    canary: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100_000,
        description:
          "agent.upgrade: the first N targets go alone and must stay healthy on the new version for canarySoakSec before the rest start; a failed canary stops the operation",
      }),
    ),
    canarySoakSec: Type.Optional(
      Type.Number({ minimum: 0, maximum: 86_400, description: "agent.upgrade: canary soak (default 60)" }),
    ),
    commandTtlSec: Type.Optional(
      Type.Number({
        minimum: 0.05,
        maximum: 7 * 86_400,
        description: "how long a command waits for an offline agent",
      }),
    ),
    commandTimeoutSec: Type.Optional(Type.Number({ minimum: 0.05, maximum: 86_400 })),
    ifOffline: Type.Optional(
      Type.Union([Type.Literal("queue"), Type.Literal("fail")], {
        description:
          "queue (default): wait for an offline agent until the TTL; fail: the target fails at once",
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateOperationBody = Static<typeof CreateOperationBody>;

export const TargetCounts = Type.Object(
  Object.fromEntries(TARGET_STATES.map((s) => [s, Type.Integer()])) as Record<
    (typeof TARGET_STATES)[number],
    ReturnType<typeof Type.Integer>
  >,
);

export const OperationView = Type.Object({
  id: Type.String(),
  action: OperationAction,
  state: Type.Union(OPERATION_STATES.map((s) => Type.Literal(s))),
  selector: SelectorSchema,
  total: Type.Integer(),
  counts: TargetCounts,
  maxConcurrency: Type.Integer({ description: "resolved count" }),
  maxErrors: Type.Integer({ description: "resolved count" }),
  requested: Type.Object({
    maxConcurrency: Type.Union([Type.Integer(), Type.String()]),
    maxErrors: Type.Union([Type.Integer(), Type.String()]),
  }),
  rolling: Type.Object({ enabled: Type.Boolean(), healthTimeoutSec: Type.Number() }),
  upgrade: Nullable(
    Type.Object({
      version: Type.String(),
      timeoutSec: Type.Integer(),
      canary: Type.Integer(),
      canarySoakSec: Type.Number(),
    }),
  ),
  reason: Nullable(Type.String()),
  createdBy: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  finishedAt: Nullable(Timestamp),
  cancelRequestedAt: Nullable(Timestamp),
});
export type OperationView = Static<typeof OperationView>;

export const TargetView = Type.Object({
  seq: Type.Integer(),
  vmName: Type.String(),
  state: Type.Union(TARGET_STATES.map((s) => Type.Literal(s))),
  commandId: Nullable(Type.String()),
  startedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
});
export type TargetView = Static<typeof TargetView>;

export const OperationDetail = Type.Composite([
  OperationView,
  Type.Object({
    targets: Type.Object({ items: Type.Array(TargetView), nextCursor: Nullable(Type.String()) }),
  }),
]);
export type OperationDetail = Static<typeof OperationDetail>;

export const CreatedOperation = Type.Object({
  operation: OperationView,
  passwords: Nullable(
    Type.Record(Type.String(), Type.String(), {
      description: "notebook.password only: each target's new password, shown only in this answer",
    }),
  ),
});
export type CreatedOperation = Static<typeof CreatedOperation>;

export const OperationList = Type.Object({
  items: Type.Array(OperationView),
  nextCursor: Nullable(Type.String()),
});
export type OperationList = Static<typeof OperationList>;

export type Selector = Static<typeof SelectorSchema>;

export const IdleRule = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    labels: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: "label expression; absent = every VM" }),
    ),
    idleMinutes: Type.Number({ minimum: 0.01, maximum: 30 * 24 * 60 }),
    action: Type.Union(
      IDLE_ACTIONS.map((a) => Type.Literal(a)),
      { description: "notebook.stop stops the notebook server; vm.stop deallocates the machine" },
    ),
  },
  { additionalProperties: false },
);
export type IdleRule = Static<typeof IdleRule>;

export const IdlePolicyBody = Type.Object(
  {
    enabled: Type.Boolean(),
    rules: Type.Array(IdleRule, {
      maxItems: 100,
      description: "the first rule whose labels match a VM applies",
    }),
  },
  { additionalProperties: false },
);
export type IdlePolicyBody = Static<typeof IdlePolicyBody>;

export const IdlePolicyView = Type.Composite([
  IdlePolicyBody,
  Type.Object({
    updatedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
    updatedBy: Type.Union([Type.String(), Type.Null()]),
  }),
]);
export type IdlePolicyView = Static<typeof IdlePolicyView>;
