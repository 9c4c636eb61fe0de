/** batchCheck and read-your-writes (lastRevision sent as minRevision) against the live server. */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, test } from "node:test";
import type { Interceptor } from "@connectrpc/connect";
import {
  type CheckInit,
  Code,
  createWatchwordClient,
  fromStatus,
  MAX_BATCH_CHECKS,
  type WatchwordClient,
  WatchwordError,
} from "../src/index.js";
import { connect, failure, PASSWORD, server, uniqueEmail } from "./support.js";

interface Seen {
  readonly method: string;
  readonly message: Record<string, unknown>;
}

/** A client of the live server that records the requests of its unary calls. */
function recording(
  key: "access" | "admin",
  readYourWrites?: boolean | number,
): { client: WatchwordClient; seen: Seen[] } {
  const { baseUrl, accessKey, adminKey } = server();
  const seen: Seen[] = [];
  const spy: Interceptor = (next) => (request) => {
    if (!request.stream) {
      const message = request.message as unknown as Record<string, unknown>;
      seen.push({ method: request.method.name, message });
    }
    return next(request);
  };
  const client = createWatchwordClient({
    baseUrl,
    serviceKey: key === "admin" ? adminKey : accessKey,
    timeoutMs: 10_000,
    interceptors: [spy],
    readYourWrites,
  });
  after(() => client.close());
  return { client, seen };
}

/** The minRevision of every check in `seen` (each check of a batch in turn). */
function sentRevisions(seen: readonly Seen[]): string[] {
  return seen.flatMap(({ method, message }) => {
    if (method === "HasMembership" || method === "HasPermission") {
      return [message["minRevision"] as string];
    }
    if (method === "BatchCheck") {
      const checks = message["checks"] as { kind: { value?: { minRevision: string } } }[];
      return checks.map((check) => check.kind.value?.minRevision ?? "");
    }
    return [];
  });
}

async function member(label: string): Promise<{ userId: string; sessionToken: string }> {
  const { auth } = connect("none");
  const { user, sessionToken } = await auth.register({
    email: uniqueEmail(label),
    password: PASSWORD,
    firstName: "B",
    lastName: "C",
  });
  assert.ok(user);
  return { userId: user.id, sessionToken };
}

test("batchCheck answers each check in its place; a bad one fails only itself", async () => {
  const { admin } = connect("admin");
  const access = connect("access");
  const { userId, sessionToken } = await member("batch");
  const group = `batch-${randomUUID()}`;
  await admin.createGroup({ group: { name: group } });
  await admin.addMembership({ group, userId });
  await admin.addPermission({ group, name: "edit", tableName: "documents", recordId: "" });

  const byUser = { case: "userId", value: userId } as const;
  const checks: CheckInit[] = [
    { kind: { case: "membership", value: { subject: byUser, group } } },
    {
      kind: {
        case: "membership",
        value: { subject: { case: "sessionToken", value: "not-a-session" }, group },
      },
    },
    {
      kind: {
        case: "permission",
        value: {
          subject: { case: "sessionToken", value: sessionToken },
          name: "edit",
          tableName: "documents",
          recordId: "7",
        },
      },
    },
    {}, // neither a membership nor a permission
    { kind: { case: "membership", value: { subject: byUser, group: `${group}-other` } } },
  ];
  const outcomes = await access.batchCheck(checks);
  assert.deepEqual(
    outcomes.map(({ allowed }) => allowed),
    [true, false, true, false, false],
  );
  assert.deepEqual(
    outcomes.map(({ error }) => error?.code),
    [undefined, Code.Unauthenticated, undefined, Code.InvalidArgument, undefined],
  );
  const invalid = outcomes[1]?.error;
  assert.ok(invalid instanceof WatchwordError);
  assert.equal(invalid.reason, "SESSION_INVALID");
  assert.equal(invalid.domain, "watchword.auth.v1");
  assert.ok(invalid.localizedMessage);
  assert.deepEqual(
    outcomes[3]?.error?.violations.map(({ field }) => field),
    ["kind"],
  );
  assert.ok(outcomes.every(({ revision }) => typeof revision === "string"));

  // The raw method gives the google.rpc.Status; fromStatus reads it the same way.
  const { results } = await access.access.batchCheck({ checks });
  assert.equal(results.length, checks.length);
  const raw = results[1]?.error;
  assert.ok(raw);
  assert.equal(fromStatus(raw).reason, "SESSION_INVALID");
});

test("batchCheck takes up to 100 checks; more are refused before any call", async () => {
  const { userId } = await member("hundred");
  const { client, seen } = recording("access");
  const checks: CheckInit[] = Array.from({ length: MAX_BATCH_CHECKS + 1 }, (_, n) => ({
    kind: {
      case: "permission",
      value: { subject: { case: "userId", value: userId }, name: `p${n}` },
    },
  }));
  const outcomes = await client.batchCheck(checks.slice(0, 100));
  assert.equal(outcomes.length, 100);
  assert.ok(outcomes.every(({ allowed, error }) => !allowed && error === undefined));
  const err = await failure(client.batchCheck(checks));
  assert.equal(err.code, Code.InvalidArgument);
  assert.match(err.rawMessage, /at most 100 checks, got 101/);
  assert.deepEqual(await client.batchCheck([]), []);
  assert.deepEqual(
    seen.map(({ method }) => method),
    ["BatchCheck"],
    "neither the refused nor the empty batch made a call",
  );
  // The server refuses more than 100 as well, as the whole call's error.
  const whole = await failure(client.access.batchCheck({ checks }));
  assert.equal(whole.code, Code.InvalidArgument);
});

test("checks read the client's own writes: lastRevision is sent as minRevision", async () => {
  const { userId } = await member("ryw");
  const { client, seen } = recording("admin");
  const group = `ryw-${randomUUID()}`;
  const subject = { case: "userId", value: userId } as const;
  const isMember = async (minRevision?: string) =>
    (
      await client.access.hasMembership(
        minRevision === undefined ? { subject, group } : { subject, group, minRevision },
      )
    ).member;

  assert.equal(client.lastRevision, "");
  assert.equal(await isMember(), false);
  await client.admin.createGroup({ group: { name: group } });
  const created = client.lastRevision;
  assert.ok(created);
  await client.admin.addMembership({ group, userId });
  const added = client.lastRevision;
  assert.ok(added && added !== created);
  assert.equal(await isMember(), true);

  await client.admin.blockUser({ userId });
  const blocked = client.lastRevision;
  assert.ok(blocked && blocked !== added);
  assert.equal(await isMember(), false);
  assert.equal(await isMember(""), false); // explicitly none: any cached answer
  const [outcome] = await client.batchCheck([
    { kind: { case: "membership", value: { subject, group } } },
  ]);
  assert.equal(outcome?.allowed, false);
  assert.equal(outcome?.error, undefined);
  await client.access.hasPermission({ subject, name: "read", minRevision: added });
  assert.deepEqual(sentRevisions(seen), ["", added, blocked, "", blocked, added]);
  await client.admin.listGroups({}); // a read is no write
  assert.equal(client.lastRevision, blocked);

  // Opting out: the revision is still told, never sent unless asked for.
  const quiet = recording("admin", false);
  await quiet.client.admin.allowUser({ userId });
  assert.ok(quiet.client.lastRevision);
  assert.equal(
    (await quiet.client.access.hasMembership({ subject, group })).member,
    true,
    "allowed again",
  );
  await quiet.client.access.hasMembership({ subject, group, minRevision: blocked });
  assert.deepEqual(sentRevisions(quiet.seen), ["", blocked]);
  assert.throws(
    () => createWatchwordClient({ baseUrl: server().baseUrl, readYourWrites: -1 }),
    RangeError,
  );
});
