// Test OpenID Provider for ncmcp: node-oidc-provider 9.x configured to behave like Nextcloud's `oidc` app
// where it matters to ncmcp (RS256 at+jwt access tokens with a `resource` audience, opaque tokens,
// introspection, open DCR, PKCE), plus test-only extras: a `password` grant for any user, per-request
// token format, key rotation and request counters. NEVER expose this server: it accepts any user.
//
// Env:
//   PORT       listen port on 127.0.0.1 (default 0 = ephemeral)
//   RS_SCOPES  space-separated resource-server scopes (default below)
// Stdout: exactly one line, {"issuer": "http://127.0.0.1:<port>"}, once the server accepts requests.
// Stderr: oidc-provider NOTICE/WARNING lines (harmless) and server errors.
//
// Test-only endpoints (not part of any spec):
//   POST /__test/rotate-keys[?keep_old=1]  new RS256 signing key with a new kid -> {"kid", "kids"}
//   GET  /__test/stats[?reset=1]           {"requests": {<path>: count}, "total": n} (resets after reading);
//                                          /__test/* itself is not counted

import { generateKeyPair, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { promisify } from 'node:util';

// oidc-provider prints its NOTICE lines with console.info (stdout); stdout must carry only the issuer line.
console.info = console.error;
console.log = console.error;

const { default: Provider, errors } = await import('oidc-provider');

const PORT = Number(process.env.PORT || 0);
const RS_SCOPES = (process.env.RS_SCOPES
  || 'nc:read nc:write notes.read notes.write calendar.read calendar.write contacts.read contacts.write files.read files.write')
  .split(/\s+/).filter(Boolean);
const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const KNOWN_SCOPES = new Set([...OIDC_SCOPES, ...RS_SCOPES]);
const REDIRECT_URIS = ['http://127.0.0.1/cb', 'http://localhost/cb'];

// ---- storage shared by every Provider instance (key rotation rebuilds the Provider) ----------------
// Own adapter instead of oidc-provider's dev MemoryAdapter: that one is an LRU capped at 1000 entries,
// so benchmarks issuing many tokens would silently lose older ones.
const store = new Map(); // "<Model>:<id>" -> { payload, expiresAt }
const grantMembers = new Map(); // grantId -> Set of store keys (for revokeByGrantId)
const sessionByUid = new Map(); // session uid -> session id

function live(key) {
  const entry = store.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry;
}

class SharedMemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionByUid.set(payload.uid, id);
  }

  async find(id) { return live(this.key(id))?.payload; }

  async findByUid(uid) {
    const id = sessionByUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() { return undefined; } // device flow is not enabled

  async consume(id) {
    const entry = live(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// Drop expired entries now and then so long benchmark runs do not grow without bound.
setInterval(() => {
  for (const key of store.keys()) live(key);
  for (const [grantId, keys] of grantMembers) {
    for (const key of keys) if (!store.has(key)) keys.delete(key);
    if (!keys.size) grantMembers.delete(grantId);
  }
  for (const [uid, id] of sessionByUid) if (!store.has(`Session:${id}`)) sessionByUid.delete(uid);
}, 30_000).unref();

// ---- keys ---------------------------------------------------------------------------------------
async function newSigningKey() {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  // kid is a random UUID, like Nextcloud's oidc app
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

// ---- provider -----------------------------------------------------------------------------------
const server = createServer();
await new Promise((resolve) => { server.listen(PORT, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

function findAccount(ctx, id) {
  if (!id) return undefined;
  return {
    accountId: id,
    claims: async () => ({
      sub: id, preferred_username: id, name: id, email: `${id}@example.test`, email_verified: true,
    }),
  };
}

// Resource server info for a `resource` indicator. Every http(s) URL is a Nextcloud-like RS.
// The token format is chosen per token request: `token_format=opaque` in the body, else at+jwt.
function resourceServerInfo(signKid) {
  return async (ctx, resource) => {
    if (!/^https?:\/\//.test(resource)) throw new errors.InvalidTarget('resource must be an http(s) URL');
    const format = ctx.oidc.body?.token_format === 'opaque' ? 'opaque' : 'jwt';
    return {
      scope: RS_SCOPES.join(' '),
      audience: resource,
      accessTokenFormat: format,
      // explicit kid: a request still running on a just-replaced Provider signs with its own key
      jwt: { sign: { alg: 'RS256', kid: signKid } },
    };
  };
}

// Test-only password grant: any user whose password is "<username>-pw".
// Params: username, password, scope, resource, token_format (jwt|opaque), ttl (seconds).
const PASSWORD_PARAMS = ['username', 'password', 'scope', 'resource', 'token_format', 'ttl'];

async function passwordGrant(ctx, rsInfo) {
  const { provider, client, params } = ctx.oidc;
  const user = params.username;
  if (!user || params.password !== `${user}-pw`) throw new errors.InvalidGrant('invalid user credentials');
  let expiresIn;
  if (params.ttl !== undefined) {
    expiresIn = Number(params.ttl);
    if (!Number.isInteger(expiresIn) || expiresIn < 1) throw new errors.InvalidRequest('ttl must be a positive integer');
  }
  // unknown scopes are dropped silently, like oidc-provider's own grants do
  const requested = [...new Set((params.scope || 'openid').split(' '))].filter((s) => KNOWN_SCOPES.has(s));
  const oidcScope = requested.filter((s) => OIDC_SCOPES.includes(s)).join(' ');

  const grant = new provider.Grant({ accountId: user, clientId: client.clientId });
  const at = new provider.AccessToken({ accountId: user, client, gty: 'password', expiresIn });
  if (params.resource) {
    const rs = new provider.ResourceServer(params.resource, await rsInfo(ctx, params.resource));
    const rsScope = requested.filter((s) => rs.scopes.has(s)).join(' ');
    if (oidcScope) grant.addOIDCScope(oidcScope);
    if (rsScope) grant.addResourceScope(params.resource, rsScope);
    at.resourceServer = rs;
    at.scope = rsScope || undefined; // no RS scope -> token without a `scope` claim
  } else {
    if (requested.length) grant.addOIDCScope(requested.join(' '));
    at.scope = requested.join(' ') || undefined; // opaque token for userinfo/introspection
  }
  at.grantId = await grant.save();
  ctx.oidc.entity('AccessToken', at);
  const body = {
    access_token: await at.save(), token_type: 'Bearer', expires_in: at.expiration, scope: at.scope,
  };
  // like Nextcloud: a refresh token only with offline_access
  if (requested.includes('offline_access') && client.grantTypeAllowed('refresh_token')) {
    const rt = new provider.RefreshToken({
      accountId: user, client, gty: 'password', grantId: at.grantId, scope: requested.join(' '),
      resource: params.resource,
    });
    body.refresh_token = await rt.save();
  }
  ctx.body = body;
}

function buildProvider(keys) {
  const rsInfo = resourceServerInfo(keys[0].kid);
  const provider = new Provider(issuer, {
    adapter: SharedMemoryAdapter,
    jwks: { keys }, // keys[0] is the current signing key
    cookies: { keys: ['ncmcp-test-idp-cookie-key'] },
    clients: [
      { // confidential test client: every grant, incl. the test-only password grant
        client_id: 'test-client', client_secret: 'test-secret',
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'password'],
        response_types: ['code'], redirect_uris: REDIRECT_URIS, application_type: 'native',
      },
      { // the same with client_secret_post (oidc-provider allows one auth method per client)
        client_id: 'test-client-post', client_secret: 'test-secret', token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'password'],
        response_types: ['code'], redirect_uris: REDIRECT_URIS, application_type: 'native',
      },
      { // public client (like an MCP client): auth code + PKCE, no secret
        client_id: 'public-client', token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
        redirect_uris: REDIRECT_URIS, application_type: 'native',
      },
    ],
    scopes: [...KNOWN_SCOPES],
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
    findAccount,
    clientBasedCORS: () => true,
    rotateRefreshToken: true, // like Nextcloud: every refresh returns a new refresh token
    features: {
      devInteractions: { enabled: true }, // /interaction/:uid login + consent forms (any login name)
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // any confidential client may introspect any token; public clients only their own
        allowedPolicy: (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: (ctx, client, token) => client.clientAuthMethod !== 'none' || token.clientId === client.clientId,
      },
      registration: { enabled: true }, // open RFC 7591 DCR, no initial access token
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        useGrantedResource: () => true,
        getResourceServerInfo: rsInfo,
      },
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      ClientCredentials: 3600,
      Grant: 14 * 86400,
      IdToken: 3600,
      Interaction: 3600,
      RefreshToken: 14 * 86400,
      Session: 14 * 86400,
    },
  });
  provider.registerGrantType('password', (ctx) => passwordGrant(ctx, rsInfo), PASSWORD_PARAMS);
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  return { provider, handle: provider.callback(), keys };
}

let current = buildProvider([await newSigningKey()]);

// ---- test-only routes and request counters ---------------------------------------------------------
const counts = new Map();
let rotating = Promise.resolve();

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function testRoute(req, res, url) {
  if (url.pathname === '/__test/rotate-keys' && req.method === 'POST') {
    const keepOld = url.searchParams.get('keep_old') === '1';
    rotating = rotating.catch(() => {}).then(async () => {
      const key = await newSigningKey();
      current = buildProvider(keepOld ? [key, current.keys[0]] : [key]);
    });
    await rotating;
    return sendJson(res, 200, { kid: current.keys[0].kid, kids: current.keys.map((k) => k.kid) });
  }
  if (url.pathname === '/__test/stats' && req.method === 'GET') {
    const requests = Object.fromEntries(counts);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    if (url.searchParams.get('reset') === '1') counts.clear();
    return sendJson(res, 200, { requests, total });
  }
  return sendJson(res, 404, { error: 'not_found' });
}

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/__test/')) {
    testRoute(req, res, url).catch((err) => { console.error(err); sendJson(res, 500, { error: 'server_error' }); });
    return;
  }
  // per-interaction paths are folded so the counters stay small: /interaction/:uid, /auth/:uid
  const counted = url.pathname.replace(/^\/(interaction|auth)\/[^/]+/, '/$1/:uid');
  counts.set(counted, (counts.get(counted) ?? 0) + 1);
  // Nextcloud issues a refresh token whenever offline_access is requested; oidc-provider drops
  // offline_access unless prompt=consent, so add that prompt to such authorization requests.
  if (url.pathname === '/auth' && !url.searchParams.has('prompt')
      && (url.searchParams.get('scope') || '').split(' ').includes('offline_access')) {
    url.searchParams.set('prompt', 'consent');
    req.url = url.pathname + url.search;
  }
  current.handle(req, res);
});

// The Python launcher sets this so the server dies with its parent even if the parent is killed.
if (process.env.IDP_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));

process.stdout.write(`${JSON.stringify({ issuer })}\n`);
