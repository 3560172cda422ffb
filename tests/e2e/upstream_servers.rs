//! Upstreams the mock alone cannot be: a TLS front with a private CA made here, an HTTP/2
//! (h2c) server, and a black hole (a listener whose accept queue is full, so SYNs are dropped).

use bytes::Bytes;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

pub fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

pub fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    serial: u32,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(ca, _)| ca.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
        .unwrap();
    match issuer {
        None => {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(KeyUsage::new().key_cert_sign().crl_sign().build().unwrap())
                .unwrap();
            b.sign(key, MessageDigest::sha256()).unwrap();
        }
        Some((ca, ca_key)) => {
            let san = SubjectAlternativeName::new()
                .dns(cn)
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.sign(ca_key, MessageDigest::sha256()).unwrap();
        }
    }
    b.build()
}

/// A private CA and a TLS front for `name` that relays to `backend` in plain text.
pub struct TlsFront {
    pub addr: SocketAddr,
    /// The CA certificate, PEM.
    pub ca_pem: Vec<u8>,
}

impl TlsFront {
    pub async fn start(name: &str, backend: SocketAddr) -> TlsFront {
        let ca_key = key();
        let ca = certificate("Tollgate Test CA", &ca_key, None, 1);
        let leaf_key = key();
        let leaf = certificate(name, &leaf_key, Some((&ca, &ca_key)), 2);
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor.set_private_key(&leaf_key).unwrap();
        acceptor.set_certificate(&leaf).unwrap();
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = Arc::clone(&acceptor);
                tokio::spawn(async move {
                    let Ok(ssl) = Ssl::new(acceptor.context()) else {
                        return;
                    };
                    let Ok(mut tls) = tokio_openssl::SslStream::new(ssl, tcp) else {
                        return;
                    };
                    if Pin::new(&mut tls).accept().await.is_err() {
                        return; // the client rejected our certificate
                    }
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            addr,
            ca_pem: ca.to_pem().unwrap(),
        }
    }
}

/// What an HTTP/2 server saw: method, path, `:authority`, and the HTTP version.
pub type SeenH2 = Arc<Mutex<Vec<(String, String, String, http::Version)>>>;

/// An h2c (HTTP/2 with prior knowledge) server answering chat completions in OpenAI's format:
/// JSON, or SSE when the body asks for a stream.
pub async fn h2c_server() -> (SocketAddr, SeenH2) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: SeenH2 = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, respond))) = conn.accept().await {
                    tokio::spawn(answer_h2(req, respond, Arc::clone(&record)));
                }
            });
        }
    });
    (addr, seen)
}

async fn answer_h2(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: SeenH2,
) {
    let authority = req.uri().authority().map_or("", |a| a.as_str()).to_string();
    if let Ok(mut s) = seen.lock() {
        s.push((
            req.method().to_string(),
            req.uri().path().to_string(),
            authority,
            req.version(),
        ));
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or("h2").to_string();
    let stream = json["stream"] == true;
    let usage = serde_json::json!({"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9});
    let (content_type, payload) = if stream {
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            serde_json::json!({"id": "h2-1", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut last = chunk(serde_json::json!({}), "stop".into());
        last["usage"] = usage;
        let events = [
            chunk(
                serde_json::json!({"role": "assistant", "content": "over "}),
                None::<&str>.into(),
            ),
            chunk(serde_json::json!({"content": "h2"}), None::<&str>.into()),
            last,
        ];
        let mut sse: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        sse.push_str("data: [DONE]\n\n");
        ("text/event-stream", sse)
    } else {
        let v = serde_json::json!({"id": "h2-1", "object": "chat.completion", "created": 0,
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "over h2"}, "finish_reason": "stop"}], "usage": usage});
        ("application/json", v.to_string())
    };
    let response = http::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(())
        .unwrap();
    if let Ok(mut send) = respond.send_response(response, false) {
        let _ = send.send_data(Bytes::from(payload), true);
    }
}

/// A listener that never accepts, with its one-slot accept queue already full: connecting
/// to it hangs in SYN retransmission like a black-holed route. Keep it alive while in use.
pub struct BlackHole {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<std::net::TcpStream>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fill the queue: connections complete until it is full; later SYNs are dropped.
        let mut queued = Vec::new();
        for _ in 0..4 {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
            {
                Ok(s) => queued.push(s),
                Err(_) => break,
            }
        }
        BlackHole {
            addr,
            _listener: listener,
            _queued: queued,
        }
    }
}
