"""A relying party for the provider's tests, built on Authlib (Python): a second independent
implementation of OpenID Connect beside openid-client (tools/web-check/oidc-rp.mjs), speaking
the same protocol to testkit::oidc_rp so the same tests drive either.

Usage: python3 authlib_rp.py < config, where config is one JSON line:
  {"issuer": "...", "clientId": "...", "clientSecret": "..." (null: public client), "scope": ...}
It listens on 127.0.0.1 (a free port), prints {"port": N} on stdout, then reads the config (the
secret travels on stdin, never on a command line) and answers {"ready": true, "issuer": ...}.
Routes:
  GET /login     -> the authorization request (code + PKCE S256, state, nonce)
  GET /callback  -> code exchange, ID token validation (signature from the JWKS, iss, aud, exp,
                    iat, nonce, at_hash), userinfo, refresh, introspection, revocation, replay:
                    the result as JSON in <pre id="result">, and at GET /result
  GET /logout    -> RP-initiated logout (id_token_hint, post_logout_redirect_uri, state)
  GET /signed-out
"""

import base64
import html
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

state = {"settings": None, "meta": None, "jwks": None, "pending": None, "last": None, "id_token": None}


def session(redirect_uri=None):
    s = state["settings"]
    return OAuth2Session(
        client_id=s["clientId"],
        client_secret=s.get("clientSecret"),
        scope=s.get("scope") or "openid profile email groups offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if s.get("clientSecret") else "none",
    )


def validate_id_token(id_token, access_token, nonce):
    """The ID token as Authlib validates it: the signature with the provider's published key,
    then iss, aud, exp, iat, nonce and at_hash (OpenID Connect Core 3.1.3.7)."""
    s, meta = state["settings"], state["meta"]
    claims = jwt.decode(
        id_token,
        JsonWebKey.import_key_set(state["jwks"]),
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": meta["issuer"]}},
        claims_params={"nonce": nonce, "client_id": s["clientId"], "access_token": access_token},
    )
    claims.validate(leeway=5)
    return dict(claims)


def error_of(e):
    return getattr(e, "error", None) or type(e).__name__


def callback(base, url):
    s, meta, pending = state["settings"], state["meta"], state["pending"]
    client = session(redirect_uri=f"{base}/callback")
    tokens = client.fetch_token(
        meta["token_endpoint"],
        authorization_response=url,
        state=pending["state"],
        code_verifier=pending["verifier"],
    )
    claims = validate_id_token(tokens["id_token"], tokens["access_token"], pending["nonce"])
    state["id_token"] = tokens["id_token"]
    userinfo = client.get(meta["userinfo_endpoint"]).json()
    if userinfo.get("sub") != claims["sub"]:
        raise ValueError("userinfo names another subject")
    header = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[0] + "=="))
    out = {"claims": claims, "userinfo": userinfo, "header": header}
    if tokens.get("refresh_token"):
        refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=tokens["refresh_token"])
        if refreshed.get("id_token"):
            # A refreshed ID token carries no nonce (Core 12.2); everything else is checked.
            out["refreshedSub"] = validate_id_token(refreshed["id_token"], refreshed["access_token"], None)["sub"]
        out["rotated"] = refreshed["refresh_token"] != tokens["refresh_token"]
        if s.get("clientSecret"):
            intro = client.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
            out["introspectedActive"] = intro.json().get("active")
        client.revoke_token(
            meta["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
        ).raise_for_status()
        if s.get("clientSecret"):
            after = client.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
            out["activeAfterRevocation"] = after.json().get("active")
        try:
            client.refresh_token(meta["token_endpoint"], refresh_token=tokens["refresh_token"])
            out["replay"] = "accepted"
        except AuthlibBaseError as e:
            out["replay"] = error_of(e)
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def page(self, status, ident, body):
        text = (
            '<!DOCTYPE html><html lang="en"><head><title>RP</title></head>'
            f'<body><pre id="{ident}">{html.escape(str(body), quote=False)}</pre></body></html>'
        ).encode()
        self.send_response(status)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def redirect(self, to):
        self.send_response(302)
        self.send_header("location", to)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        url = urlparse(self.path)
        try:
            if url.path == "/login":
                verifier = secrets.token_urlsafe(48)
                pending = {"verifier": verifier, "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16)}
                state["pending"] = pending
                to, _ = session(redirect_uri=f"{base}/callback").create_authorization_url(
                    state["meta"]["authorization_endpoint"],
                    state=pending["state"],
                    nonce=pending["nonce"],
                    code_verifier=verifier,
                )
                self.redirect(to)
            elif url.path == "/callback":
                out = callback(base, base + self.path)
                state["last"] = out
                self.page(200, "result", json.dumps(out))
            elif url.path == "/result":
                body = json.dumps(state["last"]).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif url.path == "/logout":
                query = urlencode(
                    {
                        "id_token_hint": state["id_token"],
                        "post_logout_redirect_uri": f"{base}/signed-out",
                        "state": "rp-logout",
                    }
                )
                self.redirect(f"{state['meta']['end_session_endpoint']}?{query}")
            elif url.path == "/signed-out":
                self.page(200, "signed-out", parse_qs(url.query).get("state", [""])[0])
            else:
                self.page(404, "error", "not found")
        except Exception as e:  # the test reads the failure from the page
            self.page(500, "error", f"{type(e).__name__}: {e} {error_of(e)}")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    for line in sys.stdin:
        settings = json.loads(line)
        state["settings"] = settings
        meta = requests.get(settings["issuer"].rstrip("/") + "/.well-known/openid-configuration", timeout=10).json()
        if meta["issuer"] != settings["issuer"]:
            raise SystemExit(f"discovery names issuer {meta['issuer']!r}, not {settings['issuer']!r}")
        state["meta"] = meta
        state["jwks"] = requests.get(meta["jwks_uri"], timeout=10).json()
        print(json.dumps({"ready": True, "issuer": meta["issuer"]}), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
