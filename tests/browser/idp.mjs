// A real OpenID provider for the login tests: panva's oidc-provider (pinned in package.json),
// over HTTPS with the test PKI, one confidential client (Sluis), PKCE required, and accounts
// whose ID tokens carry a `groups` claim. Its development login form takes any account name
// below (any password) and then asks for consent. Run by tests/review_web.rs, which gives:
//   PORT, ISSUER (https://localhost:PORT), CLIENT_ID, CLIENT_SECRET, REDIRECT, CERT, KEY
// Prints "ready" once it listens; runs until killed.
import Provider from 'oidc-provider';
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';

const { PORT, ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT, CERT, KEY } = process.env;

const accounts = {
  ann: { name: 'Ann Reviewer', email: 'ann@ziekenhuis.test', groups: ['staff', 'sluis-reviewers'] },
  aud: { name: 'Aud Auditor', email: 'aud@ziekenhuis.test', groups: ['sluis-auditors'] },
  otto: { name: 'Otto Other', email: 'otto@ziekenhuis.test', groups: ['staff'] },
};

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email'],
    groups: ['groups'],
  },
  // The claims of the requested scopes in the ID token itself (Sluis reads the groups there).
  conformIdTokenClaims: false,
  cookies: { keys: ['sluis-test-idp-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const a = accounts[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, ...a };
      },
    };
  },
});
provider.proxy = false;

// On both loopback addresses: "localhost" is either, to Chromium and to Sluis.
const tls = { cert: readFileSync(CERT), key: readFileSync(KEY) };
let listening = 0;
for (const host of ['127.0.0.1', '::1']) {
  createServer(tls, provider.callback()).listen(Number(PORT), host, () => {
    listening += 1;
    if (listening === 2) console.log('ready');
  });
}
