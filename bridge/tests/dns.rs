//! berthd's resolver end to end on loopback: a real server on 127.0.0.1 with an ephemeral port,
//! queried over UDP and TCP by a small hickory-proto client. Forwarding goes to fake upstreams
//! run by the test on 127.0.0.1, never to a real resolver. Needs no root.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_bridge::dns::{DnsHandle, DnsServer, Records};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// What the fake upstream answers to every A query.
const FAKE_ANSWER: [u8; 4] = [192, 0, 2, 77];
const CLIENT_TIMEOUT: Duration = Duration::from_secs(6);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    // On the wire every name is absolute: "web" and "web." are the same question.
    let mut name = Name::from_str(name).unwrap();
    name.set_fqdn(true);
    m.add_query(Query::query(name, qtype));
    m
}

fn rand_id() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    (NEXT.fetch_add(7919, Ordering::Relaxed) % 65536) as u16
}

async fn udp_ask(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let q = query(name, qtype);
    let sock = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = timeout(CLIENT_TIMEOUT, sock.recv_from(&mut buf))
        .await
        .expect("udp answer in time")
        .unwrap();
    assert_eq!(from, server);
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(m.id(), q.id());
    assert_eq!(m.message_type(), MessageType::Response);
    assert_eq!(m.queries(), q.queries());
    m
}

async fn tcp_exchange(stream: &mut TcpStream, q: &Message) -> Message {
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.unwrap();
    let reply = timeout(CLIENT_TIMEOUT, async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; len as usize];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    })
    .await
    .expect("tcp answer in time");
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(m.id(), q.id());
    assert_eq!(m.queries(), q.queries());
    m
}

async fn tcp_ask(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    tcp_exchange(&mut stream, &query(name, qtype)).await
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// A fake upstream on 127.0.0.1 (UDP and TCP on one port) that answers every query with
/// A 192.0.2.77, and counts what it got.
struct Fake {
    addr: SocketAddr,
    udp: Arc<AtomicUsize>,
    tcp: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn fake_reply(packet: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(packet).ok()?;
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(true);
    r.add_queries(q.queries().to_vec());
    let question = q.query()?;
    if question.query_type() == RecordType::A {
        r.add_answer(Record::from_rdata(
            question.name().clone(),
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(FAKE_ANSWER))),
        ));
    }
    r.to_vec().ok()
}

async fn fake_upstream() -> Fake {
    // The UDP port the kernel picks may be taken for TCP by someone else: pick again.
    let mut tries = 0;
    let (udp, addr, tcp) = loop {
        let udp = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => break (udp, addr, tcp),
            Err(e) if tries < 20 => {
                tries += 1;
                eprintln!("fake upstream: tcp {addr} taken ({e}), picking another port");
            }
            Err(e) => panic!("no port free for both udp and tcp: {e}"),
        }
    };
    let (udp_n, tcp_n) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counter = udp_n.clone();
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Some(r) = fake_reply(&buf[..n]) {
                let _ = udp.send_to(&r, peer).await;
            }
        }
    });
    let counter = tcp_n.clone();
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                while let Ok(len) = s.read_u16().await {
                    let mut buf = vec![0u8; len as usize];
                    if s.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Some(r) = fake_reply(&buf) else { return };
                    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&r);
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Fake {
        addr,
        udp: udp_n,
        tcp: tcp_n,
        tasks: vec![udp_task, tcp_task],
    }
}

/// A loopback port with nothing listening on it (UDP and TCP).
async fn dead_port() -> SocketAddr {
    let sock = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let addr = sock.local_addr().unwrap();
    drop(sock);
    addr
}

async fn start(network: &str, records: &Records, upstreams: Vec<SocketAddr>) -> DnsHandle {
    DnsServer::start(LOOPBACK, 0, network, records.clone(), upstreams)
        .await
        .unwrap()
}

#[tokio::test]
async fn names_and_aliases_resolve_over_udp_and_tcp() {
    let fake = fake_upstream().await;
    let records = Records::new();
    records.set("t-names", "web", vec![ip("10.88.0.2"), ip("fd88::2")]);
    records.set("t-names", "www-alias", vec![ip("10.88.0.2")]);
    records.set("t-names", "DB.", vec![ip("10.88.0.3")]);
    let server = start("t-names", &records, vec![fake.addr]).await;
    let at = server.local_addr();
    assert_eq!(at.ip(), LOOPBACK);
    assert_ne!(at.port(), 0);

    for name in ["web", "web.", "WEB", "Web.", "web.t-names.", "WEB.T-NAMES"] {
        let m = udp_ask(at, name, RecordType::A).await;
        assert_eq!(m.response_code(), ResponseCode::NoError, "{name}");
        assert!(m.authoritative());
        assert_eq!(addrs(&m), vec![ip("10.88.0.2")], "{name}");
        let m = tcp_ask(at, name, RecordType::A).await;
        assert_eq!(addrs(&m), vec![ip("10.88.0.2")], "{name} over tcp");
    }
    let m = udp_ask(at, "www-alias", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip("10.88.0.2")]);
    let m = tcp_ask(at, "DB.", RecordType::A).await;
    assert_eq!(addrs(&m), vec![ip("10.88.0.3")]);

    // AAAA answers with the v6 addresses only.
    let m = udp_ask(at, "web", RecordType::AAAA).await;
    assert_eq!(addrs(&m), vec![ip("fd88::2")]);
    let m = tcp_ask(at, "web", RecordType::AAAA).await;
    assert_eq!(addrs(&m), vec![ip("fd88::2")]);
    // A known name without an address of the asked family: NOERROR, empty.
    let m = udp_ask(at, "db", RecordType::AAAA).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    let m = udp_ask(at, "db", RecordType::MX).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());

    // None of that went upstream.
    assert_eq!(fake.udp.load(Ordering::SeqCst), 0);
    assert_eq!(fake.tcp.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn changes_and_removal_take_effect() {
    let fake = fake_upstream().await;
    let records = Records::new();
    let server = start("t-remove", &records, vec![fake.addr]).await;
    let at = server.local_addr();

    records.set("t-remove", "app", vec![ip("10.89.0.5")]);
    assert_eq!(
        addrs(&udp_ask(at, "app", RecordType::A).await),
        vec![ip("10.89.0.5")]
    );
    records.set("t-remove", "app", vec![ip("10.89.0.6")]);
    assert_eq!(
        addrs(&udp_ask(at, "app", RecordType::A).await),
        vec![ip("10.89.0.6")]
    );
    records.remove("t-remove", "APP.");
    // Gone: now it is somebody else's name, and the upstream answers it.
    let m = udp_ask(at, "app", RecordType::A).await;
    assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)]);
    assert!(!m.authoritative());
    let m = tcp_ask(at, "app", RecordType::A).await;
    assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)]);
    server.stop().await;
}

#[tokio::test]
async fn unknown_names_are_forwarded_over_the_same_transport() {
    let fake = fake_upstream().await;
    let records = Records::new();
    records.set("t-fwd", "web", vec![ip("10.90.0.2")]);
    let server = start("t-fwd", &records, vec![fake.addr]).await;
    let at = server.local_addr();

    let m = udp_ask(at, "example.test.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)]);
    assert_eq!(fake.udp.load(Ordering::SeqCst), 1);
    assert_eq!(fake.tcp.load(Ordering::SeqCst), 0);

    // Other types for unknown names go upstream too.
    let m = udp_ask(at, "example.test.", RecordType::MX).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(fake.udp.load(Ordering::SeqCst), 2);

    let m = tcp_ask(at, "Other.Example.Test", RecordType::A).await;
    assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)]);
    assert_eq!(fake.tcp.load(Ordering::SeqCst), 1);
    assert_eq!(fake.udp.load(Ordering::SeqCst), 2);

    // Several queries on one TCP connection, mixing local and forwarded names.
    let mut stream = TcpStream::connect(at).await.unwrap();
    for _ in 0..3 {
        let m = tcp_exchange(&mut stream, &query("web", RecordType::A)).await;
        assert_eq!(addrs(&m), vec![ip("10.90.0.2")]);
        let m = tcp_exchange(&mut stream, &query("far.test", RecordType::A)).await;
        assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)]);
    }
    server.stop().await;
}

#[tokio::test]
async fn dead_upstream_gives_servfail_quickly() {
    let dead = dead_port().await;
    let server = start("t-dead", &Records::new(), vec![dead]).await;
    let at = server.local_addr();
    let started = Instant::now();
    let m = udp_ask(at, "example.test", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    let m = tcp_ask(at, "example.test", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    // A closed loopback port refuses at once (ICMP port unreachable, TCP RST): both answers
    // come well before even one 2 s upstream timeout would have run out.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // No upstream at all: SERVFAIL too.
    let none = start("t-none", &Records::new(), vec![]).await;
    let m = udp_ask(none.local_addr(), "example.test", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    none.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn silent_upstream_times_out_and_the_next_one_answers() {
    // Bound but never answering: the forwarder waits its timeout, then tries the next.
    let silent = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let fake = fake_upstream().await;
    let server = start(
        "t-silent",
        &Records::new(),
        vec![silent.local_addr().unwrap(), fake.addr],
    )
    .await;
    let m = udp_ask(server.local_addr(), "example.test", RecordType::A).await;
    assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)]);
    assert_eq!(fake.udp.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn garbage_does_not_kill_the_server() {
    let records = Records::new();
    records.set("t-junk", "web", vec![ip("10.91.0.2")]);
    let server = start("t-junk", &records, vec![dead_port().await]).await;
    let at = server.local_addr();

    let junk = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 12],
        vec![0xff; 700],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        // A header claiming 50 questions and nothing after it.
        vec![0, 1, 1, 0, 0, 50, 0, 0, 0, 0, 0, 0],
        // A compression pointer loop in the question name.
        vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
    ];
    for p in &packets {
        junk.send_to(p, at).await.unwrap();
    }
    // A response sent to the server is dropped, not answered.
    let mut response = query("web", RecordType::A);
    response.set_message_type(MessageType::Response);
    junk.send_to(&response.to_vec().unwrap(), at).await.unwrap();
    let mut buf = [0u8; 512];
    assert!(
        timeout(Duration::from_millis(300), junk.recv_from(&mut buf))
            .await
            .is_err(),
        "garbage got an answer"
    );
    assert_eq!(
        addrs(&udp_ask(at, "web", RecordType::A).await),
        vec![ip("10.91.0.2")]
    );

    // TCP: garbage closes that connection, the server goes on.
    for p in &packets {
        let mut s = TcpStream::connect(at).await.unwrap();
        let mut framed = (p.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(p);
        let _ = s.write_all(&framed).await;
        let mut rest = Vec::new();
        let read = timeout(CLIENT_TIMEOUT, s.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "connection not closed after garbage");
        assert!(rest.is_empty());
    }
    // A stream that is not DNS at all.
    let mut s = TcpStream::connect(at).await.unwrap();
    let _ = s.write_all(&[0xffu8; 3000]).await;
    drop(s);
    // Half a message, then nothing: must not hold up other clients.
    let mut stalled = TcpStream::connect(at).await.unwrap();
    stalled.write_all(&[0, 40, 1, 2, 3]).await.unwrap();
    let idle = TcpStream::connect(at).await.unwrap();

    assert_eq!(
        addrs(&tcp_ask(at, "web", RecordType::A).await),
        vec![ip("10.91.0.2")]
    );
    assert_eq!(
        addrs(&udp_ask(at, "web", RecordType::A).await),
        vec![ip("10.91.0.2")]
    );
    drop((stalled, idle));
    server.stop().await;
}

#[tokio::test]
async fn networks_do_not_leak_into_each_other() {
    let fake = fake_upstream().await;
    let records = Records::new();
    records.set("t-net-a", "alpha", vec![ip("10.92.0.2")]);
    records.set("t-net-b", "beta", vec![ip("10.93.0.2")]);
    let a = start("t-net-a", &records, vec![fake.addr]).await;
    let b = start("t-net-b", &records, vec![fake.addr]).await;

    assert_eq!(
        addrs(&udp_ask(a.local_addr(), "alpha", RecordType::A).await),
        vec![ip("10.92.0.2")]
    );
    assert_eq!(
        addrs(&udp_ask(b.local_addr(), "beta", RecordType::A).await),
        vec![ip("10.93.0.2")]
    );
    // Each network's names are unknown on the other: forwarded, answered by the upstream.
    for (server, name) in [
        (&a, "beta"),
        (&b, "alpha"),
        (&a, "beta.t-net-b"),
        (&b, "alpha.t-net-a"),
    ] {
        let m = udp_ask(server.local_addr(), name, RecordType::A).await;
        assert_eq!(addrs(&m), vec![IpAddr::from(FAKE_ANSWER)], "{name}");
        let m = tcp_ask(server.local_addr(), name, RecordType::A).await;
        assert_eq!(
            addrs(&m),
            vec![IpAddr::from(FAKE_ANSWER)],
            "{name} over tcp"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn stop_releases_the_port() {
    let server = start("t-stop", &Records::new(), vec![]).await;
    let at = server.local_addr();
    server.stop().await;
    // Both sockets are closed: the same port binds again, for UDP and TCP.
    let again = DnsServer::start(at.ip(), at.port(), "t-stop", Records::new(), vec![])
        .await
        .expect("port free after stop");
    assert_eq!(again.local_addr(), at);
    let m = udp_ask(at, "example.test", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    again.stop().await;
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let taken = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let at = taken.local_addr().unwrap();
    let err = DnsServer::start(at.ip(), at.port(), "t-busy", Records::new(), vec![])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&at.to_string()), "{text}");
}

#[tokio::test]
async fn edns_and_parallel_clients() {
    let fake = fake_upstream().await;
    let records = Records::new();
    records.set("t-par", "web", vec![ip("10.94.0.2")]);
    let server = start("t-par", &records, vec![fake.addr]).await;
    let at = server.local_addr();

    // An EDNS query (as dig and glibc with `edns0` send) gets an EDNS answer.
    let mut q = query("web", RecordType::A);
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(4096);
    q.set_edns(edns);
    let sock = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    sock.send_to(&q.to_vec().unwrap(), at).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = timeout(CLIENT_TIMEOUT, sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let m = Message::from_vec(&buf[..n]).unwrap();
    assert!(m.extensions().is_some());
    assert_eq!(addrs(&m), vec![ip("10.94.0.2")]);

    // 100 clients at once, half local names, half forwarded, over both transports.
    let mut tasks = Vec::new();
    for i in 0..100 {
        tasks.push(tokio::spawn(async move {
            let name = if i % 2 == 0 { "web" } else { "far.test" };
            let m = if i % 4 < 2 {
                udp_ask(at, name, RecordType::A).await
            } else {
                tcp_ask(at, name, RecordType::A).await
            };
            (i, addrs(&m))
        }));
    }
    for t in tasks {
        let (i, got) = t.await.unwrap();
        let want = if i % 2 == 0 {
            ip("10.94.0.2")
        } else {
            IpAddr::from(FAKE_ANSWER)
        };
        assert_eq!(got, vec![want], "client {i}");
    }
    server.stop().await;
}
