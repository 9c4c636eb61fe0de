/**
 * createWatchwordClient: typed AuthService, AccessService and AdminService clients on one
 * gRPC (HTTP/2) connection, with the service key sent on every call, every failure turned
 * into a WatchwordError, and the client's own writes seen by its checks.
 */

import type { DescService } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import type { SecureClientSessionOptions } from "node:http2";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AccessService } from "./gen/watchword/auth/v1/access_service_pb.js";
import { AdminService } from "./gen/watchword/auth/v1/admin_service_pb.js";
import { AuthService } from "./gen/watchword/auth/v1/auth_service_pb.js";
import {
  batchCheck,
  type CheckInit,
  type CheckOutcome,
  notingRevisions,
  readingYourWrites,
  Revisions,
} from "./checks.js";
import { toWatchwordError } from "./errors.js";

/** Options of `createWatchwordClient`. */
export interface WatchwordClientOptions {
  /**
   * The server's address: "http://127.0.0.1:50051" (plaintext HTTP/2), "https://…" (TLS), or
   * "host:port", taken as "http://host:port". Anything else throws a TypeError.
   */
  baseUrl: string;
  /**
   * A service key (`watchword keys create NAME --scope access|admin`), sent on every call as
   * `authorization: Bearer <key>`. AccessService needs an `access` or `admin` key,
   * AdminService an `admin` key; AuthService needs none unless `auth_requires_key` is set.
   */
  serviceKey?: string | undefined;
  /**
   * The default deadline of every unary call, in milliseconds; a call's own `timeoutMs` wins.
   * Server streams (`watchEvents`) run without a deadline unless given their own `timeoutMs`.
   */
  timeoutMs?: number | undefined;
  /** More interceptors, run after the one that adds the service key. */
  interceptors?: Interceptor[] | undefined;
  /**
   * Whether the checks made through this client see its own writes. By default (true),
   * `access.hasMembership`, `access.hasPermission`, `access.batchCheck` and `batchCheck`
   * send the revision of the client's latest AdminService write (`lastRevision`) as
   * `minRevision` for 60 seconds after it, so that no server of the deployment answers them
   * from a cached state older than the write; after that the server's own bound on cached
   * answers (`check_cache_max_staleness`) covers it. A number sets that window in
   * milliseconds (keep it above the server's bound); false never sends it. A request's own
   * `minRevision` always wins ("" for "any cached answer").
   */
  readYourWrites?: boolean | number | undefined;
  /**
   * TLS options for an "https://…" baseUrl: `ca`, the PEM certificates of the CAs to trust
   * for the server's certificate (default: Node's own list); `cert` and `key`, the client's
   * PEM certificate (chain) and private key, for a server that requires client
   * certificates (`tls_client_ca_file`). With a plaintext baseUrl they throw a TypeError.
   */
  tls?: WatchwordTlsOptions | undefined;
}

/** The TLS options of `createWatchwordClient`: PEM texts or their bytes. */
export interface WatchwordTlsOptions {
  /** The CAs to trust for the server's certificate; default: Node's own list. */
  ca?: string | Buffer | undefined;
  /** The client's certificate (chain), sent when the server asks for one. */
  cert?: string | Buffer | undefined;
  /** The private key of `cert`. */
  key?: string | Buffer | undefined;
}

/** The three service clients; their methods reject with WatchwordError. */
export interface WatchwordClient {
  /** End-user flows: register, authenticate, introspect, logout, passwords, profile. */
  readonly auth: Client<typeof AuthService>;
  /** Membership and permission checks. */
  readonly access: Client<typeof AccessService>;
  /** Management of users, groups, memberships, permissions and events. */
  readonly admin: Client<typeof AdminService>;
  /**
   * The revision returned by this client's latest AdminService write; "" before the first.
   * Opaque: pass it as `minRevision` (e.g. to another client), never compare or parse it.
   */
  readonly lastRevision: string;
  /**
   * Makes up to 100 membership and permission checks in one BatchCheck call: an outcome per
   * check, in order. A check that cannot be answered (an invalid session, bad input) gets
   * its own `error`, a WatchwordError, and does not fail the others. More than 100 checks
   * reject with a `Code.InvalidArgument` WatchwordError before any call; none resolve to [].
   */
  batchCheck(checks: readonly CheckInit[], options?: CallOptions): Promise<CheckOutcome[]>;
  /**
   * Closes the connection and any open streams (they end with a `Code.Canceled`
   * WatchwordError). Later calls reject with a WatchwordError of `Code.Canceled`, reason "",
   * and do not reconnect.
   */
  close(): void;
}

/**
 * Creates the clients of a Watchword server.
 *
 * @example
 *   const client = createWatchwordClient({ baseUrl: "http://127.0.0.1:50051", serviceKey });
 *   const { sessionToken } = await client.auth.authenticate({ email, password });
 *   const { allowed } = await client.access.hasPermission({
 *     subject: { case: "sessionToken", value: sessionToken },
 *     name: "read",
 *   });
 *   const bySession = { case: "sessionToken", value: sessionToken } as const;
 *   const [editor, admin] = await client.batchCheck([
 *     { kind: { case: "membership", value: { subject: bySession, group: "editors" } } },
 *     { kind: { case: "membership", value: { subject: bySession, group: "admins" } } },
 *   ]);
 *   client.close();
 */
export function createWatchwordClient(options: WatchwordClientOptions): WatchwordClient {
  const { serviceKey, timeoutMs, interceptors = [], readYourWrites = true } = options;
  const baseUrl = normalizeBaseUrl(options.baseUrl);
  const revisions = new Revisions(readYourWrites);
  // Our own session manager makes createGrpcTransport ignore its nodeOptions: the TLS
  // options go to the manager, which makes the connections.
  const sessionManager = new Http2SessionManager(
    baseUrl,
    undefined,
    secureSessionOptions(baseUrl, options.tls),
  );
  let closed = false;
  // First in the chain: after close(), no call reaches the session manager (which would
  // silently open a new connection).
  const refuseWhenClosed: Interceptor = (next) => (request) => {
    if (closed) {
      throw new ConnectError("the client is closed", Code.Canceled);
    }
    return next(request);
  };
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors: [refuseWhenClosed, ...(serviceKey ? [bearer(serviceKey)] : []), ...interceptors],
    ...(timeoutMs === undefined ? {} : { defaultTimeoutMs: timeoutMs }),
  });
  const access = readingYourWrites(
    throwingWatchwordErrors(AccessService, createClient(AccessService, transport)),
    revisions,
  );
  return {
    auth: throwingWatchwordErrors(AuthService, createClient(AuthService, transport)),
    access,
    admin: notingRevisions(
      throwingWatchwordErrors(AdminService, createClient(AdminService, transport)),
      revisions,
    ),
    get lastRevision() {
      return revisions.last;
    },
    batchCheck: (checks, callOptions) => batchCheck(access, checks, callOptions),
    close: () => {
      closed = true;
      sessionManager.abort();
    },
  };
}

/** `baseUrl` with a scheme ("host:port" becomes "http://host:port"), or a clear TypeError. */
function normalizeBaseUrl(baseUrl: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(baseUrl) ? baseUrl : `http://${baseUrl}`;
  let url: URL | undefined;
  try {
    url = new URL(withScheme);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    (url.protocol !== "http:" && url.protocol !== "https:") ||
    url.hostname === "" ||
    url.username !== "" ||
    url.password !== "" ||
    url.search !== "" ||
    url.hash !== ""
  ) {
    throw new TypeError(
      `baseUrl must be "http://host:port", "https://host:port" or "host:port", ` +
        `not ${JSON.stringify(baseUrl)}`,
    );
  }
  return withScheme;
}

/** The TLS options for http2.connect, or a clear TypeError for TLS on a plaintext URL. */
function secureSessionOptions(
  baseUrl: string,
  tls: WatchwordTlsOptions | undefined,
): SecureClientSessionOptions {
  if (tls === undefined) {
    return {};
  }
  const { ca, cert, key } = tls;
  if (!baseUrl.startsWith("https:")) {
    throw new TypeError(`tls needs an "https://host:port" baseUrl, not ${JSON.stringify(baseUrl)}`);
  }
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError("tls.cert and tls.key go together: give both or neither");
  }
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
  };
}

function bearer(serviceKey: string): Interceptor {
  return (next) => (request) => {
    request.header.set("authorization", `Bearer ${serviceKey}`);
    return next(request);
  };
}

/** The shape of every unary and server-streaming method of a connect client. */
type Method = (input: unknown, options?: CallOptions) => unknown;

/**
 * Wraps each method of `client` so that it throws WatchwordError. (An interceptor cannot do
 * it: connect re-wraps whatever an interceptor throws that is not a ConnectError.) Streams
 * start when iteration starts, and stop when it stops.
 */
function throwingWatchwordErrors<S extends DescService>(service: S, client: Client<S>): Client<S> {
  const methods = client as unknown as Record<string, Method>;
  const wrapped: Record<string, Method> = {};
  for (const method of service.methods) {
    const call = methods[method.localName]!;
    switch (method.methodKind) {
      case "unary":
        wrapped[method.localName] = async (input, options) => {
          try {
            return await call(input, options);
          } catch (err) {
            throw toWatchwordError(err);
          }
        };
        break;
      case "server_streaming":
        wrapped[method.localName] = async function* (input, options) {
          // Connect's streams ignore `return` (a `break` in for-await): only their signal
          // cancels them. So this one is cancelled when the loop leaves early, then read
          // once more so that connect settles the call (and clears its deadline timer,
          // which would otherwise keep the process alive until the deadline).
          const cancel = new AbortController();
          const outer = options?.signal;
          const forward = () => cancel.abort(outer?.reason);
          if (outer?.aborted) forward();
          outer?.addEventListener("abort", forward, { once: true });
          // A watch runs until it is left: the client-wide deadline is for unary calls, so a
          // stream has one only when the caller gives it (<= 0 means none to connect).
          const timeoutMs = options?.timeoutMs ?? 0;
          const iterable = call(input, { ...options, timeoutMs, signal: cancel.signal });
          const stream = (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator]();
          let settled = false;
          try {
            for (;;) {
              let result: IteratorResult<unknown>;
              // Only the stream's own failures are relabelled (and settle it): an error the
              // caller throws in at the `yield` (gen.throw) passes through untouched, and
              // `finally` then cancels the stream.
              try {
                result = await stream.next();
              } catch (err) {
                settled = true;
                throw toWatchwordError(err);
              }
              if (result.done) {
                settled = true;
                return;
              }
              yield result.value;
            }
          } finally {
            outer?.removeEventListener("abort", forward);
            if (!settled) {
              cancel.abort();
              await stream.next().catch(() => undefined);
            }
          }
        };
        break;
      default:
        // The contract has no client or bidi streams; pass any future one through as is.
        wrapped[method.localName] = call;
    }
  }
  return wrapped as unknown as Client<S>;
}
