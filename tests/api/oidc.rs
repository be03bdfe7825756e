//! OIDC over HTTP against a real issuer: an in-process issuer (discovery, a JWKS with counted fetches,
//! ES256 keys made with `ring`) for the attacks, and the npm `oauth2-mock-server` (RS256) end to end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{Backend, TestApp, authorized_client, reply};

const REGISTRY: &str = "/api/model_registry/v1alpha3";

/// A signing key with its id.
struct Key {
    kid: String,
    pair: EcdsaKeyPair,
}

impl Key {
    fn new(kid: &str) -> Key {
        let random = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random).expect("key");
        Key { kid: kid.to_owned(), pair }
    }

    fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
               "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
    }

    fn sign(&self, claims: &Value) -> String {
        let message = encoded(&json!({"alg": "ES256", "typ": "JWT", "kid": self.kid}), claims);
        let signature = self.pair.sign(&SystemRandom::new(), message.as_bytes()).expect("sign");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn encoded(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// An issuer: discovery and a key set, counting key set fetches.
struct Issuer {
    url: String,
    keys: Mutex<Vec<Key>>,
    fetches: AtomicU64,
}

impl Issuer {
    async fn start() -> Arc<Issuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let issuer = Arc::new(Issuer { url, keys: Mutex::new(vec![Key::new("k1")]), fetches: AtomicU64::new(0) });
        let router = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(issuer.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        issuer
    }

    fn claims(&self, subject: &str, groups: &[&str]) -> Value {
        let now = now();
        json!({"iss": self.url, "aud": "modelcat", "sub": subject, "groups": groups, "iat": now, "exp": now + 300})
    }

    async fn token(&self, claims: &Value) -> String {
        self.keys.lock().await[0].sign(claims)
    }
}

async fn discovery(State(issuer): State<Arc<Issuer>>) -> axum::Json<Value> {
    axum::Json(json!({"issuer": issuer.url, "jwks_uri": format!("{}/jwks", issuer.url)}))
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> axum::Json<Value> {
    issuer.fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = issuer.keys.lock().await.iter().map(Key::jwk).collect();
    axum::Json(json!({ "keys": keys }))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A server accepting tokens and JWTs from `issuer`, with groups mapped to roles.
async fn server(issuer: &str, refetch_secs: u64) -> TestApp {
    let yaml = format!(
        "methods: [token, oidc]\ngroups: {{ml-team: editor, ml-admins: admin}}\n\
         oidc: {{issuer: \"{issuer}\", audience: modelcat, refetch_interval_secs: {refetch_secs}}}\n"
    );
    let file: modelcat::auth::settings::AuthFileSettings = serde_norway::from_str(&yaml).expect("yaml");
    let auth = file.settings(None).expect("valid");
    TestApp::spawn_configured(Backend::Sqlite, |settings| {
        let admin_token = settings.auth.admin_token.clone();
        settings.auth = modelcat::auth::AuthSettings { admin_token, ..auth };
    })
    .await
    .expect("sqlite")
}

/// Registers a model with `jwt`; returns the status and body.
async fn register(app: &TestApp, jwt: &str, name: &str) -> (StatusCode, Value) {
    let response = authorized_client(jwt)
        .post(format!("{}{REGISTRY}/registered_models", app.address))
        .json(&json!({"name": name}))
        .send()
        .await
        .expect("sent");
    let answer = reply(response).await;
    (answer.status, answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_are_checked_for_signature_issuer_audience_time_and_algorithm() {
    let issuer = Issuer::start().await;
    let app = server(&issuer.url, 60).await;

    let good = issuer.token(&issuer.claims("ada", &["ml-team"])).await;
    assert_eq!(register(&app, &good, "by-ada").await.0, StatusCode::CREATED);
    let whoami: Value = authorized_client(&good)
        .get(format!("{}/api/modelcat/v1/whoami", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["identity"]["subject"], "ada", "{whoami}");
    assert_eq!(whoami["identity"]["role"], "editor", "{whoami}");
    assert_eq!(whoami["identity"]["credential"]["kind"], "oidc", "{whoami}");
    let viewer = issuer.token(&issuer.claims("bob", &["visitors"])).await;
    assert_eq!(register(&app, &viewer, "by-bob").await.0, StatusCode::FORBIDDEN);

    let mut refused = Vec::new();
    let mut claims = issuer.claims("eve", &["ml-admins"]);
    claims["aud"] = json!("another-app");
    refused.push(("wrong audience", issuer.token(&claims).await));
    let mut claims = issuer.claims("eve", &["ml-admins"]);
    claims["iss"] = json!("http://evil.example.com");
    refused.push(("wrong issuer", issuer.token(&claims).await));
    let mut claims = issuer.claims("eve", &["ml-admins"]);
    claims["exp"] = json!(now() - 3600);
    refused.push(("expired", issuer.token(&claims).await));
    let mut claims = issuer.claims("eve", &["ml-admins"]);
    claims["nbf"] = json!(now() + 3600);
    refused.push(("not yet valid", issuer.token(&claims).await));
    let claims = issuer.claims("eve", &["ml-admins"]);
    refused.push(("alg none", format!("{}.", encoded(&json!({"alg": "none", "typ": "JWT", "kid": "k1"}), &claims))));
    // HS256 with the issuer's public key as the HMAC secret (the classic key-confusion attack).
    let public = issuer.keys.lock().await[0].jwk().to_string();
    let message = encoded(&json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}), &claims);
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.as_bytes());
    let tag = ring::hmac::sign(&secret, message.as_bytes());
    refused.push(("HS256 with the public key", format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))));
    let mut tampered = issuer.claims("eve", &["ml-admins"]);
    let signed = issuer.token(&issuer.claims("eve", &["visitors"])).await;
    tampered["groups"] = json!(["ml-admins"]);
    let parts: Vec<&str> = signed.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(tampered.to_string()), parts[2]);
    refused.push(("claims changed after signing", forged));
    for (what, token) in &refused {
        let (status, body) = register(&app, token, "by-eve").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|message| message.starts_with("invalid token")), "{what}: {body}");
        assert!(!body.to_string().contains(token.as_str()), "{what}: the token is echoed");
    }

    // Within the allowed clock skew (60 s), a just-expired token still passes.
    let mut claims = issuer.claims("ada", &["ml-team"]);
    claims["exp"] = json!(now() - 20);
    assert_eq!(register(&app, &issuer.token(&claims).await, "by-ada-late").await.0, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refetches_the_keys_once_and_rotation_is_picked_up() {
    let issuer = Issuer::start().await;
    let app = server(&issuer.url, 1).await;
    let first = issuer.token(&issuer.claims("ada", &["ml-team"])).await;
    assert_eq!(register(&app, &first, "first").await.0, StatusCode::CREATED);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ghost = Key::new("ghost").sign(&issuer.claims("mallory", &["ml-admins"]));
    for _ in 0..5 {
        let (status, body) = register(&app, &ghost, "ghost").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["message"], "invalid token: unknown signing key");
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2, "five unknown kids, exactly one refetch");

    // The issuer rotates to k2 and drops k1: a k2 token is accepted after one refetch, a k1 one no longer.
    *issuer.keys.lock().await = vec![Key::new("k2")];
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = issuer.token(&issuer.claims("ada", &["ml-team"])).await;
    assert_eq!(register(&app, &rotated, "after-rotation").await.0, StatusCode::CREATED);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 3);
    let (status, _) = register(&app, &first, "old-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_is_a_503_and_tokens_still_work() {
    let unreachable = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    );
    let app = server(&unreachable, 1).await;
    let jwt = Key::new("k1").sign(&json!({"iss": unreachable, "aud": "modelcat", "sub": "x", "exp": now() + 60}));
    let (status, body) = register(&app, &jwt, "x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(register(&app, &app.admin_token, "with-a-token").await.0, StatusCode::CREATED);
}

/// End to end with npm's `oauth2-mock-server` (RS256), installed by `.ci/run` under `tests/oidc`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_oidc_provider_end_to_end() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    if !root.join("node_modules/oauth2-mock-server").exists() {
        assert!(std::env::var_os("CI").is_none(), "tests/oidc/node_modules is missing under CI (.ci/run installs it)");
        eprintln!("skipped: run `npm ci --prefix tests/oidc` to install oauth2-mock-server");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut provider = std::process::Command::new("node")
        .arg(root.join("provider.mjs"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let issuer = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = crate::helpers::eventually(Duration::from_secs(20), || async {
        let response = client.get(format!("{issuer}/.well-known/openid-configuration")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    assert!(up.is_some(), "oauth2-mock-server did not start");
    let app = server(&issuer, 60).await;
    let token = |subject: &'static str, groups: &'static str| {
        let client = client.clone();
        let issuer = issuer.clone();
        async move {
            let form = form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("grant_type", "client_credentials"), ("sub", subject), ("groups", groups)])
                .finish();
            let request = client
                .post(format!("{issuer}/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form);
            let answer: Value = request.send().await.unwrap().json().await.unwrap();
            answer["access_token"].as_str().expect("access_token").to_owned()
        }
    };
    let editor = token("ada@example.com", "ml-team").await;
    assert_eq!(register(&app, &editor, "from-oidc").await.0, StatusCode::CREATED);
    let viewer = token("bob@example.com", "visitors").await;
    assert_eq!(register(&app, &viewer, "refused").await.0, StatusCode::FORBIDDEN);
    let read = authorized_client(&viewer).get(format!("{}{REGISTRY}/registered_models", app.address)).send().await;
    assert_eq!(read.unwrap().status(), StatusCode::OK);
    let _ = provider.kill();
    let _ = provider.wait();
}
