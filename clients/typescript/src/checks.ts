/**
 * Read-your-writes and batch checks: the revision of the client's latest AdminService write,
 * passed as `minRevision` to its checks, and `batchCheck` with its results decoded.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions, Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type AccessService,
  type CheckResult,
  type CheckSchema,
} from "./gen/watchword/auth/v1/access_service_pb.js";
import { AdminService } from "./gen/watchword/auth/v1/admin_service_pb.js";
import { fromStatus, WatchwordError } from "./errors.js";

/** The most checks one `batchCheck` may carry (the server's limit too). */
export const MAX_BATCH_CHECKS = 100;

/**
 * How long after a write the client's checks carry its revision by default, in milliseconds:
 * twice the server's default `check_cache_max_staleness`, after which even a cached answer
 * reflects the write.
 */
export const READ_YOUR_WRITES_WINDOW_MS = 60_000;

/**
 * One check of a batch, as the generated `Check` takes it:
 * `{ kind: { case: "membership", value: { subject, group } } }` or
 * `{ kind: { case: "permission", value: { subject, name, tableName, recordId } } }`.
 */
export type CheckInit = MessageInitShape<typeof CheckSchema>;

/** The answer to one check of `batchCheck`. */
export interface CheckOutcome {
  /**
   * For a membership, whether the user is a member; for a permission, whether a grant
   * matches. Always false when `error` is set.
   */
  readonly allowed: boolean;
  /**
   * Why this check has no answer, as the WatchwordError the single call would have rejected
   * with (e.g. `Code.Unauthenticated`, reason "SESSION_INVALID"); undefined when it has one.
   */
  readonly error: WatchwordError | undefined;
  /** The state the answer reflects (opaque; may be passed as `minRevision`). */
  readonly revision: string;
}

/** The revision of a client's latest write, and the `minRevision` its checks send. */
export class Revisions {
  readonly windowMs: number;
  #latest = "";
  #writtenAt = 0;
  readonly #now: () => number;

  /**
   * @param readYourWrites true for READ_YOUR_WRITES_WINDOW_MS, a window in milliseconds, or
   *   false (or 0) never to send the latest write's revision.
   */
  constructor(
    readYourWrites: boolean | number = true,
    now: () => number = () => performance.now(),
  ) {
    const windowMs =
      readYourWrites === true
        ? READ_YOUR_WRITES_WINDOW_MS
        : readYourWrites === false
          ? 0
          : readYourWrites;
    if (typeof windowMs !== "number" || Number.isNaN(windowMs) || windowMs < 0) {
      throw new RangeError(
        `readYourWrites must be a boolean or milliseconds >= 0, not ${String(readYourWrites)}`,
      );
    }
    this.windowMs = windowMs;
    this.#now = now;
  }

  /** The revision the latest write returned; "" before the first. */
  get last(): string {
    return this.#latest;
  }

  /** Remembers a write's revision (an empty one, from an older server, is none). */
  note(revision: string): void {
    if (revision) {
      this.#latest = revision;
      this.#writtenAt = this.#now();
    }
  }

  /** What a check without its own `minRevision` sends: the latest write's, within the window. */
  current(): string {
    return this.#latest && this.#now() - this.#writtenAt < this.windowMs ? this.#latest : "";
  }

  /** `request` with the current revision as `minRevision`, unless it says its own. */
  fill<T extends object>(request: T): T {
    // A message made with create() has all its fields: its minRevision ("" or not) is meant.
    const own = (request as { minRevision?: unknown }).minRevision;
    if ("$typeName" in request || own !== undefined) {
      return request;
    }
    const minRevision = this.current();
    return minRevision ? { ...request, minRevision } : request;
  }

  /** A BatchCheck request with `fill` applied to each of its checks. */
  fillBatch<T extends object>(request: T): T {
    const checks = (request as { checks?: unknown }).checks;
    if ("$typeName" in request || !Array.isArray(checks)) {
      return request;
    }
    return { ...request, checks: checks.map((check: unknown) => this.#fillCheck(check)) };
  }

  #fillCheck(check: unknown): unknown {
    if (typeof check !== "object" || check === null || "$typeName" in check) {
      return check;
    }
    const kind = (check as { kind?: { case?: unknown; value?: unknown } }).kind;
    if (kind === undefined || typeof kind.value !== "object" || kind.value === null) {
      return check;
    }
    return { ...check, kind: { ...kind, value: this.fill(kind.value) } };
  }
}

/** The shape of every unary method of a connect client. */
type Unary = (input: unknown, options?: CallOptions) => Promise<unknown>;

/** `access` with `minRevision` filled in by `revisions` on every check it makes. */
export function readingYourWrites(
  access: Client<typeof AccessService>,
  revisions: Revisions,
): Client<typeof AccessService> {
  return {
    ...access,
    hasMembership: (input, options) => access.hasMembership(revisions.fill(input), options),
    hasPermission: (input, options) => access.hasPermission(revisions.fill(input), options),
    batchCheck: (input, options) => access.batchCheck(revisions.fillBatch(input), options),
  };
}

/** `admin` noting, in `revisions`, the revision every write returns. */
export function notingRevisions(
  admin: Client<typeof AdminService>,
  revisions: Revisions,
): Client<typeof AdminService> {
  const methods = { ...admin } as unknown as Record<string, Unary>;
  for (const method of AdminService.methods) {
    const writes = method.output.fields.some((field) => field.name === "revision");
    const call = methods[method.localName];
    if (method.methodKind !== "unary" || !writes || call === undefined) {
      continue;
    }
    methods[method.localName] = async (input, options) => {
      const response = await call(input, options);
      revisions.note((response as { revision: string }).revision);
      return response;
    };
  }
  return methods as unknown as Client<typeof AdminService>;
}

function outcome(result: CheckResult): CheckOutcome {
  if (result.error !== undefined) {
    const error = fromStatus(result.error);
    return Object.freeze({ allowed: false, error, revision: result.revision });
  }
  return Object.freeze({ allowed: result.allowed, error: undefined, revision: result.revision });
}

/**
 * Makes up to MAX_BATCH_CHECKS checks in one BatchCheck call and decodes their results: one
 * per check, in order. No checks: no call.
 */
export async function batchCheck(
  access: Client<typeof AccessService>,
  checks: readonly CheckInit[],
  options?: CallOptions,
): Promise<CheckOutcome[]> {
  if (checks.length > MAX_BATCH_CHECKS) {
    throw new WatchwordError(
      new ConnectError(
        `batchCheck takes at most ${MAX_BATCH_CHECKS} checks, got ${checks.length}: ` +
          "split them into several batches",
        Code.InvalidArgument,
      ),
    );
  }
  if (checks.length === 0) {
    return [];
  }
  const { results } = await access.batchCheck({ checks: [...checks] }, options);
  if (results.length !== checks.length) {
    // No result can be trusted to answer its check.
    throw new WatchwordError(
      new ConnectError(
        `BatchCheck answered ${results.length} results for ${checks.length} checks`,
        Code.Unknown,
      ),
    );
  }
  return results.map(outcome);
}
