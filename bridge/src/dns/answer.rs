//! What to do with one query: answer it from the records, forward it, or drop it.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use super::records::{normalize, Records};
use super::LOCAL_TTL;

/// The UDP payload size berth advertises in its own EDNS answers (the DNS flag day value).
const EDNS_PAYLOAD: u16 = 1232;
/// A DNS header: id, flags and four counts.
pub(crate) const HEADER_LEN: usize = 12;

/// The fate of one incoming packet.
pub(crate) enum Decision {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not ours: forward the original bytes upstream; the parsed query builds the SERVFAIL.
    Forward(Box<Message>),
    /// Not a DNS query at all: say nothing (UDP) or close the connection (TCP).
    Drop,
}

/// Decides what to do with `packet`, received over UDP (`udp`, responses then fit the
/// client's advertised size) or TCP.
pub(crate) fn decide(packet: &[u8], network: &str, records: &Records, udp: bool) -> Decision {
    let Ok(query) = Message::from_vec(packet) else {
        return Decision::Drop;
    };
    if query.message_type() != MessageType::Query {
        // A response sent to a server is either confusion or a reflection attempt.
        return Decision::Drop;
    }
    if query.op_code() != OpCode::Query {
        return reply_error(&query, ResponseCode::NotImp);
    }
    let [question] = query.queries() else {
        return reply_error(&query, ResponseCode::FormErr);
    };
    if question.query_class() != DNSClass::IN {
        return Decision::Forward(Box::new(query));
    }
    let asked = question.name().to_ascii();
    let Some(addrs) = find(records, network, &asked) else {
        return Decision::Forward(Box::new(query));
    };
    let answers = addrs
        .into_iter()
        .filter_map(|addr| match (question.query_type(), addr) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
            _ => None,
        })
        .map(|rdata| Record::from_rdata(question.name().clone(), LOCAL_TTL, rdata))
        .collect::<Vec<_>>();
    let mut response = response_to(&query, ResponseCode::NoError);
    response.set_authoritative(true);
    response.add_answers(answers);
    let limit = if udp { udp_limit(&query) } else { usize::MAX };
    match serialize(&response) {
        Some(bytes) if bytes.len() <= limit => Decision::Reply(bytes),
        Some(_) => {
            // Too big for the client's UDP buffer: an empty truncated answer makes it retry
            // over TCP.
            response.take_answers();
            response.set_truncated(true);
            serialize(&response).map_or(Decision::Drop, Decision::Reply)
        }
        None => Decision::Drop,
    }
}

/// SERVFAIL for a query that could not be forwarded.
pub(crate) fn servfail(query: &Message) -> Option<Vec<u8>> {
    serialize(&response_to(query, ResponseCode::ServFail))
}

/// The addresses of `asked` (a name as it came off the wire) on `network`: the exact name
/// first, then the name with `.<network>` taken off. `None` when the name is not ours.
fn find(records: &Records, network: &str, asked: &str) -> Option<Vec<IpAddr>> {
    let name = normalize(asked);
    if let Some(addrs) = records.get(network, &name) {
        return Some(addrs);
    }
    let suffix = normalize(network);
    let stem = name.strip_suffix(suffix.as_str())?.strip_suffix('.')?;
    if stem.is_empty() {
        return None;
    }
    records.get(network, stem)
}

/// The largest UDP response the client accepts: 512 bytes without EDNS, else its advertised
/// size (at least 512, at most 4096).
fn udp_limit(query: &Message) -> usize {
    match query.extensions() {
        Some(edns) => usize::from(edns.max_payload()).clamp(512, 4096),
        None => 512,
    }
}

fn reply_error(query: &Message, code: ResponseCode) -> Decision {
    serialize(&response_to(query, code)).map_or(Decision::Drop, Decision::Reply)
}

/// A response skeleton: the query's id, question and RD/CD flags, recursion available.
fn response_to(query: &Message, code: ResponseCode) -> Message {
    let mut response = Message::new();
    response
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_checking_disabled(query.checking_disabled())
        .set_recursion_available(true)
        .set_response_code(code);
    response.add_queries(query.queries().to_vec());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
        response.set_edns(edns);
    }
    response
}

fn serialize(message: &Message) -> Option<Vec<u8>> {
    match message.to_vec() {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::debug!(error = %e, "dns: cannot encode a response");
            None
        }
    }
}

/// The byte range of the (single) question of a message: from the end of the header to the end
/// of QTYPE/QCLASS. `None` when the message is too short or its first name is malformed.
pub(crate) fn question_span(message: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut at = HEADER_LEN;
    loop {
        let len = *message.get(at)?;
        match len {
            0 => {
                at += 1;
                break;
            }
            l if l & 0xC0 == 0xC0 => {
                at += 2;
                break;
            }
            l if l & 0xC0 != 0 => return None,
            l => at += 1 + usize::from(l),
        }
    }
    let end = at + 4;
    (end <= message.len()).then_some(HEADER_LEN..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(0x1234)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true);
        m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        m
    }

    fn records() -> Records {
        let r = Records::new();
        r.set(
            "net1",
            "web",
            vec!["10.1.0.2".parse().unwrap(), "fd01::2".parse().unwrap()],
        );
        r.set("net1", "db", vec!["10.1.0.3".parse().unwrap()]);
        r
    }

    fn reply(d: Decision) -> Message {
        match d {
            Decision::Reply(b) => Message::from_vec(&b).unwrap(),
            Decision::Forward(_) => panic!("forwarded"),
            Decision::Drop => panic!("dropped"),
        }
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

    #[test]
    fn a_and_aaaa_split_by_family() {
        let r = records();
        let q = query("WeB.", RecordType::A).to_vec().unwrap();
        let m = reply(decide(&q, "net1", &r, true));
        assert_eq!(m.id(), 0x1234);
        assert!(m.authoritative());
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(addrs(&m), vec!["10.1.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(m.answers()[0].ttl(), LOCAL_TTL);
        let q = query("web", RecordType::AAAA).to_vec().unwrap();
        let m = reply(decide(&q, "net1", &r, true));
        assert_eq!(addrs(&m), vec!["fd01::2".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn known_name_other_family_is_nodata() {
        let r = records();
        for t in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let q = query("db", t).to_vec().unwrap();
            let m = reply(decide(&q, "net1", &r, false));
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert!(m.answers().is_empty());
        }
    }

    #[test]
    fn network_suffix() {
        let r = records();
        let q = query("db.NET1.", RecordType::A).to_vec().unwrap();
        let m = reply(decide(&q, "net1", &r, true));
        assert_eq!(addrs(&m), vec!["10.1.0.3".parse::<IpAddr>().unwrap()]);
        let q = query("net1.", RecordType::A).to_vec().unwrap();
        assert!(matches!(decide(&q, "net1", &r, true), Decision::Forward(_)));
        let q = query("db.other.", RecordType::A).to_vec().unwrap();
        assert!(matches!(decide(&q, "net1", &r, true), Decision::Forward(_)));
    }

    #[test]
    fn unknown_and_other_network_forwarded() {
        let r = records();
        let q = query("example.com.", RecordType::A).to_vec().unwrap();
        assert!(matches!(decide(&q, "net1", &r, true), Decision::Forward(_)));
        let q = query("web.", RecordType::A).to_vec().unwrap();
        assert!(matches!(decide(&q, "net2", &r, true), Decision::Forward(_)));
    }

    #[test]
    fn garbage_dropped_and_odd_queries_refused() {
        let r = records();
        for junk in [
            &b""[..],
            b"\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(matches!(decide(junk, "net1", &r, true), Decision::Drop));
        }
        let mut resp = query("web", RecordType::A);
        resp.set_message_type(MessageType::Response);
        assert!(matches!(
            decide(&resp.to_vec().unwrap(), "net1", &r, true),
            Decision::Drop
        ));
        let mut two = query("web", RecordType::A);
        two.add_query(Query::query(Name::from_str("db").unwrap(), RecordType::A));
        let m = reply(decide(&two.to_vec().unwrap(), "net1", &r, true));
        assert_eq!(m.response_code(), ResponseCode::FormErr);
        let mut notify = query("web", RecordType::A);
        notify.set_op_code(OpCode::Notify);
        let m = reply(decide(&notify.to_vec().unwrap(), "net1", &r, true));
        assert_eq!(m.response_code(), ResponseCode::NotImp);
    }

    #[test]
    fn oversized_udp_answer_is_truncated() {
        let r = Records::new();
        let many = (1..=200u8)
            .map(|i| IpAddr::from([10, 2, 0, i]))
            .collect::<Vec<_>>();
        r.set("n", "big", many);
        let q = query("big", RecordType::A).to_vec().unwrap();
        let m = reply(decide(&q, "n", &r, true));
        assert!(m.truncated());
        assert!(m.answers().is_empty());
        let m = reply(decide(&q, "n", &r, false));
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 200);
    }

    #[test]
    fn servfail_echoes_question() {
        let q = query("example.com.", RecordType::A);
        let m = Message::from_vec(&servfail(&q).unwrap()).unwrap();
        assert_eq!(m.response_code(), ResponseCode::ServFail);
        assert_eq!(m.id(), 0x1234);
        assert_eq!(m.queries(), q.queries());
    }

    #[test]
    fn question_span_walks_labels() {
        let q = query("a.bc.", RecordType::A).to_vec().unwrap();
        // header, 1 a 2 b c 0, type, class
        assert_eq!(question_span(&q), Some(12..12 + 1 + 1 + 1 + 2 + 1 + 4));
        assert_eq!(question_span(&q[..14]), None);
        assert_eq!(question_span(&[0u8; 12]), None);
    }
}
