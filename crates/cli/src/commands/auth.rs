//! `dirbridge login`, `logout`, `whoami`.

use anyhow::bail;
use proto::{TokenRequest, TokenResponse, User};
use secrecy::ExposeSecret;
use serde_json::json;
use zeroize::Zeroize;

use super::Ctx;
use crate::api::{is_unauthenticated, Api};
use crate::args::LoginArgs;
use crate::credentials::{self, Credentials};
use crate::output::{self, fields, print_json};
use crate::password::{self, Prompt};
use crate::time::format_rfc3339;

pub async fn login(args: LoginArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let dir = credentials::config_dir()?;
    let cloud = match &ctx.cloud {
        Some(c) => c.clone(),
        None => match credentials::load(&dir).ok().flatten() {
            Some(previous) => previous.cloud,
            None => bail!("which cloud? pass --cloud URL, e.g. dirbridge login --cloud https://id.contoso.com --user {}", args.user),
        },
    };
    let api = Api::anonymous(&cloud)?;
    let secret = password::obtain(
        &args.password,
        &format!("Password for {}", args.user),
        Prompt::Once,
    )?;
    let mut request = TokenRequest {
        user_principal_name: args.user.clone(),
        password: secret.expose_secret().to_owned(),
    };
    let answer = api.post("/api/v1/auth/token", &request).await;
    request.password.zeroize();
    let token: TokenResponse = output::decode(answer?)?;
    let creds = Credentials {
        cloud: api.base().to_string(),
        access_token: token.access_token,
        token_id: token.token_id,
        expires_at: token.expires_at,
        user_principal_name: token.user_principal_name,
        tenant_id: token.tenant_id,
    };
    let path = credentials::save(&dir, &creds)?;
    if ctx.out.is_json() {
        // The token itself stays in the credentials file, never on standard output.
        print_json(&json!({
            "cloud": creds.cloud,
            "userPrincipalName": creds.user_principal_name,
            "tenantId": creds.tenant_id,
            "tokenId": creds.token_id,
            "expiresAt": creds.expires_at,
            "roles": token.roles,
            "credentialsFile": path,
        }));
    } else {
        let roles: Vec<&str> = token.roles.iter().map(|r| r.display_name()).collect();
        println!(
            "Signed in to {} as {}{}; the sign-in lasts until {}.",
            creds.cloud,
            creds.user_principal_name,
            if roles.is_empty() {
                String::new()
            } else {
                format!(" ({})", roles.join(", "))
            },
            format_rfc3339(creds.expires_at)
        );
    }
    Ok(())
}

pub async fn logout(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = credentials::config_dir()?;
    let Some(creds) = credentials::load(&dir)? else {
        ctx.out.done("You are not signed in.");
        return Ok(());
    };
    if creds.expires_at > crate::time::now() {
        let api = Api::with_token(ctx.cloud.as_deref().unwrap_or(&creds.cloud), &creds)?;
        match api.delete("/api/v1/auth/token").await {
            Ok(_) => {}
            // Already revoked or expired on the cloud's side: nothing left to revoke.
            Err(e) if is_unauthenticated(&e) => {}
            Err(e) => eprintln!(
                "warning: the token could not be revoked ({e:#}); it stays valid until {} but is no longer stored here",
                format_rfc3339(creds.expires_at)
            ),
        }
    }
    credentials::delete(&dir)?;
    ctx.out.done(&format!(
        "Signed out of {} ({}).",
        creds.cloud, creds.user_principal_name
    ));
    Ok(())
}

pub async fn whoami(ctx: &Ctx) -> anyhow::Result<()> {
    let api = ctx.api()?;
    let me = api.get("/api/v1/me", &[]).await?;
    ctx.out.data(me, |u: User| {
        let roles: Vec<String> = u
            .roles
            .iter()
            .map(|r| r.display_name().to_string())
            .collect();
        fields(&[
            ("User principal name", u.user_principal_name),
            ("Display name", u.display_name),
            ("Roles", output::list(&roles)),
            ("Tenant", u.tenant_id),
            ("Cloud", api.base().to_string()),
        ])
    })
}
