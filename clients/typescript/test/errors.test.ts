/** WatchwordError and toWatchwordError on their own (no server needed). */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  LocalizedMessageSchema,
  RetryInfoSchema,
} from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";
import {
  Code,
  createWatchwordClient,
  fromStatus,
  toWatchwordError,
  WatchwordError,
} from "../src/index.js";
import { failure } from "./support.js";

/** A ConnectError as the gRPC transport reads it from the wire: details as raw Any values. */
function fromTheWire(): ConnectError {
  const err = new ConnectError("The request is invalid.", Code.InvalidArgument, {
    "x-request-id": "r-1",
  });
  const info = create(ErrorInfoSchema, {
    reason: "INVALID_ARGUMENT",
    domain: "watchword.auth.v1",
    metadata: { field: "password" },
  });
  const bad = create(BadRequestSchema, {
    fieldViolations: [
      { field: "password", description: "too short", reason: "TOO_SHORT" },
      { field: "email", description: "not an address" },
    ],
  });
  const text = create(LocalizedMessageSchema, { locale: "en", message: "Please check the form." });
  err.details = [
    { type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, info) },
    { type: "google.rpc.BadRequest", value: toBinary(BadRequestSchema, bad) },
    { type: "google.rpc.LocalizedMessage", value: toBinary(LocalizedMessageSchema, text) },
    { type: "google.rpc.DebugInfo", value: new Uint8Array([10, 1, 120]) }, // ignored
  ];
  return err;
}

test("toWatchwordError reads ErrorInfo, BadRequest and LocalizedMessage", () => {
  const connectError = fromTheWire();
  const err = toWatchwordError(connectError);
  assert.ok(err instanceof WatchwordError);
  assert.ok(err instanceof Error);
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.reason, "INVALID_ARGUMENT");
  assert.equal(err.domain, "watchword.auth.v1");
  assert.deepEqual(err.metadata, { field: "password" });
  assert.deepEqual(err.violations, [
    { field: "password", description: "too short" },
    { field: "email", description: "not an address" },
  ]);
  assert.equal(err.localizedMessage, "Please check the form.");
  assert.equal(err.rawMessage, "The request is invalid.");
  assert.equal(err.message, `[invalid_argument] INVALID_ARGUMENT: ${err.rawMessage}`);
  assert.equal(err.headers.get("x-request-id"), "r-1");
  assert.equal(err.cause, connectError);
  assert.ok(Object.isFrozen(err.violations) && Object.isFrozen(err.metadata));
});

test("toWatchwordError passes a WatchwordError through and wraps anything else", () => {
  const err = toWatchwordError(fromTheWire());
  assert.equal(toWatchwordError(err), err);

  const plain = toWatchwordError(new ConnectError("deadline", Code.DeadlineExceeded));
  assert.equal(plain.code, Code.DeadlineExceeded);
  assert.equal(plain.reason, "");
  assert.equal(plain.domain, "");
  assert.deepEqual(plain.violations, []);
  assert.equal(plain.localizedMessage, "");
  assert.equal(plain.message, "[deadline_exceeded] deadline");

  const other = toWatchwordError(new TypeError("boom"));
  assert.equal(other.code, Code.Unknown);
  assert.equal(other.rawMessage, "boom");
  assert.equal(toWatchwordError("text").code, Code.Unknown);
});

test("a call that reaches no server rejects with a WatchwordError", async () => {
  // A port that was free a moment ago: nothing listens on it.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  const client = createWatchwordClient({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 5_000 });
  try {
    const err = await failure(client.auth.introspect({ sessionToken: "x" }));
    assert.equal(err.code, Code.Unavailable);
    assert.equal(err.reason, "");
  } finally {
    client.close();
  }
});

test("fromStatus reads a google.rpc.Status; RetryInfo gives retryAfterMs", () => {
  const info = create(ErrorInfoSchema, {
    reason: "OVERLOADED",
    domain: "watchword.auth.v1",
    metadata: { retry_after: "3" },
  });
  const retry = create(RetryInfoSchema, { retryDelay: { seconds: 3n, nanos: 500_000_000 } });
  const status = create(StatusSchema, {
    code: Code.ResourceExhausted,
    message: "The service is busy",
    details: [
      {
        typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
        value: toBinary(ErrorInfoSchema, info),
      },
      {
        typeUrl: "type.googleapis.com/google.rpc.RetryInfo",
        value: toBinary(RetryInfoSchema, retry),
      },
    ],
  });
  const err = fromStatus(status);
  assert.ok(err instanceof WatchwordError);
  assert.equal(err.code, Code.ResourceExhausted);
  assert.equal(err.reason, "OVERLOADED");
  assert.equal(err.rawMessage, "The service is busy");
  assert.equal(err.retryAfterMs, 3500);

  // Without RetryInfo, ErrorInfo's retry_after (seconds) says it; without either, nothing.
  const throttled = toWatchwordError(
    Object.assign(new ConnectError("slow down", Code.ResourceExhausted), {
      details: [
        {
          type: "google.rpc.ErrorInfo",
          value: toBinary(
            ErrorInfoSchema,
            create(ErrorInfoSchema, {
              reason: "TOO_MANY_ATTEMPTS",
              metadata: { retry_after: "7" },
            }),
          ),
        },
      ],
    }),
  );
  assert.equal(throttled.retryAfterMs, 7000);
  assert.equal(toWatchwordError(fromTheWire()).retryAfterMs, undefined);
  // Sent as an error, so never success: OK and unknown numbers are Code.Unknown.
  for (const code of [0, 99]) {
    assert.equal(fromStatus(create(StatusSchema, { code, message: "odd" })).code, Code.Unknown);
  }
});
