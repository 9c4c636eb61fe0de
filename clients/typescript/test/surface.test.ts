/** Pins the package's public surface: what index.ts exports besides the generated code. */

import assert from "node:assert/strict";
import { test } from "node:test";
import * as access from "../src/gen/watchword/auth/v1/access_service_pb.js";
import * as admin from "../src/gen/watchword/auth/v1/admin_service_pb.js";
import * as auth from "../src/gen/watchword/auth/v1/auth_service_pb.js";
import * as reasons from "../src/gen/watchword/auth/v1/error_reason_pb.js";
import * as resources from "../src/gen/watchword/auth/v1/resources_pb.js";
import * as api from "../src/index.js";

test("index exports the client, the error type, Code and all the generated code", () => {
  const modules = [access, admin, auth, reasons, resources];
  const generated = modules.flatMap((module) => Object.keys(module));
  const own = Object.keys(api).filter((name) => !generated.includes(name));
  const expected = [
    "Code",
    "MAX_BATCH_CHECKS",
    "READ_YOUR_WRITES_WINDOW_MS",
    "WatchwordError",
    "createWatchwordClient",
    "fromStatus",
    "toWatchwordError",
  ];
  assert.deepEqual(own.sort(), expected);
  for (const name of generated) {
    assert.ok(name in api, `${name} is not re-exported`);
  }
  for (const service of ["AuthService", "AccessService", "AdminService"]) {
    assert.ok(service in api);
  }
});
