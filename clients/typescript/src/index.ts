/**
 * @watchword/client: a typed client for the Watchword authentication and authorization
 * service, over gRPC with @connectrpc/connect-node.
 *
 * The request and response types and the service descriptors are the code protoc-gen-es
 * generates from protos/watchword/auth/v1 (re-exported as is).
 */

export { createWatchwordClient } from "./client.js";
export type { WatchwordClient, WatchwordClientOptions, WatchwordTlsOptions } from "./client.js";
export { MAX_BATCH_CHECKS, READ_YOUR_WRITES_WINDOW_MS } from "./checks.js";
export type { CheckInit, CheckOutcome } from "./checks.js";
export { WatchwordError, fromStatus, toWatchwordError } from "./errors.js";
export type { FieldViolation, WatchwordReason } from "./errors.js";
export type { Status } from "./gen/google/rpc/status_pb.js";
export { Code } from "@connectrpc/connect";

export * from "./gen/watchword/auth/v1/access_service_pb.js";
export * from "./gen/watchword/auth/v1/admin_service_pb.js";
export * from "./gen/watchword/auth/v1/auth_service_pb.js";
export * from "./gen/watchword/auth/v1/error_reason_pb.js";
export * from "./gen/watchword/auth/v1/resources_pb.js";
