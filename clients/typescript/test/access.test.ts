/** AccessService and AdminService through the client: grants, checks and service keys. */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";
import { Code, EventKind } from "../src/index.js";
import { connect, failure, PASSWORD, uniqueEmail } from "./support.js";

test("a permission granted to a group is seen by HasPermission", async () => {
  const { auth } = connect("none");
  const { admin } = connect("admin");
  const { access } = connect("access");
  const { user, sessionToken } = await auth.register({
    email: uniqueEmail("grace"),
    password: PASSWORD,
    firstName: "Grace",
    lastName: "Hopper",
  });
  assert.ok(user);
  const group = `editors-${randomUUID()}`;

  const created = await admin.createGroup({ group: { name: group, description: "Edit docs" } });
  assert.equal(created.group?.name, group);
  const added = await admin.addMembership({ group, userId: user.id });
  assert.equal(added.membership?.userId, user.id);
  const granted = await admin.addPermission({
    group,
    name: "edit",
    tableName: "documents",
    recordId: "",
  });
  assert.equal(granted.permission?.group, group);
  assert.ok(granted.permission?.id);

  const byUser = { case: "userId", value: user.id } as const;
  const check = async (name: string, tableName = "documents") =>
    (await access.hasPermission({ subject: byUser, name, tableName, recordId: "42" })).allowed;
  assert.equal(await check("edit"), true, "an empty record_id grants every record");
  assert.equal(await check("delete"), false, "another permission name");
  assert.equal(await check("edit", "invoices"), false, "another table");
  const bySession = await access.hasPermission({
    subject: { case: "sessionToken", value: sessionToken },
    name: "edit",
    tableName: "documents",
    recordId: "7",
  });
  assert.equal(bySession.allowed, true);
  const member = await access.hasMembership({ subject: byUser, group });
  assert.equal(member.member, true);
  const stranger = await access.hasMembership({ subject: byUser, group: `${group}-other` });
  assert.equal(stranger.member, false);
});

test("a check on a revoked session is SESSION_INVALID, not false", async () => {
  const { auth } = connect("none");
  const { access } = connect("access");
  const { sessionToken } = await auth.register({
    email: uniqueEmail("linus"),
    password: PASSWORD,
    firstName: "Linus",
    lastName: "T",
  });
  await auth.logout({ sessionToken });
  const err = await failure(
    access.hasPermission({
      subject: { case: "sessionToken", value: sessionToken },
      name: "edit",
      tableName: "",
      recordId: "",
    }),
  );
  assert.equal(err.code, Code.Unauthenticated);
  assert.equal(err.reason, "SESSION_INVALID");
});

test("AdminService without a service key is SERVICE_KEY_MISSING", async () => {
  const { admin } = connect("none");
  const err = await failure(admin.listGroups({}));
  assert.equal(err.code, Code.Unauthenticated);
  assert.equal(err.reason, "SERVICE_KEY_MISSING");
  assert.equal(err.domain, "watchword.auth.v1");
});

test("AdminService with an access key is SCOPE_INSUFFICIENT", async () => {
  const { admin } = connect("access");
  const err = await failure(admin.createGroup({ group: { name: `nope-${randomUUID()}` } }));
  assert.equal(err.code, Code.PermissionDenied);
  assert.equal(err.reason, "SCOPE_INSUFFICIENT");
});

test("WatchEvents streams events, and its errors are WatchwordErrors too", async () => {
  const { auth } = connect("none");
  const { admin } = connect("admin");
  const email = uniqueEmail("watched");
  let subscribed!: () => void;
  const headers = new Promise<void>((resolve) => (subscribed = resolve));
  const events = admin
    .watchEvents({ kind: EventKind.LOGIN }, { onHeader: () => subscribed() })
    [Symbol.asyncIterator]();
  try {
    const first = events.next(); // starts the call; the server answers headers once subscribed
    await headers;
    // Registering is no LOGIN event: the filter drops it.
    await auth.register({ email, password: PASSWORD, firstName: "W", lastName: "E" });
    const { user } = await auth.authenticate({ email, password: PASSWORD });
    const { value, done } = await first;
    assert.equal(done, false);
    assert.equal(value?.event?.kind, EventKind.LOGIN);
    assert.equal(value?.event?.userId, user?.id);
  } finally {
    await events.return?.();
  }

  const { admin: keyless } = connect("none");
  const err = await failure(async () => {
    for await (const _ of keyless.watchEvents({})) {
      assert.fail("a keyless stream yields nothing");
    }
  });
  assert.equal(err.code, Code.Unauthenticated);
  assert.equal(err.reason, "SERVICE_KEY_MISSING");
});

test("aborting a stream's signal ends it with a Canceled WatchwordError", async () => {
  const { admin } = connect("admin");
  const abort = new AbortController();
  const err = await failure(async () => {
    // No test deletes users, so no event comes before the abort.
    const options = { signal: abort.signal, onHeader: () => abort.abort() };
    for await (const _ of admin.watchEvents({ kind: EventKind.USER_DELETED }, options)) {
      assert.fail("no event was expected");
    }
  });
  assert.equal(err.code, Code.Canceled);
  assert.equal(err.reason, "");
});
