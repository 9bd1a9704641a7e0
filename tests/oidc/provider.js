// The OpenID provider the SSO tests log in through: the certified oidc-provider package, run on
// loopback with its development login form (any login name, no password check).
//
// The login name is the account: "ann@acme.test" signs in Ann with a verified email. A prefix
// makes this provider misbehave on purpose, so the tests can show each check on our side:
//   "unverified:ann@acme.test"  email_verified is false
//   "wrong-nonce:ann@acme.test" the ID token carries another nonce than the one we sent
//   "wrong-aud:ann@acme.test"   the ID token is issued for another client (audience)
// Everything else (discovery, JWKS, PKCE, code exchange, signatures) is the package's own.
//
// Usage: node provider.js PORT  (env CLIENTS: JSON list of {client_id, client_secret, redirect_uris})
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.CLIENTS).map((client) => ({
  ...client,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));
clients.push({
  client_id: 'someone-else',
  client_secret: 'someone-else-secret-that-is-long-enough-1234',
  redirect_uris: ['http://127.0.0.1/elsewhere'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
});

function split(login) {
  const at = login.indexOf(':');
  return at === -1 ? ['', login] : [login.slice(0, at), login.slice(at + 1)];
}

const provider = new Provider(issuer, {
  clients,
  cookies: { keys: ['test-cookie-key-not-a-secret'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name', 'name'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  ttl: { IdToken: 120 },
  async findAccount(ctx, id) {
    const [mode, email] = split(id);
    const local = email.split('@')[0];
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email,
          email_verified: mode !== 'unverified',
          given_name: local.charAt(0).toUpperCase() + local.slice(1),
          family_name: 'Federated',
          name: `${local} Federated`,
        };
      },
    };
  },
});

const issue = provider.IdToken.prototype.issue;
provider.IdToken.prototype.issue = async function misbehave(options) {
  const [mode] = split(String(this.available.sub ?? ''));
  if (options?.use === 'idtoken' && mode === 'wrong-nonce') this.set('nonce', 'not-the-nonce-we-sent');
  if (options?.use === 'idtoken' && mode === 'wrong-aud') this.client = await provider.Client.find('someone-else');
  return issue.call(this, options);
};

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
