//! SMTP peers and clients: smtp-sink, a raw SMTP client, swaks, and the client slots that
//! route mail through the shared client Postfix to a test's own gateway.

use super::*;

/// Postfix's smtp-sink as the upstream MTA, dumping each message to its own file.
pub struct Sink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    pub fn start(extra: &[&str]) -> Sink {
        Sink::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> Sink {
        Sink::start_at(SocketAddr::from(([127, 0, 0, 1], port)), extra)
    }

    /// smtp-sink on `addr` (e.g. an MX host's own 127.0.3.x:25).
    pub fn start_at(addr: SocketAddr, extra: &[&str]) -> Sink {
        let port = addr.port();
        let bin = require("smtp-sink");
        let dir = scratch("sink");
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).unwrap();
        Command::new("chown")
            .arg("postfix")
            .arg(&dump)
            .status()
            .unwrap();
        let child = Command::new(bin)
            .args(["-u", "postfix", "-d"])
            .arg(format!("{}/%H%M%S.", dump.display()))
            .args(extra)
            .arg(addr.to_string())
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start smtp-sink");
        let up = wait_for(Duration::from_secs(15), || TcpStream::connect(addr).ok());
        assert!(up.is_some(), "smtp-sink did not start on {addr}");
        Sink { port, dir, child }
    }

    /// Every message dumped so far (smtp-sink writes them with LF line ends).
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("dump")) {
            for e in entries.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    out.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        out
    }

    /// Messages whose text contains `token`.
    pub fn with_token(&self, token: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.contains(token))
            .collect()
    }

    pub fn wait_token(&self, token: &str, n: usize, limit: Duration) -> Vec<String> {
        wait_for(limit, || {
            let m = self.with_token(token);
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| self.with_token(token))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A raw SMTP client for exact protocol tests.
pub struct Smtp {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Smtp {
    pub fn connect(port: u16) -> Smtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        Smtp::wrap(stream)
    }

    /// Connects from a given local address, e.g. 127.0.0.2, to test access control.
    pub fn connect_from(local: &str, port: u16) -> Smtp {
        let socket = socket2_bind(local);
        socket
            .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("connect");
        Smtp::wrap(socket.into())
    }

    fn wrap(stream: TcpStream) -> Smtp {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Smtp { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// One complete reply, all lines joined with '\n'; empty when the server closed.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            let done = line.len() < 4 || line.as_bytes()[3] != b'-';
            all.push_str(line.trim_end());
            if done {
                return all;
            }
            all.push('\n');
        }
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads the greeting and says EHLO; the EHLO reply.
    pub fn hello(&mut self) -> String {
        let greeting = self.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting}");
        self.cmd("EHLO client.test")
    }

    /// MAIL, RCPT for each recipient and DATA, each expected to succeed; the data is next.
    pub fn start_data(&mut self, from: &str, rcpts: &[&str]) {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "MAIL: {r}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert!(r.starts_with("250"), "RCPT: {r}");
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "DATA: {r}");
    }

    /// A whole transaction after EHLO (content dot-stuffed here); the end-of-data reply.
    pub fn send_message(&mut self, from: &str, rcpts: &[&str], content: &[u8]) -> String {
        self.start_data(from, rcpts);
        let mut stuffed = Vec::with_capacity(content.len() + 16);
        for line in content.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                stuffed.push(b'.');
            }
            stuffed.extend_from_slice(line);
        }
        self.send(&stuffed);
        self.send(b".\r\n");
        self.reply()
    }

    /// Whether the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

fn socket2_bind(local: &str) -> socket2::Socket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr: SocketAddr = format!("{local}:0").parse().unwrap();
    s.bind(&addr.into()).expect("bind local address");
    s
}

/// swaks over STARTTLS from the local address `from` to the gateway on `port`, logging in as
/// "ehr" with `mechanism` and `password`, sending a@org.test → b@partner.test with `extra`
/// arguments; its whole transcript.
pub fn swaks_login(
    port: u16,
    from: &str,
    mechanism: &str,
    password: &str,
    extra: &[&str],
) -> String {
    let server = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--server",
        &server,
        "--local-interface",
        from,
        "-tls",
        "--auth",
        mechanism,
        "--auth-user",
        "ehr",
        "--auth-password",
        password,
        "--to",
        "b@partner.test",
        "--from",
        "a@org.test",
    ];
    args.extend_from_slice(extra);
    swaks(&args)
}

/// Runs swaks with `args`; its whole transcript.
pub fn swaks(args: &[&str]) -> String {
    let bin = require("swaks");
    let out = Command::new(bin).args(args).output().expect("run swaks");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Gateways reachable through the client Postfix, one per test that needs one.
pub const SLOTS: u8 = 32;
static NEXT_SLOT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// A Sluis listen address the client Postfix routes to, and the recipient domain that does it.
pub fn client_slot() -> (SocketAddr, String) {
    let n = NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert!(
        n <= SLOTS,
        "more than {SLOTS} gateways behind the client Postfix"
    );
    (
        SocketAddr::from(([127, 0, 11, n], 2525)),
        format!("slot{n}.test"),
    )
}
