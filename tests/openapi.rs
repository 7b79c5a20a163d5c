//! The OpenAPI document (`GET /iapi/openapi.json`): it names every route that
//! `src/http/mod.rs` wires, every operation it names is served, and it follows the config
//! (WebSocket paths, the demo). With `server.internal` every operation is served by exactly
//! one listener, the operator ones (`http::is_operator_path`) by the internal one, but for the
//! probes, served by both. A known path asked with a method it does not take answers 405 with
//! `Allow`.
//! `.ci/openapi` validates the same document against the OpenAPI specification.

mod common;

use common::TestBroker;
use danmu_broker::config::{Config, InternalConfig};
use danmu_broker::http::{is_operator_path, is_probe_path};
use serde_json::Value;

/// (method, path) of every route in `src/http/mod.rs`: each `web::resource(path)` and the
/// `.route(web::method()...)` calls that follow it, the two configurable WebSocket paths at
/// their defaults.
fn routes_of_the_http_module() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).expect("mod.rs");
    let defaults = Config::default();
    let mut routes = Vec::new();
    for resource in source.split("web::resource(").skip(1) {
        let (path, rest) = resource.split_once(')').expect("resource(path)");
        let path = match path.trim() {
            "bigo_path" => defaults.bigo.path.clone(),
            "client_path" => defaults.client.path.clone(),
            literal => literal.trim_matches('"').to_string(),
        };
        for route in rest.split(".route(web::").skip(1) {
            let method = route.split_once("()").expect("web::method()").0;
            routes.push((method.to_string(), path.clone()));
        }
    }
    routes
}

async fn document(broker: &TestBroker) -> Value {
    let (status, doc) = broker.get_json("/iapi/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0", "{doc}");
    doc
}

#[actix_rt::test]
async fn the_document_lists_every_route_of_the_http_module() {
    let routes = routes_of_the_http_module();
    assert!(routes.len() >= 18, "the parse of mod.rs found only {routes:?}");
    let broker = TestBroker::start().await;
    let doc = document(&broker).await;
    for (method, path) in &routes {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not in the document");
        assert!(operation["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} has no summary");
        assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no answers");
    }
}

/// Whether `method path` is routed at `base` (`http://host:port`): an unrouted request gets
/// actix's own empty 404, a wrong method 405.
async fn is_served(base: &str, method: &str, path: &str) -> bool {
    let client = awc::Client::builder().disable_redirects().finish();
    let url = format!("{base}{}", path.replace("{room_id}", "1"));
    let request = match method {
        "get" => client.get(url),
        "post" => client.post(url),
        other => panic!("{other} {path}: a method the broker does not use"),
    };
    let mut resp = request.send().await.expect("request");
    let body = resp.body().limit(1 << 20).await.expect("body");
    let status = resp.status().as_u16();
    status != 405 && !(status == 404 && body.is_empty())
}

/// (method, path) of every operation of `doc`.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push((method.clone(), path.clone()));
        }
    }
    operations
}

#[actix_rt::test]
async fn every_operation_of_the_document_is_served() {
    let broker = TestBroker::start().await;
    let operations = operations(&document(&broker).await);
    for (method, path) in &operations {
        assert!(is_served(&broker.http_url(""), method, path).await, "{method} {path}: not routed");
    }
    assert!(operations.len() >= 18, "{} operations", operations.len());
}

#[actix_rt::test]
async fn with_server_internal_each_operation_is_served_by_one_listener_the_operators_by_the_internal_one() {
    let broker =
        TestBroker::start_with(|c| c.server.internal = Some(InternalConfig { host: "127.0.0.1".into(), port: 0 }))
            .await;
    let internal = format!("http://{}", broker.internal_addr.expect("the internal listener"));
    let (status, doc) = broker.get_json("/iapi/openapi.json").await;
    assert_eq!((status, doc), (404, Value::Null), "the document on the public listener");
    let mut answer = awc::Client::new().get(format!("{internal}/iapi/openapi.json")).send().await.expect("GET");
    let doc: Value = answer.json().limit(1 << 20).await.expect("the document");
    let operations = operations(&doc);
    let operator: Vec<_> = operations.iter().filter(|(_, path)| is_operator_path(path)).collect();
    assert_eq!(operator.len(), 5, "healthz, metrics, this document, ban, notice: {operator:?}");
    for (method, path) in &operations {
        let on_public = is_served(&broker.http_url(""), method, path).await;
        let on_internal = is_served(&internal, method, path).await;
        // The probes on both (orchestrators probe the traffic's port), the rest on one.
        let expected =
            if is_probe_path(path) { (true, true) } else { (!is_operator_path(path), is_operator_path(path)) };
        assert_eq!((on_public, on_internal), expected, "{method} {path}");
    }
}

#[actix_rt::test]
async fn the_document_follows_the_configured_websocket_paths_and_the_demo() {
    let broker = TestBroker::start().await;
    assert!(document(&broker).await["paths"]["/demo/token"].is_null(), "demo off, /demo/token listed");

    let broker = TestBroker::start_with(|c| {
        c.demo.enabled = true;
        c.client.path = "/ws/app".into();
        c.bigo.path = "/ingress/bigo".into();
    })
    .await;
    let paths = &document(&broker).await["paths"];
    for path in ["/demo/token", "/ws/app", "/ingress/bigo"] {
        assert!(paths[path].is_object(), "{path} missing: {paths}");
    }
    for path in ["/iapi/websocket", "/bigo/ws"] {
        assert!(paths[path].is_null(), "{path} listed though not served");
    }
}

#[actix_rt::test]
async fn a_known_path_with_another_method_answers_405_naming_the_allowed_ones() {
    let broker = TestBroker::start_with(|c| c.demo.enabled = true).await;
    let client = awc::Client::new();
    for (method, path, allow) in [
        ("DELETE", "/iapi/rooms", "GET, POST"),
        ("PUT", "/iapi/rooms/1", "GET"),
        ("GET", "/iapi/rooms/1/live", "POST"),
        ("TRACE", "/healthz", "GET"),
        ("POST", "/readyz", "GET"),
        ("GET", "/demo/token", "POST"),
    ] {
        let request = client.request(method.parse().expect("method"), broker.http_url(path));
        let resp = request.send().await.expect("request");
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(resp.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
    }
    let resp = client.get(broker.http_url("/no/such/path")).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 404);
}

#[actix_rt::test]
async fn unreadable_queries_and_bodies_answer_json_as_documented() {
    let broker = TestBroker::start_with(|c| c.demo.enabled = true).await;
    let client = awc::Client::new();
    for (path, body) in [("/demo/token", ""), ("/demo/token", "null"), ("/demo/token", "{\"user_id\": 5}")] {
        let mut resp =
            client.post(broker.http_url(path)).content_type("application/json").send_body(body).await.expect("POST");
        assert_eq!(resp.status().as_u16(), 400, "{path} {body:?}");
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{path} {body:?}"
        );
        let answer: Value = resp.json().await.expect("a JSON body");
        assert_eq!(answer["error_code"], 1001, "{answer}");
    }
    for path in ["/healthz", "/livez", "/readyz"] {
        let resp = client.get(broker.http_url(path)).send().await.expect("GET");
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/plain; charset=utf-8"),
            "{path}"
        );
    }
}

/// `method path` on `broker` with `user`'s token (and the admin key), with a JSON `body`:
/// the status.
async fn status_of(broker: &TestBroker, method: &str, path: &str, body: Option<Value>) -> u16 {
    let client = awc::Client::new();
    let request = client
        .request(method.parse().expect("method"), broker.http_url(path))
        .insert_header(("Authorization", format!("Bearer {}", broker.token("owner"))))
        .insert_header(("X-Admin-Key", broker.config.admin.key.clone()));
    let resp = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    resp.expect("request").status().as_u16()
}

/// The limits the document states are the broker's own, on both sides of each edge (the
/// schema fuzzer of `.ci/fuzz` checks the rest at random).
#[actix_rt::test]
async fn the_limits_the_document_states_are_the_ones_the_broker_holds_to() {
    let broker = TestBroker::start_with(|c| {
        c.demo.enabled = true;
        c.admin.key = "test-admin-key".into();
    })
    .await;
    let doc = document(&broker).await;
    let param = |path: &str, method: &str, name: &str| -> Value {
        let params = doc["paths"][path][method]["parameters"].as_array().cloned().unwrap_or_default();
        params.into_iter().find(|p| p["name"] == name).map(|p| p["schema"].clone()).unwrap_or(Value::Null)
    };
    assert_eq!(
        (
            param("/iapi/rooms", "get", "page")["minimum"].as_u64(),
            param("/iapi/rooms", "get", "page")["maximum"].as_u64()
        ),
        (Some(1), Some(9007199254740991))
    );
    assert_eq!(param("/iapi/rooms", "get", "page_size")["maximum"].as_u64(), Some(100));
    assert_eq!(param("/iapi/rooms/{room_id}", "get", "room_id")["minimum"].as_u64(), Some(1));
    assert_eq!(param("/iapi/websocket/end_point", "get", "timestamp")["pattern"], "^[0-9]{1,15}$");
    for path in [
        "/iapi/rooms",
        "/iapi/rooms/{room_id}/game",
        "/iapi/admin/rooms/{room_id}/notice",
        "/callback/stream",
        "/demo/token",
    ] {
        assert_eq!(doc["paths"][path]["post"]["requestBody"]["required"], true, "{path}: a body is required");
    }
    let create = &doc["components"]["schemas"]["CreateBody"];
    assert_eq!(
        (create["required"].clone(), create["properties"]["title"]["maxLength"].as_u64()),
        (serde_json::json!(["title"]), Some(100))
    );

    for (page, expected) in [("0", 400), ("1", 200), ("9007199254740991", 200), ("9007199254740992", 400)] {
        assert_eq!(status_of(&broker, "GET", &format!("/iapi/rooms?page={page}"), None).await, expected, "page {page}");
    }
    for (size, expected) in [("0", 400), ("100", 200), ("101", 400)] {
        assert_eq!(
            status_of(&broker, "GET", &format!("/iapi/rooms?page_size={size}"), None).await,
            expected,
            "page_size {size}"
        );
    }
    for (id, expected) in [("0", 400), ("9007199254740991", 404), ("9007199254740992", 400), ("x", 400)] {
        assert_eq!(status_of(&broker, "GET", &format!("/iapi/rooms/{id}"), None).await, expected, "room_id {id}");
    }
    // Titles are counted in characters, and need something besides spaces and line breaks.
    for (title, expected) in
        [(" \t\n".to_string(), 400), ("é".repeat(100), 200), ("é".repeat(101), 400), ("\u{1c}".into(), 200)]
    {
        let body = serde_json::json!({"title": title});
        assert_eq!(status_of(&broker, "POST", "/iapi/rooms", Some(body)).await, expected, "title {title:?}");
    }
    assert_eq!(status_of(&broker, "POST", "/iapi/rooms", Some(Value::Null)).await, 400, "a null body");
    for (user_id, expected) in [("é".repeat(64), 200), ("é".repeat(65), 400), (" \r ".into(), 400)] {
        let body = serde_json::json!({"user_id": user_id});
        assert_eq!(status_of(&broker, "POST", "/demo/token", Some(body)).await, expected, "user_id {user_id:?}");
    }
    // expire_time: digits or a number not below 0, nothing else.
    let room = broker.http_url("/iapi/rooms");
    let mut created = awc::Client::new()
        .post(room)
        .insert_header(("Authorization", format!("Bearer {}", broker.token("owner"))))
        .send_json(&serde_json::json!({"title": "notices"}))
        .await
        .expect("create");
    let room_id = created.json::<Value>().await.expect("room")["room_id"].as_u64().expect("room_id");
    let notice = format!("/iapi/admin/rooms/{room_id}/notice");
    for (expire_time, expected) in [
        (serde_json::json!("1700000000"), 200),
        (serde_json::json!(1.5), 200),
        (serde_json::json!("AAA"), 400),
        (serde_json::json!(-1), 400),
        (Value::Null, 400),
    ] {
        let body = serde_json::json!({"content": "hello", "expire_time": expire_time});
        assert_eq!(status_of(&broker, "POST", &notice, Some(body)).await, expected, "expire_time {expire_time}");
    }
}
