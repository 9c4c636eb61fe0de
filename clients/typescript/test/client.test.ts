/** createWatchwordClient itself: its address, its deadlines, close(), and its stream wrapper. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { Interceptor } from "@connectrpc/connect";
import { Code, createWatchwordClient, EventKind } from "../src/index.js";
import { connect, failure, PASSWORD, server, uniqueEmail } from "./support.js";

test("baseUrl may be host:port; other malformed addresses throw a clear TypeError", async () => {
  const { baseUrl } = server();
  const hostPort = new URL(baseUrl).host; // "127.0.0.1:50051"
  const client = createWatchwordClient({ baseUrl: hostPort, timeoutMs: 10_000 });
  try {
    const err = await failure(client.auth.introspect({ sessionToken: "not-a-session" }));
    assert.equal(err.code, Code.Unauthenticated); // the server answered
    assert.equal(err.reason, "SESSION_INVALID");
  } finally {
    client.close();
  }
  for (const bad of ["ftp://127.0.0.1:1", "http://", "not a url", "http://u:p@host:1", ""]) {
    assert.throws(
      () => createWatchwordClient({ baseUrl: bad }),
      (err: unknown) => err instanceof TypeError && err.message.includes("baseUrl must be"),
      bad,
    );
  }
});

test("calls after close() reject with a Canceled WatchwordError and do not reconnect", async () => {
  const { baseUrl } = server();
  const client = createWatchwordClient({ baseUrl, timeoutMs: 10_000 });
  const before = await failure(client.auth.introspect({ sessionToken: "not-a-session" }));
  assert.equal(before.reason, "SESSION_INVALID");
  client.close();
  const after = await failure(client.auth.introspect({ sessionToken: "not-a-session" }));
  assert.equal(after.code, Code.Canceled);
  assert.equal(after.reason, "");
  assert.match(after.rawMessage, /closed/);
  const streamed = await failure(async () => {
    for await (const _ of client.admin.watchEvents({})) {
      assert.fail("a closed client streams nothing");
    }
  });
  assert.equal(streamed.code, Code.Canceled);
});

test("a watch outlives the client-wide timeoutMs; its own timeoutMs still applies", async () => {
  const { baseUrl, adminKey } = server();
  const timeoutMs = 100;
  const watcher = createWatchwordClient({ baseUrl, serviceKey: adminKey, timeoutMs });
  try {
    const { auth } = connect("none");
    let subscribed!: () => void;
    const headers = new Promise<void>((resolve) => (subscribed = resolve));
    const events = watcher.admin
      .watchEvents({ kind: EventKind.LOGIN }, { onHeader: () => subscribed() })
      [Symbol.asyncIterator]();
    try {
      const first = events.next();
      await headers;
      // No event can be awaited for "the deadline did not fire": wait past it.
      await delay(timeoutMs * 3);
      const email = uniqueEmail("outlived");
      await auth.register({ email, password: PASSWORD, firstName: "O", lastName: "L" });
      const { user } = await auth.authenticate({ email, password: PASSWORD });
      const { value, done } = await first;
      assert.equal(done, false);
      assert.equal(value?.event?.userId, user?.id);
    } finally {
      await events.return?.();
    }

    const own = { timeoutMs: 1 };
    const err = await failure(async () => {
      for await (const _ of watcher.admin.watchEvents({ kind: EventKind.USER_DELETED }, own)) {
        assert.fail("no event was expected");
      }
    });
    assert.equal(err.code, Code.DeadlineExceeded);
  } finally {
    watcher.close();
  }
});

test("an error thrown into a stream passes through untouched and cancels the call", async () => {
  const { baseUrl, adminKey } = server();
  const signals: AbortSignal[] = [];
  const spy: Interceptor = (next) => (request) => {
    signals.push(request.signal);
    return next(request);
  };
  const watcher = createWatchwordClient({
    baseUrl,
    serviceKey: adminKey,
    timeoutMs: 10_000,
    interceptors: [spy],
  });
  try {
    const { auth } = connect("none");
    let subscribed!: () => void;
    const headers = new Promise<void>((resolve) => (subscribed = resolve));
    const events = watcher.admin
      .watchEvents({ kind: EventKind.LOGIN }, { onHeader: () => subscribed() })
      [Symbol.asyncIterator]() as AsyncGenerator<unknown>;
    const first = events.next();
    await headers;
    const email = uniqueEmail("thrown");
    await auth.register({ email, password: PASSWORD, firstName: "T", lastName: "H" });
    await auth.authenticate({ email, password: PASSWORD });
    assert.equal((await first).done, false); // suspended at its yield

    const mine = new RangeError("the caller's own error");
    await assert.rejects(events.throw(mine), (err: unknown) => err === mine);
    assert.equal(signals.length, 1);
    assert.equal(signals[0]?.aborted, true, "the stream was cancelled");
  } finally {
    watcher.close();
  }
});
