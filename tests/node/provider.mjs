// A real OpenID Connect provider (panva's oidc-provider) on loopback for the single sign-on
// tests. Configured by environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI,
// POST_LOGOUT_REDIRECT_URI, and ACCOUNTS_FILE: a JSON object {login: {email, groups}} read at
// every sign-in, so a test can change an account's groups at the provider between logins.
// Sign-in uses the provider's own development login page (any password); consent is skipped
// for this first-party client. Prints "ready <issuer>" once it listens.
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const clientId = env('CLIENT_ID');
const accounts = () => JSON.parse(readFileSync(env('ACCOUNTS_FILE'), 'utf8'));
const scopes = 'openid email profile';
const claimNames = ['sub', 'email', 'preferred_username', 'groups'];

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: [env('REDIRECT_URI')],
    post_logout_redirect_uris: [env('POST_LOGOUT_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  claims: {
    openid: ['sub'],
    email: ['email'],
    profile: ['preferred_username', 'groups'],
  },
  cookies: { keys: ['test-only-cookie-key'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        const now = accounts()[id] || {};
        return { sub: id, preferred_username: id, email: now.email, groups: now.groups || [] };
      },
    };
  },
  async loadExistingGrant(ctx) {
    // A first-party client: the user is not asked to consent.
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(scopes);
    grant.addOIDCClaims(claimNames);
    await grant.save();
    return grant;
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
