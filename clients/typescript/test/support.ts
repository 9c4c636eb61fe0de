/**
 * What the end-to-end tests share: the live server they run against, read from the
 * environment, and small helpers. tests/e2e/test_typescript_client.py starts the server and
 * sets the variables; without them the tests fail (they never skip).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after } from "node:test";
import { createWatchwordClient, type WatchwordClient, WatchwordError } from "../src/index.js";

/** A password long enough for the server's default password_min_length (8). */
export const PASSWORD = "correct horse battery staple";

export interface Server {
  /** e.g. "http://127.0.0.1:50051". */
  readonly baseUrl: string;
  readonly accessKey: string;
  readonly adminKey: string;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: these tests need a live server (run them through ` +
        "`make test` or tests/e2e/test_typescript_client.py)",
    );
  }
  return value;
}

/** The live server; throws (failing the calling test) when the environment lacks it. */
export function server(): Server {
  return {
    baseUrl: required("WATCHWORD_TARGET"),
    accessKey: required("WATCHWORD_ACCESS_KEY"),
    adminKey: required("WATCHWORD_ADMIN_KEY"),
  };
}

/** A client of the live server, closed when the test file ends. */
export function connect(key: "access" | "admin" | "none"): WatchwordClient {
  const { baseUrl, accessKey, adminKey } = server();
  const serviceKey = { access: accessKey, admin: adminKey, none: undefined }[key];
  const client = createWatchwordClient({ baseUrl, serviceKey, timeoutMs: 10_000 });
  after(() => client.close());
  return client;
}

/** An e-mail address no other test uses. */
export function uniqueEmail(label: string): string {
  return `${label}-${randomUUID()}@example.com`;
}

/** Awaits `call`, asserts that it rejects with a WatchwordError, and returns the error. */
export async function failure(
  call: Promise<unknown> | (() => Promise<unknown>),
): Promise<WatchwordError> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (err) {
    assert.ok(err instanceof WatchwordError, `expected a WatchwordError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the call to fail");
}
