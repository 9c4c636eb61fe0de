/** The TOTP second factor through the client: enroll, confirm, a two-step login, admin reset. */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { Code, SecondFactorMethod } from "../src/index.js";
import { connect, failure, PASSWORD, uniqueEmail } from "./support.js";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32Bytes(text: string): Buffer {
  let bits = "";
  for (const char of text.replace(/=+$/, "")) {
    bits += BASE32.indexOf(char).toString(2).padStart(5, "0");
  }
  const bytes = bits.match(/.{8}/g) ?? [];
  return Buffer.from(bytes.map((byte) => Number.parseInt(byte, 2)));
}

/** RFC 6238 (SHA-1, 6 digits, 30 s) at the server's clock, `steps` steps away. */
function totp(secret: string, steps = 0): string {
  const now = Number(process.env.WATCHWORD_SERVER_TIME);
  assert.ok(now > 0, "WATCHWORD_SERVER_TIME (the server's clock, epoch seconds) is not set");
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(now / 30) + steps));
  const mac = createHmac("sha1", base32Bytes(secret)).update(counter).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0xf;
  const value = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(value % 1_000_000).padStart(6, "0");
}

test("enroll and confirm TOTP, log in in two steps, and an administrator resets it", async () => {
  const { auth } = connect("none");
  const { admin } = connect("admin");
  const email = uniqueEmail("totp");
  const registered = await auth.register({
    email,
    password: PASSWORD,
    firstName: "Tess",
    lastName: "Otp",
  });
  const sessionToken = registered.sessionToken;

  const enrollment = await auth.enrollTotp({ sessionToken });
  assert.match(enrollment.otpauthUri, /^otpauth:\/\/totp\//);
  const wrong = await failure(auth.confirmTotp({ sessionToken, code: "000000" }));
  assert.equal(wrong.code, Code.Unauthenticated);
  assert.equal(wrong.reason, "SECOND_FACTOR_INVALID");
  const { recoveryCodes } = await auth.confirmTotp({ sessionToken, code: totp(enrollment.secret) });
  assert.equal(recoveryCodes.length, 10);

  const started = await auth.authenticate({ email, password: PASSWORD });
  assert.equal(started.sessionToken, "");
  assert.ok(started.secondFactorChallenge);
  assert.deepEqual(started.secondFactorMethods, [
    SecondFactorMethod.TOTP,
    SecondFactorMethod.RECOVERY_CODE,
  ]);
  const done = await auth.completeSecondFactor({
    challenge: started.secondFactorChallenge,
    factor: { case: "totpCode", value: totp(enrollment.secret, 1) },
  });
  assert.ok(done.sessionToken);
  assert.equal(done.user?.id, registered.user?.id);

  const userId = registered.user?.id ?? "";
  const factors = await admin.getSecondFactors({ userId });
  assert.deepEqual(factors.methods, [SecondFactorMethod.TOTP, SecondFactorMethod.RECOVERY_CODE]);
  assert.equal(factors.passkeyCount, 0);
  await admin.resetSecondFactors({ userId });
  const plain = await auth.authenticate({ email, password: PASSWORD });
  assert.ok(plain.sessionToken, "after the reset the password alone logs in");
});
