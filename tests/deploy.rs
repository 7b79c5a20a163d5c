//! The deployment files of `deploy/` (docs/deploying.md): no container engine runs here, so
//! these tests check what can be checked without one. Every YAML file parses; the Dockerfile
//! builds in one stage and runs from a slim one as a non-root user; the Kubernetes manifests and
//! the compose file probe the paths and ports the broker serves, hold together (selectors,
//! named ports, mounts, grace period against the drain delay), and name only environment
//! variables the broker reads: their configuration is started for real, with those variables,
//! and probed at the manifests' paths.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::live::RedisServer;
use common::ops::{free_port, BrokerProcess, TempDir};
use yaml_rust2::{Yaml, YamlLoader};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

fn load(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("deploy/{path} is not YAML: {e}"))
}

/// `yaml` with its merge keys (`<<: *anchor`) resolved, as compose reads them (yaml-rust2 keeps
/// `<<` as a plain key).
fn merged(yaml: &Yaml) -> Yaml {
    match yaml {
        Yaml::Hash(hash) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            if let Some(Yaml::Hash(base)) = hash.get(&Yaml::String("<<".into())).map(merged) {
                out.extend(base);
            }
            for (key, value) in hash {
                if key.as_str() != Some("<<") {
                    out.insert(key.clone(), merged(value));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.iter().map(merged).collect()),
        other => other.clone(),
    }
}

fn text(yaml: &Yaml) -> &str {
    yaml.as_str().unwrap_or_else(|| panic!("expected text, got {yaml:?}"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read deploy/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_yaml_file_of_deploy_parses() {
    let yamls: Vec<PathBuf> = files_under(&deploy(""))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    assert!(yamls.len() >= 8, "{yamls:?}");
    for path in yamls {
        let docs = YamlLoader::load_from_str(&std::fs::read_to_string(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(docs.iter().all(|d| !d.is_null() && !d.is_badvalue()), "{}: empty", path.display());
    }
    // The broker's own configurations load as the broker loads them.
    for config in [k8s_config(), read("compose/config.yaml")] {
        danmu_broker::config::from_yaml(&config).unwrap_or_else(|e| panic!("{e}\n{config}"));
    }
}

/// The `config.yaml` of the ConfigMap.
fn k8s_config() -> String {
    let docs = load("k8s/configmap.yaml");
    text(&docs[0]["data"]["config.yaml"]).to_string()
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_from_a_slim_one_as_a_non_root_user() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS build"), "{froms:?}");
    assert!(froms[1].contains("-slim"), "a slim runtime: {froms:?}");
    let runtime: Vec<&&str> = lines.iter().skip_while(|l| **l != *froms[1]).collect();
    assert!(runtime.iter().any(|l| l.starts_with("COPY --from=build") && l.contains("danmu-broker")), "{runtime:?}");
    let user = runtime.iter().find_map(|l| l.strip_prefix("USER ")).expect("a USER in the runtime stage");
    assert!(user.split(':').all(|id| id.parse::<u32>().is_ok_and(|id| id > 0)), "a numeric non-root user: {user}");
    assert!(dockerfile.contains("cargo build --release --locked --bin danmu-broker"), "{dockerfile}");
    // The ports it exposes are the ones the Kubernetes configuration listens on.
    let config = danmu_broker::config::from_yaml(&k8s_config()).expect("k8s config");
    let exposed = runtime.iter().find_map(|l| l.strip_prefix("EXPOSE ")).expect("EXPOSE");
    let internal = config.server.internal.expect("server.internal").port;
    assert_eq!(exposed, format!("{} {internal}", config.server.port));
    // The config path of CMD is where the ConfigMap and the compose volume mount it.
    assert!(dockerfile.contains(r#"CMD ["--config", "/etc/danmu-broker/config.yaml"]"#), "{dockerfile}");
    let ignored = read("Dockerfile.dockerignore");
    assert!(ignored.lines().any(|l| l.trim() == "target"), "the build context leaves target/ out");
}

/// A value for the environment variable `name` that the broker takes on a public address.
fn value_for(name: &str) -> String {
    match name {
        "DANMU__BIGO__ACCOUNTS" => "bigoUser1:deploy-test-password".into(),
        "DANMU__STORE__NODE_ID" => "deploy-test-node".into(),
        _ => format!("deploy-test-{}", "x".repeat(32)),
    }
}

/// Starts the binary with `config` and the variables `names` (each with [`value_for`]), on free
/// ports (`server.port`, and `server.internal.port` when set) and on `redis`; answers the
/// process and its public port. The variables must be ones the broker reads: an unknown one
/// stops start-up (`deny_unknown_fields`).
async fn start_with(config: &str, names: &BTreeSet<String>, redis: &RedisServer) -> (BrokerProcess, u16, u16) {
    let (port, internal_port) = (free_port(), free_port());
    let dir = TempDir::new("deploy");
    let path = dir.path("config.yaml");
    std::fs::write(&path, config).expect("write config");
    let has_internal = danmu_broker::config::from_yaml(config).expect("config").server.internal.is_some();
    let mut env: Vec<(String, String)> = names.iter().map(|n| (n.clone(), value_for(n))).collect();
    // The test's own overrides: where to listen and which Redis.
    env.push(("DANMU__SERVER__PORT".into(), port.to_string()));
    if has_internal {
        env.push(("DANMU__SERVER__INTERNAL__PORT".into(), internal_port.to_string()));
    }
    env.push(("DANMU__STORE__REDIS_URL".into(), redis.url()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // The harness waits for /healthz, which is the internal listener's when server.internal is set.
    let wait_on = if has_internal { internal_port } else { port };
    let process = BrokerProcess::start_file(dir, &path, &env, wait_on).await;
    (process, port, internal_port)
}

async fn status(port: u16, path: &str) -> Option<u16> {
    let client = awc::Client::builder().timeout(Duration::from_secs(1)).finish();
    client.get(format!("http://127.0.0.1:{port}{path}")).send().await.ok().map(|r| r.status().as_u16())
}

async fn until_status(port: u16, path: &str, expected: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(port, path).await != Some(expected) {
        assert!(Instant::now() < deadline, "{path} on {port} never answered {expected}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn the_kubernetes_manifests_probe_what_the_broker_serves_and_name_only_variables_it_reads() {
    let mut by_kind: BTreeMap<String, Yaml> = BTreeMap::new();
    for file in ["configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "secret.example.yaml"] {
        for doc in load(&format!("k8s/{file}")) {
            by_kind.insert(text(&doc["kind"]).to_string(), doc);
        }
    }
    let kustomization = &load("k8s/kustomization.yaml")[0];
    for resource in kustomization["resources"].as_vec().expect("resources") {
        assert!(deploy(&format!("k8s/{}", text(resource))).is_file(), "kustomization lists {resource:?}");
    }
    let config_text = k8s_config();
    let config = danmu_broker::config::from_yaml(&config_text).expect("the ConfigMap's config");
    let deployment = &by_kind["Deployment"];
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&by_kind["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&by_kind["Service"]["spec"]["selector"], labels);
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(), Some(0));

    let container = &pod["spec"]["containers"][0];
    let ports: BTreeMap<&str, i64> = container["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .map(|p| (text(&p["name"]), p["containerPort"].as_i64().expect("containerPort")))
        .collect();
    let internal = config.server.internal.as_ref().expect("server.internal").port;
    assert_eq!(ports.get("http"), Some(&i64::from(config.server.port)), "{ports:?}");
    assert_eq!(ports.get("ops"), Some(&i64::from(internal)), "{ports:?}");
    for port in by_kind["Service"]["spec"]["ports"].as_vec().expect("service ports") {
        assert!(ports.contains_key(text(&port["targetPort"])), "Service targetPort {port:?}");
    }
    let probe = |name: &str| -> (String, i64) {
        let get = &container[name]["httpGet"];
        (text(&get["path"]).to_string(), ports[text(&get["port"])])
    };
    let public = i64::from(config.server.port);
    assert_eq!(probe("livenessProbe"), ("/livez".to_string(), public));
    assert_eq!(probe("readinessProbe"), ("/readyz".to_string(), public));
    assert_eq!(probe("startupProbe"), ("/livez".to_string(), public));
    // The grace period covers the drain delay and the shutdown after it (10 s at most).
    let grace_s = pod["spec"]["terminationGracePeriodSeconds"].as_i64().expect("terminationGracePeriodSeconds");
    assert!(grace_s * 1000 >= config.server.drain_delay_ms as i64 + 10_000, "grace {grace_s} s");
    assert!(config.server.drain_delay_ms > 0, "a drain delay behind the endpoints controller");
    // Non-root, as the image.
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"].as_i64(), Some(10001));
    // The ConfigMap is mounted where --config reads it.
    let args: Vec<&str> = container["args"].as_vec().expect("args").iter().map(text).collect();
    let mount = text(&container["volumeMounts"][0]["mountPath"]);
    assert_eq!(args, ["--config", &format!("{mount}/config.yaml") as &str]);
    assert_eq!(text(&by_kind["ConfigMap"]["metadata"]["name"]), text(&pod["spec"]["volumes"][0]["configMap"]["name"]));

    // Every variable the pod gets: its own env and the Secret's keys (envFrom).
    let secret = &by_kind["Secret"];
    let secret_ref = text(&container["envFrom"][0]["secretRef"]["name"]);
    assert_eq!(secret_ref, text(&secret["metadata"]["name"]));
    let mut names: BTreeSet<String> =
        container["env"].as_vec().expect("env").iter().map(|e| text(&e["name"]).to_string()).collect();
    names.extend(secret["stringData"].as_hash().expect("stringData").keys().map(|k| text(k).to_string()));
    assert!(names.iter().all(|n| n.starts_with("DANMU__")), "{names:?}");
    for secret in ["DANMU__AUTH__JWT_SECRET", "DANMU__ADMIN__KEY", "DANMU__BIGO__ACCOUNTS", "DANMU__LIVE__PUSH_KEY"] {
        assert!(names.contains(secret), "{secret} missing from {names:?}");
    }

    // Started for real with them: it takes every variable, listens on 0.0.0.0 without a
    // refusal, and answers the probes where the manifest asks; /readyz turns 503 on SIGTERM.
    let redis = RedisServer::start();
    let (mut broker, port, internal_port) = start_with(&config_text, &names, &redis).await;
    assert_eq!(status(port, "/livez").await, Some(200));
    until_status(port, "/readyz", 200).await;
    assert_eq!(status(internal_port, "/metrics").await, Some(200), "metrics on the ops port");
    assert!(broker.log_text().contains("node deploy-test-node"), "{}", broker.log_text());
    broker.terminate();
    until_status(port, "/readyz", 503).await;
    assert!(broker.wait_exit(Duration::from_secs(20)).await.is_some_and(|s| s.success()), "{}", broker.log_text());
}

#[actix_rt::test]
async fn the_compose_file_runs_two_nodes_on_redis_behind_a_load_balancer_that_checks_readyz() {
    let compose = merged(&load("compose/compose.yaml")[0]);
    let services = &compose["services"];
    for service in ["redis", "broker-a", "broker-b", "lb"] {
        assert!(!services[service].is_badvalue(), "service {service} missing");
    }
    let config_text = read("compose/config.yaml");
    let config = danmu_broker::config::from_yaml(&config_text).expect("compose config");
    let dotenv = read("compose/.env.example");
    let mut node_ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    for broker in ["broker-a", "broker-b"] {
        let service = &services[broker];
        assert_eq!(text(&service["build"]["dockerfile"]), "deploy/Dockerfile");
        let volumes: Vec<&str> = service["volumes"].as_vec().expect("volumes").iter().map(text).collect();
        assert_eq!(volumes, ["./config.yaml:/etc/danmu-broker/config.yaml:ro"]);
        let env = service["environment"].as_hash().expect("environment");
        for (name, value) in env {
            let (name, value) = (text(name), text(value));
            assert!(name.starts_with("DANMU__"), "{name}");
            names.insert(name.to_string());
            // ${VAR:?...} values come from .env: the example names each.
            if let Some(var) = value.strip_prefix("${").and_then(|v| v.split([':', '}']).next()) {
                assert!(dotenv.lines().any(|l| l.starts_with(&format!("{var}="))), "{var} missing from .env.example");
            }
        }
        node_ids.insert(text(&env[&Yaml::String("DANMU__STORE__NODE_ID".into())]).to_string());
        let check = service["healthcheck"]["test"]
            .as_vec()
            .expect("healthcheck")
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            check.contains(&format!("/dev/tcp/127.0.0.1/{}", config.server.port)) && check.contains("GET /readyz"),
            "{check}"
        );
        let grace = text(&service["stop_grace_period"]).trim_end_matches('s').parse::<u64>().expect("seconds");
        assert!(grace * 1000 >= config.server.drain_delay_ms + 10_000, "stop_grace_period {grace} s");
    }
    assert_eq!(node_ids.len(), 2, "each node its own store.node_id: {node_ids:?}");
    assert_eq!(config.store.kind, danmu_broker::config::StoreKind::Redis);
    assert!(config.store.redis_url.contains("//redis:"), "the compose service's name: {}", config.store.redis_url);
    // HAProxy sends traffic to both nodes' port and takes a node out when /readyz fails.
    let haproxy = read("compose/haproxy.cfg");
    assert!(haproxy.contains("option httpchk GET /readyz") && haproxy.contains("http-check expect status 200"));
    for broker in ["broker-a", "broker-b"] {
        assert!(haproxy.contains(&format!("server {broker} {broker}:{} check", config.server.port)), "{haproxy}");
    }
    let lb_ports: Vec<&str> = services["lb"]["ports"].as_vec().expect("lb ports").iter().map(text).collect();
    assert_eq!(lb_ports, ["8080:8080"]);
    assert!(config.server.public_url.ends_with(":8080"), "end_point names the load balancer");

    // broker-a's configuration and variables, started for real.
    let redis = RedisServer::start();
    let (mut broker, port, _) = start_with(&config_text, &names, &redis).await;
    until_status(port, "/readyz", 200).await;
    assert_eq!(status(port, "/livez").await, Some(200));
    broker.terminate();
    assert!(broker.wait_exit(Duration::from_secs(20)).await.is_some_and(|s| s.success()), "{}", broker.log_text());
}
