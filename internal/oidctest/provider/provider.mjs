// A real OpenID provider for specguard's tests: oidc-provider (MIT) with
// client_credentials, resource indicators (one audience issuing JWT access
// tokens, one issuing opaque ones), introspection and revocation.
//
//   PORT       the port to listen on, on 127.0.0.1
//   KEYS_FILE  where the signing keys are kept across restarts
//   ROTATE=1   sign with a new key from this start on (the old one is
//              still published, as providers do during a rotation)
//
// It prints "ready <issuer>" once it listens.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const keysFile = process.env.KEYS_FILE;

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

let keys = existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, 'utf8')) : [];
if (keys.length === 0 || process.env.ROTATE === '1') keys = [newKey(), ...keys];
writeFileSync(keysFile, JSON.stringify(keys));

const resources = {
  'https://api.specguard.test': 'jwt',
  'https://opaque.specguard.test': 'opaque',
};

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'app', client_secret: 'app-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
    { client_id: 'specguard', client_secret: 'specguard-secret', grant_types: [], redirect_uris: [], response_types: [] },
  ],
  jwks: { keys },
  scopes: ['reports:read', 'reports:write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        const format = resources[resource];
        if (!format) throw new errors.InvalidTarget();
        return { scope: 'reports:read reports:write', audience: resource, accessTokenFormat: format, accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  extraTokenClaims: () => ({ tenant: 'acme' }),
});

provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
