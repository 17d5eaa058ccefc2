// A real OpenID provider (panva/oidc-provider v9) for the integration tests.
//
// Environment:
//   OP_PORT    port to listen on (127.0.0.1); default 4000
//   OP_CONFIG  path to a JSON config file (optional), shape:
//     {
//       "clients": [{ "client_id", "client_secret", "redirect_uris": [...],
//                     "post_logout_redirect_uris": [...] , ...any other client metadata }],
//       "rotateRefreshToken": true,          // rotate on every refresh (default true)
//       "ttl": { "AccessToken": 3600, "IdToken": 3600, "RefreshToken": 86400, ... },
//       "pkceRequired": true,                 // require PKCE (S256) for every client (default true)
//       "offlineAccessRequiresConsent": false,// spec-strict: drop offline_access unless prompt=consent
//       "refreshTokens": "offline_access",    // or "always": issue for any client with the grant
//       "conformIdTokenClaims": false,        // true: scope claims only via userinfo (oidc-provider default)
//       "issuer": "http://localhost:<port>",  // override (default uses "localhost", not 127.0.0.1)
//       "tokenExchange": false               // true: a Pinniped Supervisor's extras (below)
//     }
//   OP_ISSUER  overrides the issuer (takes precedence over the config file)
//
// With "tokenExchange": true the provider also plays a Pinniped Supervisor: an ES256 signing
// key (clients choose it with id_token_signed_response_alg), the scopes
// pinniped:request-audience, username and groups (claims username, groups), and the RFC 8693
// grant urn:ietf:params:oauth:grant-type:token-exchange (clients list it in grant_types):
// an access token of the client's with pinniped:request-audience, subject_token_type
// access_token, requested_token_type jwt and an audience give an ES256 ID token for that
// audience ({access_token, issued_token_type, token_type: N_A}); an audience containing
// ".pinniped.dev" is refused with invalid_request, as the Supervisor does.
//
// Extra (non-OIDC) endpoints served by the same process:
//   GET  /_counts        -> JSON counters of token (by grant_type), userinfo, revocation... calls
//   POST /_counts/reset  -> zero the counters
//
// Prints "READY <issuer>" on stdout once listening.

import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const port = Number.parseInt(process.env.OP_PORT || '4000', 10);
const fileConfig = process.env.OP_CONFIG
  ? JSON.parse(readFileSync(process.env.OP_CONFIG, 'utf8'))
  : {};
const issuer = process.env.OP_ISSUER || fileConfig.issuer || `http://localhost:${port}`;

const rotate = fileConfig.rotateRefreshToken ?? true;
const pkceRequired = fileConfig.pkceRequired ?? true;
const offlineAccessRequiresConsent = fileConfig.offlineAccessRequiresConsent ?? false;
const refreshTokens = fileConfig.refreshTokens ?? 'offline_access';
const tokenExchange = fileConfig.tokenExchange ?? false;
if (!['offline_access', 'always'].includes(refreshTokens)) {
  throw new Error(`invalid refreshTokens policy: ${refreshTokens}`);
}

const clients = (fileConfig.clients ?? []).map((c) => ({
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  post_logout_redirect_uris: [],
  ...c,
}));

// Fixed TTLs (seconds); the defaults are functions that print NOTICEs when called.
const DAY = 24 * 3600;
const ttl = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  IdToken: 3600,
  RefreshToken: 14 * DAY,
  Interaction: 3600,
  Session: 14 * DAY,
  Grant: 14 * DAY,
};
for (const [name, seconds] of Object.entries(fileConfig.ttl ?? {})) {
  ttl[name] = Number(seconds);
}
// A refresh token cannot outlive its grant / session; keep those at least as long.
ttl.Grant = Math.max(ttl.Grant, ttl.RefreshToken);
ttl.Session = Math.max(ttl.Session, ttl.RefreshToken);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-op-rs256', use: 'sig', alg: 'RS256' };
const ecPrivateKey = tokenExchange ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey : null;
const ecSigningKey = ecPrivateKey
  ? { ...ecPrivateKey.export({ format: 'jwk' }), kid: 'test-op-es256', use: 'sig', alg: 'ES256' }
  : null;
const PINNIPED_GROUPS = ['k8s-admins', 'developers'];

function capitalise(s) {
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
}

// Scope read from the raw authorization request (before oidc-provider's checkScope ran).
function rawRequestedScope(ctx) {
  if (ctx.method === 'POST') {
    return ctx.oidc?.body?.scope;
  }
  return ctx.query?.scope;
}

const configuration = {
  clients,
  jwks: { keys: ecSigningKey ? [signingKey, ecSigningKey] : [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'picture', 'preferred_username'],
    ...(tokenExchange ? { username: ['username'], groups: ['groups'] } : {}),
  },
  scopes: [
    'openid',
    'offline_access',
    'email',
    'profile',
    ...(tokenExchange ? ['pinniped:request-audience', 'username', 'groups'] : []),
  ],
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          name: capitalise(id),
          preferred_username: id,
          picture: `https://avatars.example.com/${encodeURIComponent(id)}.png`,
          ...(tokenExchange ? { username: id, groups: PINNIPED_GROUPS } : {}),
        };
      },
    };
  },
  conformIdTokenClaims: fileConfig.conformIdTokenClaims ?? false,
  pkce: {
    required: () => pkceRequired,
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // oidc-provider (per OIDC Core §11) strips offline_access from the authorization request
  // unless prompt contains "consent" (scopes.js checkScope). Backstage sends prompt=none or no
  // prompt at all, so by default we put it back. checkExtraParams runs after checkScope and
  // before the interaction/grant are evaluated, and its validators run for every request.
  extraParams: {
    x_test_op_keep_offline_access(ctx, _value, client) {
      if (offlineAccessRequiresConsent) return;
      const raw = rawRequestedScope(ctx);
      if (typeof raw !== 'string' || !raw.split(' ').includes('offline_access')) return;
      if (!client.grantTypeAllowed('refresh_token')) return;
      if (!String(ctx.oidc.params.response_type ?? '').includes('code')) return;
      const scopes = new Set((ctx.oidc.params.scope ?? '').split(' ').filter(Boolean));
      scopes.add('offline_access');
      ctx.oidc.params.scope = [...scopes].join(' ');
    },
  },
  async issueRefreshToken(_ctx, client, code) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    return refreshTokens === 'always' || code.scopes.has('offline_access');
  },
  // The default only rotates confidential clients' refresh tokens after 70% of their TTL.
  rotateRefreshToken: () => rotate,
  ttl,
};

const provider = new Provider(issuer, configuration);

// ---------------------------------------------------------------------------------------------
// RFC 8693 token exchange, as a Pinniped Supervisor answers it (see the header)

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

function signEs256(claims) {
  const header = { alg: 'ES256', typ: 'JWT', kid: ecSigningKey.kid };
  const encode = (part) => Buffer.from(JSON.stringify(part)).toString('base64url');
  const input = `${encode(header)}.${encode(claims)}`;
  const signature = sign('sha256', Buffer.from(input), { key: ecPrivateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

async function tokenExchangeHandler(ctx) {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('unsupported subject_token_type parameter value');
  }
  if (params.requested_token_type !== JWT_TOKEN_TYPE) {
    throw new errors.InvalidRequest('unsupported requested_token_type parameter value');
  }
  const audience = params.audience;
  if (!audience) throw new errors.InvalidRequest('missing audience parameter');
  if (audience.includes('.pinniped.dev')) {
    throw new errors.InvalidRequest("requested audience cannot contain '.pinniped.dev'");
  }
  const token = await provider.AccessToken.find(String(params.subject_token ?? ''));
  if (!token || token.clientId !== client.clientId) {
    throw new errors.InvalidGrant('subject_token is not an active access token of this client');
  }
  if (!String(token.scope ?? '').split(' ').includes('pinniped:request-audience')) {
    throw new errors.AccessDenied("missing the 'pinniped:request-audience' scope");
  }
  const now = Math.floor(Date.now() / 1000);
  ctx.body = {
    access_token: signEs256({
      iss: issuer,
      sub: token.accountId,
      aud: audience,
      azp: client.clientId,
      iat: now,
      exp: now + 120,
      username: token.accountId,
      groups: PINNIPED_GROUPS,
    }),
    issued_token_type: JWT_TOKEN_TYPE,
    token_type: 'N_A',
    expires_in: 120,
  };
}

if (tokenExchange) {
  provider.registerGrantType(TOKEN_EXCHANGE, tokenExchangeHandler, [
    'subject_token',
    'subject_token_type',
    'requested_token_type',
    'audience',
  ]);
}

// ---------------------------------------------------------------------------------------------
// counters + /_counts

function emptyCounts() {
  return {
    token: {},
    token_errors: {},
    userinfo: 0,
    userinfo_errors: 0,
    revocation: 0,
    authorization: 0,
    end_session: 0,
  };
}
let counts = emptyCounts();

provider.use(async (ctx, next) => {
  if (ctx.path === '/_counts' && ctx.method === 'GET') {
    ctx.body = counts;
    return;
  }
  if (ctx.path === '/_counts/reset' && ctx.method === 'POST') {
    counts = emptyCounts();
    ctx.body = counts;
    return;
  }
  const started = Date.now();
  await next();
  const route = ctx.oidc?.route;
  const failed = ctx.status >= 400;
  if (route === 'token') {
    const gty = ctx.oidc.params?.grant_type ?? ctx.oidc.body?.grant_type ?? 'unknown';
    counts.token[gty] = (counts.token[gty] ?? 0) + 1;
    if (failed) counts.token_errors[gty] = (counts.token_errors[gty] ?? 0) + 1;
  } else if (route === 'userinfo') {
    counts.userinfo += 1;
    if (failed) counts.userinfo_errors += 1;
  } else if (route === 'revocation') {
    counts.revocation += 1;
  } else if (route === 'authorization') {
    counts.authorization += 1;
  } else if (route === 'end_session') {
    counts.end_session += 1;
  }
  console.log(`${ctx.method} ${ctx.originalUrl.split('?')[0]} -> ${ctx.status} (${Date.now() - started}ms)`);
});

for (const event of ['server_error', 'grant.error', 'userinfo.error', 'revocation.error']) {
  provider.on(event, (_ctx, err) => {
    console.log(`${event}: ${err?.name} ${err?.message} ${err?.error_description ?? ''}`.trim());
  });
}

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
