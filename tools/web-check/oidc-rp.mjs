// A relying party for the provider's tests, built on openid-client (panva): an independent
// implementation of OpenID Connect that validates everything the provider sends (discovery,
// the ID token's signature, iss, aud, exp, iat, nonce, at_hash; state; PKCE; userinfo's sub).
//
// Usage: node oidc-rp.mjs < config, where config is one JSON line:
//   {"issuer": "...", "clientId": "...", "clientSecret": "..." (absent: public client)}
// It listens on 127.0.0.1 (a free port), prints {"port": N} on stdout, then reads the config
// (the secret travels on stdin, never on a command line). Routes:
//   GET /login     → the authorization request (code + PKCE S256, state, nonce)
//   GET /callback  → code exchange, userinfo, refresh, introspection, revocation: the result
//                    as JSON in <pre id="result">, and at GET /result
//   GET /logout    → RP-initiated logout (id_token_hint, post_logout_redirect_uri, state)
//   GET /signed-out
import * as client from 'openid-client';
import http from 'node:http';
import readline from 'node:readline';

let config = null;
let settings = null;
let pending = null;
let last = null;
let idToken = null;

const page = (res, status, id, body) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  const esc = String(body).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  res.end(`<!DOCTYPE html><html lang="en"><head><title>RP</title></head><body><pre id="${id}">${esc}</pre></body></html>`);
};

const server = http.createServer(async (req, res) => {
  const base = `http://127.0.0.1:${server.address().port}`;
  const url = new URL(req.url, base);
  try {
    if (url.pathname === '/login') {
      const verifier = client.randomPKCECodeVerifier();
      pending = { verifier, state: client.randomState(), nonce: client.randomNonce() };
      const params = {
        redirect_uri: `${base}/callback`,
        scope: settings.scope || 'openid profile email groups offline_access',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state: pending.state,
        nonce: pending.nonce,
      };
      res.writeHead(302, { location: client.buildAuthorizationUrl(config, params).href });
      res.end();
    } else if (url.pathname === '/callback') {
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      idToken = tokens.id_token;
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      const out = { claims, userinfo, header: JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url')) };
      if (tokens.refresh_token) {
        const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
        out.refreshedSub = refreshed.claims()?.sub;
        out.rotated = refreshed.refresh_token !== tokens.refresh_token;
        if (settings.clientSecret) {
          const intro = await client.tokenIntrospection(config, refreshed.access_token);
          out.introspectedActive = intro.active;
        }
        // Revoking the new refresh token ends the whole grant (RFC 7009).
        await client.tokenRevocation(config, refreshed.refresh_token);
        if (settings.clientSecret) {
          const after = await client.tokenIntrospection(config, refreshed.access_token);
          out.activeAfterRevocation = after.active;
        }
        try {
          await client.refreshTokenGrant(config, tokens.refresh_token);
          out.replay = 'accepted';
        } catch (e) {
          out.replay = e.error || String(e);
        }
      }
      last = out;
      page(res, 200, 'result', JSON.stringify(out));
    } else if (url.pathname === '/result') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(last));
    } else if (url.pathname === '/logout') {
      const to = client.buildEndSessionUrl(config, {
        id_token_hint: idToken,
        post_logout_redirect_uri: `${base}/signed-out`,
        state: 'rp-logout',
      });
      res.writeHead(302, { location: to.href });
      res.end();
    } else if (url.pathname === '/signed-out') {
      page(res, 200, 'signed-out', url.searchParams.get('state') || '');
    } else {
      page(res, 404, 'error', 'not found');
    }
  } catch (e) {
    page(res, 500, 'error', `${e.name}: ${e.message} ${e.error || ''} ${e.code || ''}`);
  }
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', async (line) => {
  settings = JSON.parse(line);
  const auth = settings.clientSecret ? client.ClientSecretBasic(settings.clientSecret) : client.None();
  config = await client.discovery(new URL(settings.issuer), settings.clientId, undefined, auth, {
    execute: [client.allowInsecureRequests],
  });
  process.stdout.write(JSON.stringify({ ready: true, issuer: config.serverMetadata().issuer }) + '\n');
});
lines.on('close', () => server.close());
