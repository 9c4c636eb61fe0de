/** AuthService through the client: the session lifecycle and typed errors. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, UserStatus } from "../src/index.js";
import { connect, failure, PASSWORD, uniqueEmail } from "./support.js";

test("register, authenticate, introspect and logout", async () => {
  const { auth } = connect("none");
  const email = uniqueEmail("ada");

  const registered = await auth.register({
    email,
    password: PASSWORD,
    firstName: "Ada",
    lastName: "Lovelace",
  });
  assert.ok(registered.user);
  assert.equal(registered.user.email, email);
  assert.equal(registered.user.firstName, "Ada");
  assert.equal(registered.user.status, UserStatus.ACTIVE);
  assert.ok(registered.user.id);
  assert.ok(registered.sessionToken, "verification is off: registering logs in");

  const login = await auth.authenticate({ email, password: PASSWORD });
  assert.ok(login.sessionToken);
  assert.notEqual(login.sessionToken, registered.sessionToken);
  assert.equal(login.user?.id, registered.user.id);
  assert.ok(login.expireTime, "a session has an expiry");

  const session = await auth.introspect({ sessionToken: login.sessionToken });
  assert.equal(session.user?.id, registered.user.id);
  assert.equal(session.user?.email, email);
  assert.ok(session.expireTime);

  await auth.logout({ sessionToken: login.sessionToken });
  const revoked = await failure(auth.introspect({ sessionToken: login.sessionToken }));
  assert.equal(revoked.code, Code.Unauthenticated);
  assert.equal(revoked.reason, "SESSION_INVALID");
  // The session from Register is still valid: logout revokes only its own session.
  await auth.introspect({ sessionToken: registered.sessionToken });
});

test("a wrong password is a WatchwordError with reason INVALID_CREDENTIALS", async () => {
  const { auth } = connect("none");
  const email = uniqueEmail("bob");
  await auth.register({ email, password: PASSWORD, firstName: "Bob", lastName: "B" });

  const err = await failure(auth.authenticate({ email, password: "not the password" }));
  assert.ok(err instanceof Error);
  assert.equal(err.name, "WatchwordError");
  assert.equal(err.code, Code.Unauthenticated);
  assert.equal(err.reason, "INVALID_CREDENTIALS");
  assert.equal(err.domain, "watchword.auth.v1");
  assert.ok(err.localizedMessage, "the server sends the configured message text");
  assert.match(err.message, /^\[unauthenticated\] INVALID_CREDENTIALS: /);
  assert.deepEqual(err.violations, []);

  // An unknown e-mail address looks exactly the same.
  const nobody = uniqueEmail("nobody");
  const unknown = await failure(auth.authenticate({ email: nobody, password: PASSWORD }));
  assert.equal(unknown.code, err.code);
  assert.equal(unknown.reason, err.reason);
  assert.equal(unknown.localizedMessage, err.localizedMessage);
});

test("a short password is INVALID_ARGUMENT with a violation on password", async () => {
  const { auth } = connect("none");
  const email = uniqueEmail("short");
  const err = await failure(
    auth.register({ email, password: "short", firstName: "S", lastName: "P" }),
  );
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.reason, "INVALID_ARGUMENT");
  const fields = err.violations.map((violation) => violation.field);
  assert.ok(fields.includes("password"), `violations: ${JSON.stringify(err.violations)}`);
  assert.ok(err.violations.every((violation) => violation.description));
});

test("passkeys: registration options, the listing, and a wrong challenge refused", async () => {
  const { auth } = connect("none");
  const email = uniqueEmail("pia");
  const { sessionToken, user } = await auth.register({
    email,
    password: PASSWORD,
    firstName: "Pia",
    lastName: "K",
  });

  const { optionsJson } = await auth.beginPasskeyRegistration({ sessionToken });
  const options = JSON.parse(optionsJson);
  assert.equal(options.rp.id, "localhost");
  assert.equal(options.user.name, email);
  assert.equal(options.authenticatorSelection.userVerification, "required");
  assert.deepEqual(options.excludeCredentials, []);
  const { passkeys } = await auth.listPasskeys({ sessionToken });
  assert.deepEqual(passkeys, []);

  const begun = await auth.beginPasskeyLogin({ email });
  assert.ok(begun.challenge);
  assert.deepEqual(JSON.parse(begun.optionsJson).allowCredentials, []);
  const assertion = JSON.stringify({
    id: "AAAA",
    rawId: "AAAA",
    type: "public-key",
    response: { clientDataJSON: "e30", authenticatorData: "AAAA", signature: "AAAA" },
  });
  const wrong = await failure(
    auth.finishPasskeyLogin({ challenge: begun.challenge, credentialJson: assertion }),
  );
  assert.equal(wrong.code, Code.Unauthenticated);
  assert.equal(wrong.reason, "SECOND_FACTOR_INVALID");
  const missing = await failure(
    auth.deletePasskey({ sessionToken, passkeyId: user?.id ?? "none" }),
  );
  assert.equal(missing.code, Code.NotFound);
  assert.equal(missing.reason, "PASSKEY_NOT_FOUND");
});
