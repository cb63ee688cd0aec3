//! A real headless Chromium driven through the DevTools protocol, for the dashboard's tests.
//!
//! Chromium runs with `--remote-debugging-pipe`: it reads commands from its file descriptor 3
//! and writes answers and events to 4, each message JSON ended by a NUL byte. A shell gives it
//! the two ends (`3<&0 4>&1`), so no WebSocket client is needed. Chromium is Debian's
//! `chromium` (`scripts/test` installs it); `WEIR_CHROMIUM` names another binary.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// How long one DevTools command may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

pub(crate) struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium headless with one page of `width` × `height` CSS pixels.
    pub(crate) fn launch(width: u32, height: u32) -> Browser {
        let chromium = std::env::var("WEIR_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let found = Command::new("sh")
            .arg("-c")
            .arg("command -v \"$0\"")
            .arg(&chromium)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the dashboard's tests need a headless Chromium: '{chromium}' was not found \
             (scripts/test installs Debian's chromium; WEIR_CHROMIUM names another binary)"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(
                "exec \"$0\" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
                 --no-first-run --no-default-browser-check --disable-extensions \
                 --hide-scrollbars --user-data-dir=\"$1\" --remote-debugging-pipe \
                 3<&0 4>&1 0</dev/null 1>&2",
            )
            .arg(&chromium)
            .arg(profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        let commands = child.stdin.take().unwrap();
        let mut answers = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while answers.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop_if(|b| *b == 0);
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    return;
                }
                buf.clear();
            }
        });
        let mut browser = Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Page.enable", json!({}));
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser
    }

    /// Sends a command (to the page once one is attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = self.session.clone().into();
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        self.commands.flush().unwrap();
        let deadline = Instant::now() + ANSWER_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if m["id"] == id => {
                    assert!(m.get("error").is_none(), "{method}: {}", m["error"]);
                    return m["result"].clone();
                }
                // Events and other answers.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer {method} within {ANSWER_WITHIN:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium exited during {method}"),
            }
        }
    }

    /// Opens `url` and waits until the document has loaded.
    pub(crate) fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_until(
            "the page loads",
            Duration::from_secs(20),
            "document.readyState === 'complete'",
        );
    }

    /// The value of a JavaScript expression in the page (awaited if it is a promise).
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it is `true`; panics after `timeout` with the page's text.
    pub(crate) fn wait_until(&mut self, what: &str, timeout: Duration, expression: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(&format!("Boolean({expression})")) == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {what} ({expression}); the page shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a PNG of the page's viewport to `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
