//! A real HTTP server on 127.0.0.1 standing in for the weather API in tests: it answers each
//! request with what `reply` says for its query and the number of requests seen for that
//! query's `latitude` (so a store can fail twice, then answer). Bodies are responses in
//! Open-Meteo's format under `shared/tests/fixtures/open-meteo/`.

#![allow(dead_code)] // each test binary that includes this module uses a part of it

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::io::{Read, Write};
use std::net::TcpListener;

/// One answer: status, body, and how long to wait before sending it.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Reply {
            status: 200,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Reply {
            status,
            ..Reply::ok(body)
        }
    }
}

/// A recorded response body.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../shared/tests/fixtures/open-meteo/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The server: its base URL, and the requests it has seen per latitude.
pub struct WeatherApi {
    pub url: String,
    pub requests: Arc<Mutex<HashMap<String, usize>>>,
}

/// The `latitude` parameter of a request line's query.
fn latitude(query: &str) -> String {
    query
        .split('&')
        .find_map(|p| p.strip_prefix("latitude="))
        .unwrap_or_default()
        .to_string()
}

impl WeatherApi {
    /// Starts serving on a free port of 127.0.0.1, a thread per connection, until the test
    /// process ends.
    pub fn start(reply: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> WeatherApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/forecast", listener.local_addr().unwrap());
        let requests: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (seen, reply) = (requests.clone(), Arc::new(reply));
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                let (seen, reply) = (seen.clone(), reply.clone());
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let target = text.split(' ').nth(1).unwrap_or_default();
                    let query = target.split_once('?').map_or("", |(_, q)| q).to_string();
                    let count = {
                        let mut seen = seen.lock().unwrap();
                        let count = seen.entry(latitude(&query)).or_insert(0);
                        *count += 1;
                        *count
                    };
                    let answer = reply(&query, count);
                    std::thread::sleep(answer.delay);
                    let head = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        answer.status,
                        answer.body.len()
                    );
                    let _ = socket.write_all(head.as_bytes());
                    let _ = socket.write_all(answer.body.as_bytes());
                });
            }
        });
        WeatherApi { url, requests }
    }

    /// Requests seen for a latitude (as the query gives it).
    pub fn requests_for(&self, latitude: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(latitude)
            .copied()
            .unwrap_or(0)
    }
}
