use super::*;
use proto::oidc::NewApp;

fn app(client_type: ClientType) -> App {
    new_app(
        NewApp {
            name: "Grafana".into(),
            client_type: Some(client_type),
            redirect_uris: vec!["https://grafana.contoso.com/login/generic_oauth".into()],
            allowed_scopes: Some(vec!["openid".into(), "profile".into(), "email".into()]),
            ..Default::default()
        },
        "app-1".into(),
        "t-1".into(),
        100,
    )
    .unwrap()
}

fn params(app: &App) -> AuthorizationParams {
    AuthorizationParams {
        client_id: Some(app.id.clone()),
        redirect_uri: Some(app.redirect_uris[0].clone()),
        response_type: Some("code".into()),
        scope: Some("openid profile".into()),
        state: Some("s".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

fn redirect_error(r: Result<Authorization, AuthorizationError>) -> &'static str {
    match r {
        Err(AuthorizationError::Redirect { error, .. }) => error,
        other => panic!("expected a redirected error, got {other:?}"),
    }
}

#[test]
fn registrations_get_defaults_and_openid_always() {
    let a = app(ClientType::Confidential);
    assert_eq!(a.allowed_scopes, ["openid", "profile", "email"]);
    assert_eq!(a.id_token_signing_alg, "ES256");
    assert!(!a.skip_consent);
    let p = patch_app(
        a.clone(),
        AppPatch {
            allowed_scopes: Some(vec!["email".into(), "email".into()]),
            ..Default::default()
        },
        200,
    )
    .unwrap();
    assert_eq!(p.allowed_scopes, ["openid", "email"]);
    assert_eq!(p.updated_at, 200);
    for bad in [
        AppPatch {
            allowed_scopes: Some(vec!["admin".into()]),
            ..Default::default()
        },
        AppPatch {
            redirect_uris: Some(vec![]),
            ..Default::default()
        },
        AppPatch {
            access_token_lifetime_secs: Some(10),
            ..Default::default()
        },
        AppPatch {
            id_token_signing_alg: Some("HS256".into()),
            ..Default::default()
        },
        AppPatch {
            name: Some("  ".into()),
            ..Default::default()
        },
    ] {
        let e = patch_app(a.clone(), bad, 200).unwrap_err();
        assert_eq!(e.code, proto::ErrorCode::Validation);
    }
}

#[test]
fn redirect_uris_are_absolute_without_fragments_and_http_only_on_loopback() {
    use ClientType::*;
    for ok in [
        "https://app.contoso.com/cb",
        "https://app.contoso.com:8443/cb?x=1",
        "http://127.0.0.1:8080/cb",
        "http://localhost/cb",
        "http://[::1]:9000/cb",
    ] {
        assert_eq!(check_redirect_uri(ok, Confidential), Ok(()), "{ok}");
    }
    assert_eq!(check_redirect_uri("com.contoso.app:/cb", Public), Ok(()));
    for bad in [
        "",
        "/relative",
        "http://app.contoso.com/cb",
        "https://app.contoso.com/cb#frag",
        "https://*.contoso.com/cb",
        "https://user:pw@app.contoso.com/cb",
        "https:///cb",
        "javascript:alert(1)",
        "com.contoso.app:/cb",
        "https://app.contoso.com/a b",
        "https://app.contoso.com;script-src/cb",
        "https://app.contoso.com,x/cb",
    ] {
        assert!(check_redirect_uri(bad, Confidential).is_err(), "{bad}");
    }
    assert!(check_redirect_uri("data:text/html,x", Public).is_err());
}

#[test]
fn unknown_clients_and_unregistered_redirects_are_never_redirected_to() {
    let a = app(ClientType::Confidential);
    let p = params(&a);
    assert!(matches!(
        check_authorization(None, &p),
        Err(AuthorizationError::Unsafe(_))
    ));
    for uri in [
        "https://grafana.contoso.com/login/generic_oauth/",
        "https://GRAFANA.contoso.com/login/generic_oauth",
        "https://grafana.contoso.com/login/generic_oauth?x=1",
        "https://evil.example/cb",
    ] {
        let mut p = p.clone();
        p.redirect_uri = Some(uri.into());
        assert!(
            matches!(
                check_authorization(Some(&a), &p),
                Err(AuthorizationError::Unsafe(_))
            ),
            "{uri}"
        );
    }
    let mut p = p.clone();
    p.redirect_uri = None;
    assert!(matches!(
        check_authorization(Some(&a), &p),
        Err(AuthorizationError::Unsafe(_))
    ));
}

#[test]
fn requests_are_checked_and_errors_named_as_the_specs_say() {
    let a = app(ClientType::Confidential);
    let ok = check_authorization(Some(&a), &params(&a)).unwrap();
    assert_eq!(ok.scopes, ["openid", "profile"]);
    assert_eq!(ok.state.as_deref(), Some("s"));

    let with = |f: &dyn Fn(&mut AuthorizationParams)| {
        let mut p = params(&a);
        f(&mut p);
        check_authorization(Some(&a), &p)
    };
    assert_eq!(
        redirect_error(with(&|p| p.response_type = Some("token".into()))),
        "unsupported_response_type"
    );
    assert_eq!(
        redirect_error(with(&|p| p.response_type = None)),
        "invalid_request"
    );
    assert_eq!(
        redirect_error(with(&|p| p.scope = Some("profile".into()))),
        "invalid_scope"
    );
    assert_eq!(
        redirect_error(with(&|p| p.scope = Some("openid groups".into()))),
        "invalid_scope"
    );
    assert_eq!(
        redirect_error(with(&|p| p.code_challenge_method = Some("plain".into()))),
        "invalid_request"
    );
    assert_eq!(
        redirect_error(with(&|p| p.code_challenge = Some("short".into()))),
        "invalid_request"
    );
    assert_eq!(
        redirect_error(with(&|p| p.prompt = Some("none login".into()))),
        "invalid_request"
    );
    assert_eq!(
        redirect_error(with(&|p| p.max_age = Some("-1".into()))),
        "invalid_request"
    );
    assert_eq!(
        redirect_error(with(&|p| p.request = Some("eyJ…".into()))),
        "request_not_supported"
    );
    // Confidential clients may leave PKCE out; public ones may not.
    assert!(with(&|p| {
        p.code_challenge = None;
        p.code_challenge_method = None;
    })
    .is_ok());
    let public = app(ClientType::Public);
    let mut p = params(&public);
    p.code_challenge = None;
    p.code_challenge_method = None;
    assert_eq!(
        redirect_error(check_authorization(Some(&public), &p)),
        "invalid_request"
    );
}

#[test]
fn next_step_follows_session_prompt_max_age_and_consent() {
    let a = app(ClientType::Confidential);
    let base = check_authorization(Some(&a), &params(&a)).unwrap();
    let s = |t| Some(SessionFacts { auth_time: t });
    assert_eq!(
        next_step(&base, None, false, 100, true, true, false),
        Step::SignIn
    );
    assert_eq!(
        next_step(&base, s(10), false, 100, true, false, false),
        Step::Consent
    );
    assert_eq!(
        next_step(&base, s(10), false, 100, true, false, true),
        Step::Issue
    );
    assert_eq!(
        next_step(&base, s(10), false, 100, true, true, false),
        Step::Issue
    );
    assert_eq!(
        next_step(&base, s(10), false, 100, false, true, false),
        Step::Fail("access_denied")
    );
    let login = Authorization {
        prompt_login: true,
        ..base.clone()
    };
    assert_eq!(
        next_step(&login, s(100), false, 100, true, true, false),
        Step::SignIn
    );
    assert_eq!(
        next_step(&login, s(100), true, 100, true, true, false),
        Step::Issue
    );
    let aged = Authorization {
        max_age: Some(60),
        ..base.clone()
    };
    assert_eq!(
        next_step(&aged, s(40), false, 100, true, true, false),
        Step::Issue
    );
    assert_eq!(
        next_step(&aged, s(39), false, 100, true, true, false),
        Step::SignIn
    );
    let none = Authorization {
        prompt_none: true,
        ..base.clone()
    };
    assert_eq!(
        next_step(&none, None, false, 100, true, true, false),
        Step::Fail("login_required")
    );
    assert_eq!(
        next_step(&none, s(10), false, 100, true, false, false),
        Step::Fail("consent_required")
    );
    let consent = Authorization {
        prompt_consent: true,
        ..base
    };
    assert_eq!(
        next_step(&consent, s(10), false, 100, true, true, false),
        Step::Consent
    );
    assert!(consent_covers(
        &["openid".into(), "email".into()],
        &["email".into()]
    ));
    assert!(!consent_covers(&["openid".into()], &["email".into()]));
}

#[test]
fn pkce_s256_matches_the_rfc_7636_example_only() {
    let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert!(pkce_matches(v, c));
    assert!(!pkce_matches(&v.replace('d', "e"), c));
    assert!(!pkce_matches("short", c));
    assert!(!pkce_matches(
        v,
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
    ));
}

#[test]
fn groups_are_resolved_through_nesting_and_cycles_end() {
    let m = |g: &str, kind: MemberKind, id: &str| {
        (
            g.to_string(),
            MemberRef {
                kind,
                id: id.to_string(),
            },
        )
    };
    let ms = vec![
        m("staff", MemberKind::User, "ada"),
        m("all", MemberKind::Group, "staff"),
        m("staff", MemberKind::Group, "all"),
        m("other", MemberKind::User, "bob"),
    ];
    assert_eq!(groups_of(&ms, "ada"), ["all", "staff"]);
    assert_eq!(groups_of(&ms, "bob"), ["other"]);
    assert!(groups_of(&ms, "eve").is_empty());
    let mut a = app(ClientType::Confidential);
    assert!(may_use(&a, &ms, "eve"));
    a.access_group_id = Some("all".into());
    assert!(may_use(&a, &ms, "ada"));
    assert!(!may_use(&a, &ms, "bob"));
}

#[test]
fn claims_follow_the_scopes() {
    let user = User {
        id: "u1".into(),
        tenant_id: "t".into(),
        user_principal_name: "ada@contoso.com".into(),
        display_name: "Ada Lovelace".into(),
        given_name: Some("Ada".into()),
        surname: None,
        mail: Some("ada@contoso.com".into()),
        mobile_phone: Some("+1 555".into()),
        office_phone: None,
        usage_location: None,
        account_enabled: true,
        source: proto::Source::Cloud,
        roles: vec![],
        on_premises: None,
        created_at: 0,
        updated_at: 5,
    };
    let only = user_claims(&user, &["openid".into()], &["Staff".into()]);
    assert_eq!(Value::Object(only), json!({"sub": "u1"}));
    let all = user_claims(
        &user,
        &[
            "openid".into(),
            "profile".into(),
            "email".into(),
            "groups".into(),
        ],
        &["Staff".into()],
    );
    assert_eq!(all["preferred_username"], "ada@contoso.com");
    assert_eq!(all["given_name"], "Ada");
    assert_eq!(all["email"], "ada@contoso.com");
    assert_eq!(all["groups"], json!(["Staff"]));
    assert!(!all.contains_key("family_name") && !all.contains_key("phone_number"));
    let id = id_token_claims(
        all,
        &IdTokenFacts {
            issuer: "https://id/t/contoso.com",
            client_id: "app",
            nonce: Some("n"),
            auth_time: 7,
            now: 10,
            lifetime: 60,
            access_token: "dbo_x",
        },
    );
    assert_eq!(id["exp"], 70);
    assert_eq!(id["aud"], "app");
    assert_eq!(id["nonce"], "n");
    assert_eq!(id["at_hash"].as_str().unwrap().len(), 22);
}

#[test]
fn keys_sign_tokens_that_verify_and_seal_to_their_row() {
    for alg in keys::Alg::ALL {
        let k = keys::generate(alg).unwrap();
        let claims = json!({"sub": "u1"});
        let jwt = keys::sign_jwt(alg, &k.kid, &k.private_pkcs8, &claims).unwrap();
        let jwks = vec![k.public_jwk.clone()];
        assert_eq!(
            keys::verify_jwt(&jwks, &jwt),
            Some(claims.clone()),
            "{alg:?}"
        );
        let mut forged = jwt.clone();
        forged.replace_range(jwt.len() - 4.., "AAAA");
        assert_eq!(keys::verify_jwt(&jwks, &forged), None);
        assert_eq!(keys::verify_jwt(&[], &jwt), None);

        let kek = keys::new_kek();
        let sealed = keys::seal(&kek, "t1", &k.kid, &k.private_pkcs8).unwrap();
        assert!(!sealed.contains(&b64(&k.private_pkcs8)));
        assert_eq!(
            keys::open(&kek, "t1", &k.kid, &sealed).unwrap().as_slice(),
            k.private_pkcs8.as_slice()
        );
        assert!(keys::open(&kek, "t2", &k.kid, &sealed).is_err());
        assert!(keys::open(&kek, "t1", "other", &sealed).is_err());
        assert!(keys::open(&keys::new_kek(), "t1", &k.kid, &sealed).is_err());
        assert!(keys::open(&kek, "t1", &k.kid, "v1.garbage").is_err());
    }
}
