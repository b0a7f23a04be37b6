//! Every bad input gets an OpenAI-style JSON error with the right status.

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";

async fn setup(server: &str) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::echo().await;
    let toml = format!("[server]\n{server}\n")
        + &upstream_toml("main", &mock.url(), &[FLASH, "deepseek-v4-pro"], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH], "");
    (mock, start_gateway(&toml).await)
}

fn assert_error(r: &TestResponse, status: u16, kind: &str, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").is_some());
    let e = r.json();
    assert_eq!(e["error"]["type"], kind, "{e}");
    assert_eq!(e["error"]["code"], code, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn authentication_errors_are_401() {
    let (mock, gw) = setup("").await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = user_says("auto", "hi").to_string();
    assert_error(
        &request("POST", &url, None, &[], body.clone()).await,
        401,
        "authentication_error",
        "missing_api_key",
    );
    assert_error(
        &request("POST", &url, Some("sk-wrong"), &[], body.clone()).await,
        401,
        "authentication_error",
        "invalid_api_key",
    );
    assert_error(
        &request("POST", &url, Some(&KEY_A[..KEY_A.len() - 1]), &[], body).await,
        401,
        "authentication_error",
        "invalid_api_key",
    );
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn malformed_and_invalid_bodies_are_400_naming_the_field() {
    let (mock, gw) = setup("").await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let r = request(
        "POST",
        &url,
        Some(KEY_A),
        &[],
        "{\"model\": \"auto\", \"messages\": [",
    )
    .await;
    assert_error(&r, 400, "invalid_request_error", "invalid_request");
    let r = request("POST", &url, Some(KEY_A), &[], vec![b'{', 0xff, 0xfe, b'}']).await;
    assert_error(&r, 400, "invalid_request_error", "invalid_request");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    let r = chat(&gw, KEY_A, &json!({"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"})).await;
    assert_error(&r, 400, "invalid_request_error", "invalid_request");
    assert_eq!(r.json()["error"]["param"], "max_tokens");
    let deep = format!(
        "{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}],\"x\":{}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_error(
        &request("POST", &url, Some(KEY_A), &[], deep).await,
        400,
        "invalid_request_error",
        "invalid_request",
    );
    assert_eq!(mock.count(), 0, "nothing invalid reaches an upstream");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_whether_declared_or_streamed() {
    let (mock, gw) = setup("max_body_bytes = 4096").await;
    let big = user_says("auto", &"x".repeat(10_000));
    assert_error(
        &chat(&gw, KEY_A, &big).await,
        413,
        "invalid_request_error",
        "request_too_large",
    );
    assert_eq!(
        chat(&gw, KEY_A, &user_says("auto", "small")).await.status,
        200
    );
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn models_outside_the_tenant_list_are_403_and_unknown_ones_404() {
    let (_mock, gw) = setup("").await;
    assert_error(
        &chat(&gw, KEY_A, &user_says("deepseek-v4-pro", "hi")).await,
        403,
        "permission_error",
        "model_not_allowed",
    );
    assert_error(
        &chat(&gw, KEY_A, &user_says("gpt-9000", "hi")).await,
        404,
        "not_found_error",
        "model_not_found",
    );
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let (_mock, gw) = setup("").await;
    assert_error(
        &request(
            "GET",
            &format!("{}/v1/nothing", gw.url),
            Some(KEY_A),
            &[],
            "",
        )
        .await,
        404,
        "not_found_error",
        "not_found",
    );
    assert_error(
        &request(
            "GET",
            &format!("{}/v1/chat/completions", gw.url),
            Some(KEY_A),
            &[],
            "",
        )
        .await,
        405,
        "invalid_request_error",
        "method_not_allowed",
    );
    let health = request("GET", &format!("{}/healthz", gw.url), None, &[], "").await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn a_policy_rejection_keeps_its_status_and_code() {
    let (mock, gw) = setup("").await;
    // Only a text model is allowed, so flash-first refuses a request with an image.
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]});
    assert_error(
        &chat(&gw, KEY_A, &body).await,
        400,
        "invalid_request_error",
        "no_suitable_model",
    );
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn oversized_headers_are_refused_and_the_server_stays_up() {
    let (_mock, gw) = setup("max_header_bytes = 8192").await;
    let huge = "v".repeat(100_000);
    let r = request(
        "POST",
        &format!("{}/v1/chat/completions", gw.url),
        Some(KEY_A),
        &[("x-switchyard-note", &huge)],
        user_says("auto", "hi").to_string(),
    )
    .await;
    assert_eq!(r.status, 431);
    assert_eq!(chat(&gw, KEY_A, &user_says("auto", "hi")).await.status, 200);
}
