//! Browser harness: a real headless Chromium driven through WebDriver, for the `/demo` page.
//!
//! [`Chromedriver`] starts Debian's `chromedriver` on a free port (in its own process group,
//! so that dropping it ends chromedriver and the browsers it started, by that group's id) and
//! opens [`Browser`] sessions on it with fantoccini, each with a fresh profile directory.
//! Chromium and chromedriver are required: when they are missing the test fails and says to
//! run `.ci/test`, which installs them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// How long a page may take to reach an expected state.
pub const BROWSER_WAIT: Duration = Duration::from_secs(20);

/// Chromium flags for a headless run as root in a container, without network side traffic.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
];

/// `name` in `$PATH`, if it is there.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The repository's `target/` directory (the parent of `CARGO_TARGET_TMPDIR`).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

pub struct Chromedriver {
    child: Child,
    port: u16,
    chromium: PathBuf,
    /// Profile directories of the sessions, removed on drop.
    profiles: Vec<PathBuf>,
}

impl Chromedriver {
    /// Starts chromedriver and waits until it answers `/status`. Panics (failing the test)
    /// when chromium or chromedriver is not installed.
    pub async fn start() -> Self {
        let chromium = find_in_path("chromium").or_else(|| find_in_path("chromium-browser"));
        let driver = find_in_path("chromedriver");
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            panic!(
                "the browser test needs chromium and chromedriver in PATH and they are missing: \
                 run .ci/test (it installs them: apt-get install chromium chromium-driver)"
            );
        };
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").expect("find a free port");
            probe.local_addr().expect("local addr").port()
        };
        let log = std::fs::File::create(target_dir().join(format!("chromedriver-{port}.log")))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        let driver = Self { child, port, chromium, profiles: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = awc::Client::new().get(format!("{}/status", driver.url())).send().await;
            if let Ok(mut resp) = status {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if body["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready on port {port}");
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new browser session with its own fresh profile.
    pub async fn browser(&mut self) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "danmu-chromium-{}-{}-{}",
            std::process::id(),
            self.port,
            self.profiles.len()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create a chromium profile directory");
        self.profiles.push(profile.clone());
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": self.chromium, "args": args },
        });
        let Value::Object(caps) = caps else { unreachable!("a JSON object literal") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url())
            .await
            .expect("open a chromium session through chromedriver");
        Browser { client }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // chromedriver leads its own process group (see start); the browsers it launched are
        // in it too. End that group by its id, then reap chromedriver.
        let pgid = self.child.id();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// One browser session (one tab).
pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Types `text` into the (cleared) input `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        input.clear().await.unwrap_or_else(|e| panic!("clear {css}: {e}"));
        input.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find {css}: {e}"));
        el.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The value of the JavaScript expression `expr` in the page.
    pub async fn eval(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("evaluate {expr}: {e}"))
    }

    /// Polls `expr` until it is truthy (not false/null/0/""/[]); answers its value. Fails with
    /// `what` and the last value after [`BROWSER_WAIT`].
    pub async fn wait_until(&self, what: &str, expr: &str) -> Value {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            let value = self.eval(expr).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
                Value::Bool(true) => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let log = self
                    .eval("document.getElementById('chat-log') ? document.getElementById('chat-log').innerText : ''")
                    .await;
                panic!("timed out waiting for {what}; last value {value}; chat log:\n{}", log.as_str().unwrap_or(""));
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot: {e}"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
