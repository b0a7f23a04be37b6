//! Hot reload: policies and config change live, atomically, with no failed or mixed requests, and
//! a broken file never replaces the version in service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

/// A watched gateway whose tenant `a` uses policy `p` at `<dir>/policy.wasm` (initially
/// `initial`), with `tenant_extra` lines.
async fn file_gateway(initial: &str, tenant_extra: &str) -> (TempDir, MockUpstream, TestGateway) {
    let dir = TempDir::new("reload");
    let mock = MockUpstream::echo().await;
    std::fs::copy(component(initial), dir.path("policy.wasm")).unwrap();
    let toml = watched_server_toml(&dir.path("cache"))
        + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + "[policies.p]\npath = \"policy.wasm\"\n"
        + &tenant_toml("a", KEY_A, "p", &[FLASH, PRO], tenant_extra);
    std::fs::write(dir.path("config.toml"), toml).unwrap();
    let gw = start_gateway_from_file(&dir.path("config.toml")).await;
    (dir, mock, gw)
}

fn header_of(component_name: &str) -> String {
    let bytes = std::fs::read(component(component_name)).unwrap();
    let hash = switchyard_policy::PolicyHash::of(&bytes);
    format!("p@{}", hash.short())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_policy_every_100ms_under_load_drops_nothing() {
    let (dir, _mock, gw) = file_gateway("flash-first", "").await;
    let (a, b) = (header_of("flash-first"), header_of("static-route"));
    let bytes_a = std::fs::read(component("flash-first")).unwrap();
    let bytes_b = std::fs::read(component("static-route")).unwrap();
    let gw = Arc::new(gw);
    let stop = Arc::new(AtomicBool::new(false));

    let mut clients = Vec::new();
    for _ in 0..6 {
        let (gw, stop) = (gw.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
                seen.push((
                    started,
                    Instant::now(),
                    r.status,
                    r.header("x-switchyard-policy").map(str::to_owned),
                    (r.status != 200).then(|| r.text()),
                ));
            }
            seen
        }));
    }
    // 20 s of swaps, every 100 ms, by atomic rename; the last one installs version B.
    let policy = dir.path("policy.wasm");
    let swaps_started = Instant::now();
    let mut i = 0u32;
    while swaps_started.elapsed() < Duration::from_secs(20) || i.is_multiple_of(2) {
        replace_file(
            &policy,
            if i.is_multiple_of(2) {
                &bytes_b
            } else {
                &bytes_a
            },
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await; // the swaps' pace
    }
    let last_swap = Instant::now();
    // The load goes on past the last swap, so that requests started a second after it are seen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut versions = std::collections::BTreeMap::<String, usize>::new();
    for c in clients {
        for (started, _ended, status, header, error) in c.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "no request may fail during reloads: {error:?}");
            let header = header.expect("every response names its policy version");
            assert!(header == a || header == b, "unknown version {header}");
            if started > last_swap + Duration::from_secs(1) {
                assert_eq!(
                    header, b,
                    "a second after the last swap, only the last version serves"
                );
            }
            *versions.entry(header).or_default() += 1;
        }
    }
    eprintln!(
        "{total} requests over {i} swaps: {versions:?}; generation {}",
        gw.generation().await
    );
    assert!(total > 200, "the load kept going ({total} requests)");
    assert!(versions.len() == 2, "both versions served: {versions:?}");
    assert!(gw.generation().await >= 10, "the swaps were applied live");
}

#[tokio::test]
async fn broken_policy_files_never_replace_the_version_in_service() {
    // static-route accepts this config; flash-first refuses it (unknown field `model`).
    let (dir, _mock, gw) = file_gateway(
        "static-route",
        "policy_config = { model = \"deepseek-v4-flash\" }",
    )
    .await;
    let good = header_of("static-route");
    assert_eq!(gw.policy_header("p").await, good);
    let original = std::fs::read(component("static-route")).unwrap();
    let policy = dir.path("policy.wasm");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            original[..original.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "not wasm",
            b"#!/bin/sh\necho hello\n".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "wrong world",
            b"\0asm\x0d\0\x01\0".to_vec(),
            "does not match the switchyard:policy",
        ),
        (
            "config rejected",
            std::fs::read(component("flash-first")).unwrap(),
            "refused it",
        ),
        (
            "trapping",
            std::fs::read(component("panics")).unwrap(),
            "trap",
        ),
        (
            "too slow",
            std::fs::read(component("spins")).unwrap(),
            "deadline",
        ),
    ];
    for (kind, bytes, reason) in cases {
        replace_file(&policy, &bytes);
        let status = gw
            .wait_for_policy("p", Duration::from_secs(30), |p| {
                p["last_reload"]["last_outcome"] == "failed"
                    && p["last_reload"]["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains(reason))
            })
            .await;
        let error = status["last_reload"]["last_error"]
            .as_str()
            .unwrap_or_default();
        assert!(
            error.contains(reason),
            "{kind}: error should mention `{reason}`: {error}"
        );
        assert_eq!(
            status["header"], good,
            "{kind}: the old version stays in service"
        );
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        assert_eq!(r.status, 200, "{kind}: {}", r.text());
        assert_eq!(
            r.header("x-switchyard-policy"),
            Some(good.as_str()),
            "{kind}"
        );
    }
    // A good file goes in.
    let hostile = std::fs::read(component("hostile")).unwrap();
    replace_file(&policy, &hostile);
    let status = gw
        .wait_for_policy("p", Duration::from_secs(30), |p| {
            p["last_reload"]["last_outcome"] == "loaded"
        })
        .await;
    assert_eq!(status["header"], header_of("hostile"));
    assert!(status["last_reload"]["last_error"].is_null());
}

async fn settle_generation(gw: &TestGateway, from: u64) -> u64 {
    // Wait for the reload, then long enough for any straggling events to be handled: callers
    // check that they caused no second reload, and there is no effect to wait for when the point
    // is that nothing happens.
    eventually(
        &format!("a reload past generation {from}"),
        Duration::from_secs(20),
        || async { gw.generation().await != from },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    gw.generation().await
}

#[tokio::test]
async fn each_way_files_really_change_gives_exactly_one_effective_reload() {
    let (dir, _mock, gw) = file_gateway("flash-first", "").await;
    let policy = dir.path("policy.wasm");

    // Rename over.
    let g0 = gw.generation().await;
    replace_file(&policy, &std::fs::read(component("static-route")).unwrap());
    assert_eq!(settle_generation(&gw, g0).await, g0 + 1, "rename-over");
    assert_eq!(gw.policy_header("p").await, header_of("static-route"));

    // Delete, then re-create.
    let g1 = gw.generation().await;
    std::fs::remove_file(&policy).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await; // gone a while, then back
    std::fs::write(&policy, std::fs::read(component("flash-first")).unwrap()).unwrap();
    assert_eq!(
        settle_generation(&gw, g1).await,
        g1 + 1,
        "delete and re-create"
    );
    assert_eq!(gw.policy_header("p").await, header_of("flash-first"));

    // Write in place, in two halves with a pause: the half-written file is refused, the whole one
    // goes in.
    let g2 = gw.generation().await;
    let bytes = std::fs::read(component("static-route")).unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&policy)
            .unwrap();
        f.write_all(&bytes[..bytes.len() / 2]).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        f.write_all(&bytes[bytes.len() / 2..]).unwrap();
    }
    assert_eq!(settle_generation(&gw, g2).await, g2 + 1, "write in place");
    assert_eq!(gw.policy_header("p").await, header_of("static-route"));
    // Touching the file without changing it, or writing an unrelated file nearby, reloads nothing.
    let g3 = gw.generation().await;
    std::fs::write(&policy, &bytes).unwrap();
    std::fs::write(dir.path("notes.txt"), "unrelated").unwrap();
    // Longer than the watcher's debounce and a reload: nothing to wait for when nothing changes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gw.generation().await, g3, "no content change, no reload");
}

#[tokio::test]
async fn a_kubernetes_configmap_symlink_swap_reloads_once() {
    // ConfigMap volumes: dir/config.toml -> ..data/config.toml, ..data -> ..<timestamp>/
    let dir = TempDir::new("configmap");
    let mock = MockUpstream::echo().await;
    let write_version = |name: &str, models: &[&str]| {
        let version = dir.path(name);
        std::fs::create_dir_all(&version).unwrap();
        std::fs::copy(component("flash-first"), version.join("policy.wasm")).unwrap();
        let toml = watched_server_toml(&dir.path("cache"))
            + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
            + "[policies.p]\npath = \"policy.wasm\"\n"
            + &tenant_toml("a", KEY_A, "p", models, "");
        std::fs::write(version.join("config.toml"), toml).unwrap();
    };
    write_version("..2026_11_29_v1", &[FLASH, PRO]);
    std::os::unix::fs::symlink("..2026_11_29_v1", dir.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/config.toml", dir.path("config.toml")).unwrap();
    std::os::unix::fs::symlink("..data/policy.wasm", dir.path("policy.wasm")).unwrap();
    let gw = start_gateway_from_file(&dir.path("config.toml")).await;
    assert_eq!(chat(&gw, KEY_A, &user_says(PRO, "hi")).await.status, 200);

    // kubelet's update: write the new version, point a temporary symlink at it, rename it over ..data.
    write_version("..2026_11_29_v2", &[FLASH]);
    let g0 = gw.generation().await;
    std::os::unix::fs::symlink("..2026_11_29_v2", dir.path("..data_tmp")).unwrap();
    std::fs::rename(dir.path("..data_tmp"), dir.path("..data")).unwrap();
    std::fs::remove_dir_all(dir.path("..2026_11_29_v1")).unwrap();
    assert_eq!(settle_generation(&gw, g0).await, g0 + 1);
    assert_eq!(
        chat(&gw, KEY_A, &user_says(PRO, "hi")).await.status,
        403,
        "the new config is in service"
    );
}

#[tokio::test]
async fn config_reloads_add_and_remove_tenants_and_change_their_models() {
    let (dir, mock, gw) = file_gateway("flash-first", "").await;
    let config = dir.path("config.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    assert_eq!(chat(&gw, KEY_B, &user_says("auto", "hi")).await.status, 401);

    // Add tenant b.
    let with_b = base.clone() + &tenant_toml("b", KEY_B, "p", &[FLASH], "");
    let g = gw.generation().await;
    replace_file(&config, with_b.as_bytes());
    settle_generation(&gw, g).await;
    assert_eq!(
        chat(&gw, KEY_B, &user_says("auto", "hi")).await.status,
        200,
        "the new tenant authenticates"
    );

    // Change a's models and remove b.
    let narrowed = base.replace(
        &tenant_toml("a", KEY_A, "p", &[FLASH, PRO], ""),
        &tenant_toml("a", KEY_A, "p", &[FLASH], ""),
    );
    assert_ne!(narrowed, base);
    let g = gw.generation().await;
    replace_file(&config, narrowed.as_bytes());
    settle_generation(&gw, g).await;
    assert_eq!(
        chat(&gw, KEY_B, &user_says("auto", "hi")).await.status,
        401,
        "a removed tenant stops authenticating"
    );
    assert_eq!(
        chat(&gw, KEY_A, &user_says(PRO, "hi")).await.status,
        403,
        "models narrowed"
    );
    let served = mock.count();

    // An invalid config is refused, with the setting named, and the old one keeps serving.
    let g = gw.generation().await;
    replace_file(
        &config,
        narrowed
            .replace(
                &format!("models = [\"{FLASH}\"]\n"),
                "models = [\"gpt-4o\"]\n",
            )
            .as_bytes(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let c = gw.admin_get("/admin/config").await;
        if let Some(e) = c["last_error"].as_str() {
            break e.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the invalid config was never reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        error.contains("tenants.a.models[0]") && error.contains("gpt-4o"),
        "{error}"
    );
    assert_eq!(gw.generation().await, g);
    assert_eq!(chat(&gw, KEY_A, &user_says("auto", "hi")).await.status, 200);
    assert_eq!(mock.count(), served + 1);
}

#[tokio::test]
async fn the_admin_api_needs_its_own_token_and_shows_no_secrets() {
    let (_dir, _mock, gw) = file_gateway("flash-first", "").await;
    let addr = gw.gateway.admin_addr().unwrap();
    for key in [None, Some(KEY_A), Some("admin-token-for-tests-0123456780")] {
        let r = request(
            "GET",
            &format!("http://{addr}/admin/policies"),
            key,
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 401, "{key:?}");
    }
    // The admin listener is not the API listener.
    let r = request(
        "GET",
        &format!("{}/admin/policies", gw.url),
        Some(ADMIN_TOKEN),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    let config = gw.admin_get("/admin/config").await;
    assert_eq!(config["tenants"], json!(["a"]));
    assert!(config["hash"].as_str().unwrap().len() == 64);
    let text = config.to_string() + &gw.admin_get("/admin/policies").await.to_string();
    assert!(
        !text.contains(&key_hash(KEY_A)) && !text.contains(&key_hash(ADMIN_TOKEN)),
        "no key material: {text}"
    );
    let policies = gw.admin_get("/admin/policies").await;
    let p = &policies["policies"][0];
    assert_eq!(p["tenants"], json!(["a"]));
    assert_eq!(p["hash"].as_str().unwrap().len(), 64);
    assert!(p["path"].as_str().unwrap().ends_with("policy.wasm"));
    // POST /admin/reload with nothing changed.
    let r = request(
        "POST",
        &format!("http://{addr}/admin/reload"),
        Some(ADMIN_TOKEN),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["outcome"], "unchanged");
}

#[tokio::test]
async fn requests_in_flight_finish_on_the_version_they_started_with() {
    // A slow upstream holds a request open across a policy swap.
    let dir = TempDir::new("inflight");
    let slow = MockUpstream::start(|_| {
        Reply::Sse(vec![
            SseStep::Pause(Duration::from_millis(600)),
            SseStep::Data(chunk(FLASH, json!({"content": "late"}), Some("stop")).to_string()),
            SseStep::Raw("data: [DONE]\n\n".into()),
        ])
    })
    .await;
    std::fs::copy(component("flash-first"), dir.path("policy.wasm")).unwrap();
    let toml = watched_server_toml(&dir.path("cache"))
        + &upstream_toml("main", &slow.url(), &[FLASH, PRO], "")
        + "[policies.p]\npath = \"policy.wasm\"\n"
        + &tenant_toml("a", KEY_A, "p", &[FLASH, PRO], "");
    std::fs::write(dir.path("config.toml"), toml).unwrap();
    let gw = Arc::new(start_gateway_from_file(&dir.path("config.toml")).await);
    let old = header_of("flash-first");
    let in_flight = {
        let gw = gw.clone();
        tokio::spawn(async move {
            chat(&gw, KEY_A, &json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await
        })
    };
    // In flight: decided on the old version and sent upstream.
    eventually(
        "the request to reach the upstream",
        Duration::from_secs(10),
        || async { slow.count() == 1 },
    )
    .await;
    let g = gw.generation().await;
    replace_file(
        &dir.path("policy.wasm"),
        &std::fs::read(component("static-route")).unwrap(),
    );
    settle_generation(&gw, g).await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-switchyard-policy"), Some(old.as_str()));
    assert_eq!(
        sse_data(&r.body).last().map(String::as_str),
        Some("[DONE]"),
        "the stream finished normally"
    );
}
