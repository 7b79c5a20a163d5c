//! The OpenAPI document (`GET /iapi/openapi.json`): it names every route that
//! `src/http/mod.rs` wires, every operation it names is served, and it follows the config
//! (WebSocket paths, the demo). `.ci/openapi` validates the same document against the
//! OpenAPI specification.

mod common;

use common::TestBroker;
use danmu_broker::config::Config;
use serde_json::Value;

/// (method, path) of every `.route(..)` in `src/http/mod.rs`, the two configurable WebSocket
/// paths at their defaults.
fn routes_of_the_http_module() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).expect("mod.rs");
    let defaults = Config::default();
    let mut routes = Vec::new();
    for call in source.split(".route(").skip(1) {
        let (path, rest) = call.split_once(',').expect("route(path, ...)");
        let path = match path.trim() {
            "&bigo_path" => defaults.bigo.path.clone(),
            "&client_path" => defaults.client.path.clone(),
            literal => literal.trim_matches('"').to_string(),
        };
        let method = rest.trim_start().strip_prefix("web::").and_then(|r| r.split_once("()")).expect("web::method()").0;
        routes.push((method.to_string(), path));
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

#[actix_rt::test]
async fn every_operation_of_the_document_is_served() {
    let broker = TestBroker::start().await;
    let doc = document(&broker).await;
    let client = awc::Client::builder().disable_redirects().finish();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let url = broker.http_url(&path.replace("{room_id}", "1"));
            let request = match method.as_str() {
                "get" => client.get(url),
                "post" => client.post(url),
                other => panic!("{other} {path}: a method the broker does not use"),
            };
            let mut resp = request.send().await.expect("request");
            let body = resp.body().limit(1 << 20).await.expect("body");
            let status = resp.status().as_u16();
            // An unrouted request gets actix's own empty 404, a wrong method 405.
            assert!(status != 405 && !(status == 404 && body.is_empty()), "{method} {path}: {status}, not routed");
            operations += 1;
        }
    }
    assert!(operations >= 18, "{operations} operations");
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
