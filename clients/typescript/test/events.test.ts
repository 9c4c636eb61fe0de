/** AdminService.LogEvent through the client: the application's own audit events. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, EventKind } from "../src/index.js";
import { connect, failure, PASSWORD, uniqueEmail } from "./support.js";

test("logEvent writes an application event that is streamed and listed with its data", async () => {
  const { auth } = connect("none");
  const { admin } = connect("admin");
  const { user } = await auth.register({
    email: uniqueEmail("logged"),
    password: PASSWORD,
    firstName: "L",
    lastName: "E",
  });
  assert.ok(user);
  const data = { invoice: "INV-7", amount: 12.5, lines: [1, 2], paid: true };

  let subscribed!: () => void;
  const headers = new Promise<void>((resolve) => (subscribed = resolve));
  const events = admin
    .watchEvents({ kind: EventKind.APPLICATION }, { onHeader: () => subscribed() })
    [Symbol.asyncIterator]();
  let logged;
  try {
    const first = events.next();
    await headers;
    ({ event: logged } = await admin.logEvent({
      description: "Invoice paid",
      userId: user.id,
      data,
    }));
    const { value, done } = await first;
    assert.equal(done, false);
    assert.deepEqual(value?.event, logged);
  } finally {
    await events.return?.();
  }
  assert.ok(logged);
  assert.equal(logged.kind, EventKind.APPLICATION);
  assert.equal(logged.description, "Invoice paid");
  assert.equal(logged.userId, user.id);
  assert.match(logged.origin, /^admin:/);
  assert.deepEqual(logged.data, data);

  const listed = await admin.listEvents({ userId: user.id, kind: EventKind.APPLICATION });
  assert.deepEqual(listed.events, [logged]);
  const ours = await admin.listEvents({ userId: user.id, kind: EventKind.REGISTRATION });
  assert.deepEqual(ours.events[0]?.data, {});

  const bad = await failure(admin.logEvent({ description: "", origin: "o".repeat(256) }));
  assert.equal(bad.code, Code.InvalidArgument);
  assert.deepEqual(bad.violations.map((v) => v.field).sort(), ["description", "origin"]);
  const missing = await failure(
    admin.logEvent({ description: "x", userId: "00000000-0000-4000-8000-000000000000" }),
  );
  assert.equal(missing.code, Code.NotFound);
  assert.equal(missing.reason, "USER_NOT_FOUND");
});
