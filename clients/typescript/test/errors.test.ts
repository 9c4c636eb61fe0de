/** WatchwordError and toWatchwordError on their own (no server needed). */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, LocalizedMessageSchema } from "../src/errors.js";
import { Code, createWatchwordClient, toWatchwordError, WatchwordError } from "../src/index.js";
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
