//! End of DATA to the reply, in ms: SESSIONS sessions at once, N messages each, SIZE bytes.
//!
//! Usage: cargo bench --bench smtp_latency -- PORT SESSIONS N SIZE   ->  prints "p50 p99"
//!
//! One OS thread per session with blocking sockets and TCP_NODELAY: the client's own share of
//! the figure is a few microseconds, so what is measured is the server (a Python client with
//! its interpreter lock added milliseconds of its own at 20 sessions). Every read is bounded by
//! a 30 s timeout; the loop by N.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| a.parse().ok())
        .collect();
    let [port, sessions, n, size] = args[..] else {
        eprintln!("usage: smtp_latency PORT SESSIONS N SIZE");
        return;
    };
    let mut body = b"Subject: bench\r\n\r\n".to_vec();
    for _ in 0..size / 78 {
        body.extend_from_slice(&[b'x'; 76]);
        body.extend_from_slice(b"\r\n");
    }
    let threads: Vec<_> = (0..sessions)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || session(port as u16, n, &body))
        })
        .collect();
    let mut times: Vec<f64> = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Ok(mine)) => times.extend(mine),
            Ok(Err(e)) => {
                eprintln!("smtp_latency: {e}");
                std::process::exit(1);
            }
            Err(_) => std::process::exit(1),
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).saturating_sub(1)];
    println!("{:.2} {:.2}", at(0.5), at(0.99));
}

fn session(port: u16, n: usize, body: &[u8]) -> Result<Vec<f64>, String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut reply = || -> Result<String, String> {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("connection closed".into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
    };
    let expect = |got: String, code: &str| {
        if got.starts_with(code) {
            Ok(())
        } else {
            Err(format!("expected {code}, got {got:?}"))
        }
    };
    let mut send = |bytes: &[u8]| w.write_all(bytes).map_err(|e| e.to_string());
    expect(reply()?, "220")?;
    send(b"EHLO bench.test\r\n")?;
    expect(reply()?, "250")?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        send(b"MAIL FROM:<bench@org.test>\r\nRCPT TO:<p@partner.test>\r\nDATA\r\n")?;
        expect(reply()?, "250")?;
        expect(reply()?, "250")?;
        expect(reply()?, "354")?;
        send(body)?;
        let t0 = Instant::now();
        send(b".\r\n")?;
        expect(reply()?, "250")?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    send(b"QUIT\r\n")?;
    Ok(times)
}
