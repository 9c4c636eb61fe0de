/**
 * TLS through the client: a server that requires client certificates (mutual TLS) serves a
 * client with the `tls` options (CA, certificate and key), and refuses the others.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Code, createWatchwordClient, type WatchwordTlsOptions } from "../src/index.js";
import { failure, PASSWORD, tlsServer, uniqueEmail } from "./support.js";

function client(tls: WatchwordTlsOptions | undefined) {
  return createWatchwordClient({ baseUrl: tlsServer().baseUrl, timeoutMs: 10_000, tls });
}

const pem = (path: string): string => readFileSync(path, "utf8");

test("mutual TLS: a client with the CA and a certificate of the client CA is served", async () => {
  const { caFile, certFile, keyFile } = tlsServer();
  const watchword = client({ ca: pem(caFile), cert: pem(certFile), key: readFileSync(keyFile) });
  try {
    const email = uniqueEmail("tls");
    const registered = await watchword.auth.register({
      email,
      password: PASSWORD,
      firstName: "Ada",
      lastName: "Lovelace",
    });
    assert.ok(registered.sessionToken);
    const login = await watchword.auth.authenticate({ email, password: PASSWORD });
    assert.equal(login.user?.email, email);
  } finally {
    watchword.close();
  }
});

test("mutual TLS: no certificate, another CA's, or no trust in the server's are refused", async () => {
  const { caFile, strangerCertFile, strangerKeyFile } = tlsServer();
  const ca = pem(caFile);
  // The codes are connect-node's: a certificate the server refuses after a TLS 1.3
  // handshake ends the stream (CANCEL); a server certificate Node cannot verify is an
  // Internal error whose cause is Node's TLS error.
  const refused: [string, WatchwordTlsOptions | undefined, Code, RegExp][] = [
    ["no client certificate", { ca }, Code.Canceled, /CANCEL/],
    [
      "a certificate of another CA",
      { ca, cert: pem(strangerCertFile), key: pem(strangerKeyFile) },
      Code.Canceled,
      /CANCEL/,
    ],
    ["the server's CA not trusted", undefined, Code.Internal, /unable to verify/],
  ];
  for (const [label, tls, code, message] of refused) {
    const watchword = client(tls);
    try {
      const err = await failure(watchword.auth.introspect({ sessionToken: "not-a-session" }));
      assert.equal(err.code, code, `${label}: ${err.message}`);
      assert.match(err.rawMessage, message, label);
      assert.equal(err.reason, "", `${label}: the call never reached the server`);
    } finally {
      watchword.close();
    }
  }
});

test("tls options need an https:// baseUrl, and cert and key go together", () => {
  const { caFile, certFile } = tlsServer();
  const plaintext = tlsServer().baseUrl.replace("https:", "http:");
  assert.throws(
    () => createWatchwordClient({ baseUrl: plaintext, tls: { ca: pem(caFile) } }),
    (err: unknown) => err instanceof TypeError && err.message.includes("https://"),
  );
  assert.throws(
    () =>
      createWatchwordClient({
        baseUrl: tlsServer().baseUrl,
        tls: { ca: pem(caFile), cert: pem(certFile) },
      }),
    (err: unknown) => err instanceof TypeError && err.message.includes("go together"),
  );
});
