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

/** The live server that requires client certificates, and the PEM files to reach it. */
export interface TlsServer {
  /** e.g. "https://127.0.0.1:50052". */
  readonly baseUrl: string;
  /** The CA of the server's certificate and of the client certificates it accepts. */
  readonly caFile: string;
  /** A client certificate (and its key) from that CA. */
  readonly certFile: string;
  readonly keyFile: string;
  /** A client certificate (and its key) from another CA. */
  readonly strangerCertFile: string;
  readonly strangerKeyFile: string;
}

/** The mutual-TLS server; throws (failing the calling test) when the environment lacks it. */
export function tlsServer(): TlsServer {
  return {
    baseUrl: required("WATCHWORD_TLS_TARGET"),
    caFile: required("WATCHWORD_TLS_CA_FILE"),
    certFile: required("WATCHWORD_TLS_CLIENT_CERT_FILE"),
    keyFile: required("WATCHWORD_TLS_CLIENT_KEY_FILE"),
    strangerCertFile: required("WATCHWORD_TLS_STRANGER_CERT_FILE"),
    strangerKeyFile: required("WATCHWORD_TLS_STRANGER_KEY_FILE"),
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
