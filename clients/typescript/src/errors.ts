/**
 * WatchwordError: a failed call with the server's rich error details made readable.
 *
 * The server answers every error with a google.rpc.Status (in the `grpc-status-details-bin`
 * trailer, or as a BatchCheck result's `error`) carrying one google.rpc.ErrorInfo, plus a
 * google.rpc.BadRequest for input errors, a google.rpc.RetryInfo when a retry must wait, and
 * a google.rpc.LocalizedMessage with the configured text. Connect hands those details over as
 * raw `Any` values, decoded with the messages protoc-gen-es generates from the vendored
 * google/rpc/error_details.proto (src/gen/google/rpc).
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  LocalizedMessageSchema,
  RetryInfoSchema,
  type RetryInfo,
} from "./gen/google/rpc/error_details_pb.js";
import type { Status } from "./gen/google/rpc/status_pb.js";
import type { ErrorReason } from "./gen/watchword/auth/v1/error_reason_pb.js";

/**
 * The reasons the server sends (`ErrorReason` value names without their prefix, e.g.
 * "INVALID_CREDENTIALS"). Other strings stay possible: a newer server may add reasons, and
 * an error that never reached the server (a refused connection, a deadline) has reason "".
 */
export type WatchwordReason = Exclude<keyof typeof ErrorReason, "UNSPECIFIED">;

/** An invalid request field, from the error's google.rpc.BadRequest. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/**
 * A failed Watchword call. Every method of the clients from `createWatchwordClient` rejects
 * with it (streams throw it while iterating).
 *
 * @example
 *   try {
 *     await client.auth.authenticate({ email, password });
 *   } catch (err) {
 *     if (err instanceof WatchwordError && err.reason === "INVALID_CREDENTIALS") { ... }
 *   }
 */
export class WatchwordError extends Error {
  override name = "WatchwordError";
  /** The status code, e.g. `Code.Unauthenticated`. */
  readonly code: Code;
  /** ErrorInfo.reason, e.g. "INVALID_CREDENTIALS"; "" when the error carries no ErrorInfo. */
  readonly reason: WatchwordReason | (string & {});
  /** ErrorInfo.domain: "watchword.auth.v1" for errors from the server. */
  readonly domain: string;
  /** ErrorInfo.metadata. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The invalid request fields (BadRequest field violations), in the server's order. */
  readonly violations: readonly FieldViolation[];
  /** LocalizedMessage.message: the configured text for end users; "" when absent. */
  readonly localizedMessage: string;
  /**
   * How long to wait before trying again, in milliseconds, when the server says (RetryInfo,
   * else `metadata.retry_after` in seconds): with `Code.ResourceExhausted` and reason
   * "TOO_MANY_ATTEMPTS" or "OVERLOADED". Undefined otherwise.
   */
  readonly retryAfterMs: number | undefined;
  /** The status message, without the code prefix that `message` has. */
  readonly rawMessage: string;
  /** The response headers and trailers that came with the error. */
  readonly headers: Headers;
  /** The ConnectError this error was made from. */
  declare readonly cause: ConnectError;

  /** Reads the details of `error`; prefer `toWatchwordError`, which accepts anything. */
  constructor(error: ConnectError) {
    const info = error.findDetails(ErrorInfoSchema)[0];
    const reason = info?.reason ?? "";
    super(`[${codeToString(error.code)}] ${reason ? `${reason}: ` : ""}${error.rawMessage}`, {
      cause: error,
    });
    this.code = error.code;
    this.reason = reason;
    this.domain = info?.domain ?? "";
    this.metadata = Object.freeze({ ...info?.metadata });
    this.violations = Object.freeze(
      error
        .findDetails(BadRequestSchema)
        .flatMap((bad) => bad.fieldViolations)
        .map(({ field, description }) => Object.freeze({ field, description })),
    );
    this.localizedMessage = error.findDetails(LocalizedMessageSchema)[0]?.message ?? "";
    this.retryAfterMs = retryAfterMs(error.findDetails(RetryInfoSchema)[0], this.metadata);
    this.rawMessage = error.rawMessage;
    this.headers = error.metadata;
  }
}

/**
 * Converts anything a call may throw into a WatchwordError: a WatchwordError is returned as
 * is, a ConnectError has its details read, and any other value becomes `Code.Unknown` (see
 * `ConnectError.from`).
 */
export function toWatchwordError(err: unknown): WatchwordError {
  if (err instanceof WatchwordError) {
    return err;
  }
  return new WatchwordError(ConnectError.from(err, Code.Unknown));
}


function retryAfterMs(
  retry: RetryInfo | undefined,
  metadata: Readonly<Record<string, string>>,
): number | undefined {
  const delay = retry?.retryDelay;
  if (delay !== undefined) {
    return Number(delay.seconds) * 1000 + delay.nanos / 1e6;
  }
  const seconds = metadata["retry_after"];
  return seconds !== undefined && /^[0-9]+$/.test(seconds) ? Number(seconds) * 1000 : undefined;
}

/**
 * Converts a google.rpc.Status into a WatchwordError, with its details read as for a failed
 * call: for the `error` of a result of the raw `access.batchCheck` (`client.batchCheck` does
 * it already). A status with code 0 (OK) or an unknown number is `Code.Unknown`: it was sent
 * as an error.
 */
export function fromStatus(status: Status): WatchwordError {
  const code = status.code !== 0 && status.code in Code ? (status.code as Code) : Code.Unknown;
  const error = new ConnectError(status.message, code);
  error.details = status.details.map(({ typeUrl, value }) => ({
    type: typeUrl.slice(typeUrl.lastIndexOf("/") + 1),
    value,
  }));
  return new WatchwordError(error);
}
